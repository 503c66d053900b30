"""The Stable Diffusion VAE (``AutoencoderKL``), named like diffusers', for MuseTalk.

``stabilityai/sd-vae-ft-mse`` (config: block_out_channels 128/256/512/512, two resnets per
block, 4 latent channels, GroupNorm 32): a 256 px face <-> a 4 x 32 x 32 latent. Its
checkpoint stores the mid-block attention under diffusers 0.4's names
(``query``/``key``/``value``/``proj_attn``); :func:`convert_legacy_keys` maps them to
today's (``to_q``/``to_k``/``to_v``/``to_out.0``) before a strict load.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from pipeline.neural.diffusion_blocks import DownBlock, MidBlock, UpBlock

SCALING_FACTOR = 0.18215  # diffusers' default for SD 1.x VAEs (not in sd-vae-ft-mse's config.json)
CONFIG: dict[str, Any] = {  # sd-vae-ft-mse config.json, the fields this module reads
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2, "norm_num_groups": 32,
}  # fmt: skip
EPS = 1e-6


class Encoder(nn.Module):
    def __init__(self, cin: int, latent: int, widths: list[int], layers: int, groups: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cin, widths[0], 3, 1, 1)
        blocks, out = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(DownBlock(out, w, None, layers, i < len(widths) - 1, groups=groups, eps=EPS, down_padding=0))
            out = w
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(out, None, groups=groups, eps=EPS)
        self.conv_norm_out = nn.GroupNorm(groups, out, eps=EPS)
        self.conv_out = nn.Conv2d(out, 2 * latent, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x, _ = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, latent: int, cout: int, widths: list[int], layers: int, groups: int) -> None:
        super().__init__()
        rev = list(reversed(widths))
        self.conv_in = nn.Conv2d(latent, rev[0], 3, 1, 1)
        self.mid_block = MidBlock(rev[0], None, groups=groups, eps=EPS)
        blocks, prev = [], rev[0]
        for i, w in enumerate(rev):
            last = i == len(rev) - 1
            blocks.append(UpBlock(prev, w, prev, None, layers + 1, not last, groups=groups, eps=EPS, skip=False))
            prev = w
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(groups, prev, eps=EPS)
        self.conv_out = nn.Conv2d(prev, cout, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    """encoder -> quant_conv -> (mean, logvar); post_quant_conv -> decoder."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        c = {**CONFIG, **(config or {})}
        widths, layers, groups = list(c["block_out_channels"]), int(c["layers_per_block"]), int(c["norm_num_groups"])
        latent = int(c["latent_channels"])
        self.latent_channels = latent
        self.encoder = Encoder(int(c["in_channels"]), latent, widths, layers, groups)
        self.decoder = Decoder(latent, int(c["out_channels"]), widths, layers, groups)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1)
        self.post_quant_conv = nn.Conv2d(latent, latent, 1)

    def encode_mean(self, image: Tensor) -> Tensor:
        """The posterior mean (MuseTalk samples it; the mean is the deterministic choice)."""
        return self.quant_conv(self.encoder(image))[:, : self.latent_channels]

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z))


class VaeEncode(nn.Module):
    """image ``B x 3 x H x W`` in [0, 1] -> scaled latents ``B x 4 x H/8 x W/8`` (MuseTalk's input)."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.encoder, self.quant_conv, self.latent_channels = vae.encoder, vae.quant_conv, vae.latent_channels

    def forward(self, image: Tensor) -> Tensor:
        moments = self.quant_conv(self.encoder(image * 2.0 - 1.0))
        return moments[:, : self.latent_channels] * SCALING_FACTOR


class VaeDecode(nn.Module):
    """scaled latents -> image in [0, 1]."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.decoder, self.post_quant_conv = vae.decoder, vae.post_quant_conv

    def forward(self, latents: Tensor) -> Tensor:
        image = self.decoder(self.post_quant_conv(latents * (1.0 / SCALING_FACTOR)))
        return (image * 0.5 + 0.5).clamp(0.0, 1.0)


_LEGACY = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def convert_legacy_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """diffusers-0.4 attention names -> today's; 1x1-conv attention weights -> linear."""
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        m = re.match(r"^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$", k)
        if m:
            k = f"{m.group(1)}.{_LEGACY[m.group(2)]}.{m.group(3)}"
        if re.search(r"\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", k) and v.ndim == 4:
            v = v[:, :, 0, 0]
        out[k] = v
    return out


def random_config(width: float = 1.0, groups: int | None = None) -> dict[str, Any]:
    """The config with its channel widths scaled by ``width`` (multiples of the group count,
    ``groups`` to use fewer GroupNorm groups at small widths)."""
    g = int(groups or CONFIG["norm_num_groups"])
    if width >= 1.0 and g == CONFIG["norm_num_groups"]:
        return dict(CONFIG)
    scaled = [max(g, int(round(w * width / g)) * g) for w in CONFIG["block_out_channels"]]
    return {**CONFIG, "block_out_channels": scaled, "norm_num_groups": g}


def load_into(vae: AutoencoderKL, state: dict[str, Tensor]) -> None:
    vae.load_state_dict(convert_legacy_keys(state), strict=True)

