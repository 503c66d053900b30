"""The building blocks of Stable-Diffusion-class UNets and VAEs, named like diffusers'.

Only what MuseTalk's UNet (``UNet2DConditionModel`` with ``CrossAttnDownBlock2D`` /
``DownBlock2D`` / ``UNetMidBlock2DCrossAttn`` / ``UpBlock2D`` / ``CrossAttnUpBlock2D``) and
the SD VAE (``AutoencoderKL`` with ``DownEncoderBlock2D`` / ``UNetMidBlock2D`` /
``UpDecoderBlock2D``) use. Attribute names (``resnets``, ``attentions``, ``downsamplers.0.conv``,
``to_q`` / ``to_out.0``, ``transformer_blocks.0.ff.net.0.proj`` ...) follow diffusers so that
checkpoints saved from it load with ``strict=True``. diffusers itself is not a dependency.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ResnetBlock2D(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the time embedding, twice; 1x1 shortcut when widths differ."""

    def __init__(self, cin: int, cout: int, temb: int | None, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Attention(nn.Module):
    """Multi-head attention with diffusers' projection names; ``context`` for cross-attention.

    With ``group_norm`` it is the VAE's spatial self-attention block: it takes and returns
    ``B x C x H x W`` and adds its input back."""

    def __init__(
        self, dim: int, heads: int, head_dim: int, context_dim: int | None = None, bias: bool = False,
        group_norm: int | None = None, eps: float = 1e-6,
    ) -> None:  # fmt: skip
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.group_norm = nn.GroupNorm(group_norm, dim, eps=eps) if group_norm else None
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def _attend(self, x: Tensor, context: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        q, k, v = (t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.group_norm is None:
            return self._attend(x, x if context is None else context)
        b, c, h, w = x.shape
        t = self.group_norm(x).reshape(b, c, h * w).transpose(1, 2)
        return x + self._attend(t, t).transpose(1, 2).reshape(b, c, h, w)


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, mult * dim), nn.Dropout(0.0), nn.Linear(mult * dim, dim)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """Spatial transformer (SD 1.x: 1x1 conv projections, one block)."""

    def __init__(self, channels: int, heads: int, context_dim: int, groups: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        block = BasicTransformerBlock(channels, heads, channels // heads, context_dim)
        self.transformer_blocks = nn.ModuleList([block])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).reshape(b, c, h * w).transpose(1, 2)
        for block in self.transformer_blocks:
            t = block(t, context)
        return x + self.proj_out(t.transpose(1, 2).reshape(b, c, h, w))


class Downsample2D(nn.Module):
    """Strided 3x3 conv; ``padding=0`` is the VAE encoder's (pad right/bottom by one first)."""

    def __init__(self, channels: int, padding: int = 1) -> None:
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, 2, padding)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest 2x (or to ``size``) then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size, mode="nearest")
        return self.conv(x)


def _attentions(channels: int, heads: int, context_dim: int, groups: int, n: int) -> nn.ModuleList | None:
    """``n`` spatial transformers (cross-attention blocks), or None for plain blocks (``heads`` 0)."""
    if not heads:
        return None
    return nn.ModuleList([Transformer2DModel(channels, heads, context_dim, groups) for _ in range(n)])


class DownBlock(nn.Module):
    """``CrossAttnDownBlock2D`` (with ``heads``), ``DownBlock2D`` or ``DownEncoderBlock2D`` (no temb)."""

    def __init__(
        self, cin: int, cout: int, temb: int | None, layers: int, add_down: bool, heads: int = 0,
        context_dim: int = 0, groups: int = 32, eps: float = 1e-5, down_padding: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, temb, groups, eps) for i in range(layers)])
        self.attentions = _attentions(cout, heads, context_dim, groups, layers)
        self.downsamplers = nn.ModuleList([Downsample2D(cout, down_padding)]) if add_down else None

    def forward(
        self, x: Tensor, temb: Tensor | None = None, context: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        skips: list[Tensor] = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """``CrossAttnUpBlock2D`` / ``UpBlock2D`` (``skip=True``: concatenates the down path's
    outputs) or ``UpDecoderBlock2D`` (``skip=False``, no temb)."""

    def __init__(
        self, cin: int, cout: int, prev: int, temb: int | None, layers: int, add_up: bool, heads: int = 0,
        context_dim: int = 0, groups: int = 32, eps: float = 1e-5, skip: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.skip = skip
        resnets = []
        for i in range(layers):
            res_in = prev if i == 0 else cout
            extra = (cin if i == layers - 1 else cout) if skip else 0
            resnets.append(ResnetBlock2D(res_in + extra, cout, temb, groups, eps))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = _attentions(cout, heads, context_dim, groups, layers)
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_up else None

    def forward(
        self, x: Tensor, skips: list[Tensor] | None = None, temb: Tensor | None = None, context: Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor:  # fmt: skip
        for i, resnet in enumerate(self.resnets):
            if self.skip and skips is not None:
                x = torch.cat([x, skips.pop()], dim=1)
            x = resnet(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, size)
        return x


class MidBlock(nn.Module):
    """resnet -> attention -> resnet: ``UNetMidBlock2DCrossAttn`` (``heads`` > 0, a spatial
    transformer on ``context``) or the VAE's ``UNetMidBlock2D`` (one-head spatial self-attention)."""

    def __init__(
        self, channels: int, temb: int | None, heads: int = 0, context_dim: int = 0, groups: int = 32,
        eps: float = 1e-5,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cross = heads > 0
        attn: nn.Module = (
            Transformer2DModel(channels, heads, context_dim, groups) if self.cross
            else Attention(channels, 1, channels, bias=True, group_norm=groups, eps=eps)
        )  # fmt: skip
        self.attentions = nn.ModuleList([attn])
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, temb, groups, eps) for _ in range(2)])

    def forward(self, x: Tensor, temb: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context) if self.cross else self.attentions[0](x)
        return self.resnets[1](x, temb)
