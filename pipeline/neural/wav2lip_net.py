"""The Wav2Lip generator (Prajwal et al., "A Lip Sync Expert Is All You Need", ACM MM 2020).

Written from the published architecture so that the released checkpoints
(``wav2lip.pth``, ``wav2lip_gan.pth``) load with ``strict=True``: the module tree and
parameter names follow the public checkpoints' layout:

- ``face_encoder_blocks.<i>.<j>``: a U-Net encoder over the 6-channel face (the crop with
  its lower half blacked out, then the reference crop), 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1;
- ``audio_encoder.<j>``: an 80 x 16 mel window (200 ms) down to a 512-d embedding;
- ``face_decoder_blocks.<i>.<j>``: transposed convolutions from the embedding back to 96 px,
  each stage concatenated with the encoder feature of the same size (skip connections);
- ``output_block``: a 3x3 block, a 1x1 convolution to 3 channels (BGR) and a sigmoid.

Every block is a convolution + BatchNorm (``conv_block.0`` / ``conv_block.1``) and a ReLU,
optionally residual (input added before the ReLU, same shape in and out).

``forward(mel, face)``: ``mel`` (B, 1, 80, 16) normalised to [-4, 4]; ``face`` (B, 6, S, S)
BGR in [0, 1]; returns (B, 3, S, S) BGR in [0, 1].

Options of :func:`build`:

- ``size``: 96 (the published network) or 256: a layout of our own with one more stage
  each side (256 -> 128 -> ... -> 4 -> 1). No public 256 px checkpoint with this layout has
  been verified; it exists for speed measurements and for weights trained in this layout.
- ``width``: channel multiplier (1.0 = the published widths); tests use small widths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

MEL_BANDS, MEL_STEPS = 80, 16  # the audio window the network takes


class ConvBlock(nn.Module):
    """Convolution (or transposed convolution) + BatchNorm + ReLU, optionally residual."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int] = 1, padding: int = 1,
                 *, residual: bool = False, transpose: bool = False, output_padding: int = 0) -> None:
        super().__init__()
        if residual and (cin != cout or stride != 1 or transpose):
            raise ValueError("a residual block keeps its shape")
        conv: nn.Module
        if transpose:
            conv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.conv_block = nn.Sequential(conv, nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_block(x)
        if self.residual:
            y = y + x
        return self.act(y)


@dataclass(frozen=True)
class Stage:
    """One resolution step: a first block that changes size/channels, then residual blocks."""

    channels: int
    kernel: int = 3
    stride: int = 2
    padding: int = 1
    residual: int = 2  # residual blocks after the first one


# The published 96 px encoder: 96 -> 96 (7x7), then halving down to 3, then 3 -> 1 (valid 3x3).
ENCODER_96 = (Stage(16, 7, 1, 3, 0), Stage(32, residual=2), Stage(64, residual=3), Stage(128), Stage(256),
              Stage(512, residual=1))
# The decoder's widths, deepest first (after the 1x1 bottleneck block): 1 -> 3 -> 6 -> ... -> 96.
DECODER_96 = (512, 512, 384, 256, 128, 64)
DECODER_RES_96 = (1, 2, 2, 2, 2, 2)
# 256 px (our layout): 256 (7x7) -> 128 -> 64 -> 32 -> 16 -> 8 -> 4, then 4 -> 1 (valid 4x4).
ENCODER_256 = (Stage(16, 7, 1, 3, 0), Stage(32, residual=2), Stage(64, residual=3), Stage(128), Stage(256),
               Stage(512, residual=1), Stage(512, residual=1))
DECODER_256 = (512, 512, 512, 384, 256, 128, 64)
DECODER_RES_256 = (1, 2, 2, 2, 2, 2, 2)


def _w(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


class Wav2Lip(nn.Module):
    """The generator (see the module docstring)."""

    def __init__(self, size: int = 96, width: float = 1.0) -> None:
        super().__init__()
        if size not in (96, 256):
            raise ValueError(f"Wav2Lip size must be 96 or 256, not {size}")
        self.size = size
        enc, dec, dec_res = (ENCODER_96, DECODER_96, DECODER_RES_96) if size == 96 else (
            ENCODER_256, DECODER_256, DECODER_RES_256)
        last_kernel = 3 if size == 96 else 4  # what the deepest map measures before the 1x1 bottleneck
        feats: list[int] = []
        blocks: list[nn.Module] = []
        cin = 6
        for st in enc:
            c = _w(st.channels, width)
            layers = [ConvBlock(cin, c, st.kernel, st.stride, st.padding)]
            layers += [ConvBlock(c, c, 3, 1, 1, residual=True) for _ in range(st.residual)]
            blocks.append(nn.Sequential(*layers))
            feats.append(c)
            cin = c
        c = _w(512, width)
        blocks.append(nn.Sequential(ConvBlock(cin, c, last_kernel, 1, 0), ConvBlock(c, c, 1, 1, 0)))
        feats.append(c)
        self.face_encoder_blocks = nn.ModuleList(blocks)

        a = [_w(n, width) for n in (32, 64, 128, 256, 512)]
        self.audio_encoder = nn.Sequential(
            ConvBlock(1, a[0], 3, 1, 1),
            ConvBlock(a[0], a[0], 3, 1, 1, residual=True),
            ConvBlock(a[0], a[0], 3, 1, 1, residual=True),
            ConvBlock(a[0], a[1], 3, (3, 1), 1),  # 80 x 16 -> 27 x 16
            ConvBlock(a[1], a[1], 3, 1, 1, residual=True),
            ConvBlock(a[1], a[1], 3, 1, 1, residual=True),
            ConvBlock(a[1], a[2], 3, 3, 1),  # -> 9 x 6
            ConvBlock(a[2], a[2], 3, 1, 1, residual=True),
            ConvBlock(a[2], a[2], 3, 1, 1, residual=True),
            ConvBlock(a[2], a[3], 3, (3, 2), 1),  # -> 3 x 3
            ConvBlock(a[3], a[3], 3, 1, 1, residual=True),
            ConvBlock(a[3], a[4], 3, 1, 0),  # -> 1 x 1
            ConvBlock(a[4], c, 1, 1, 0),
        )

        skips = feats[::-1]  # deepest first: what each decoder stage is concatenated with
        dblocks: list[nn.Module] = [nn.Sequential(ConvBlock(c, c, 1, 1, 0))]
        cin = c + skips[0]
        for k, (n, res) in enumerate(zip(dec, dec_res)):
            d = _w(n, width)
            if k == 0:  # 1 x 1 -> last_kernel x last_kernel
                first = ConvBlock(cin, d, last_kernel, 1, 0, transpose=True)
            else:
                first = ConvBlock(cin, d, 3, 2, 1, transpose=True, output_padding=1)
            dblocks.append(nn.Sequential(first, *[ConvBlock(d, d, 3, 1, 1, residual=True) for _ in range(res)]))
            cin = d + skips[k + 1]
        self.face_decoder_blocks = nn.ModuleList(dblocks)
        o = _w(32, width)
        self.output_block = nn.Sequential(ConvBlock(cin, o, 3, 1, 1), nn.Conv2d(o, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        feats = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(mel)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        return self.output_block(x)


def state_dict_of(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The generator's weights from a loaded checkpoint: ``{"state_dict": ...}`` or a bare
    state dict, with DataParallel's ``module.`` prefixes stripped."""
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(sd, dict):
        raise ValueError("the checkpoint holds no state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def build(weights: Path | None = None, *, size: int = 96, width: float = 1.0, **_: Any) -> Wav2Lip:
    """The generator in eval mode: random weights (``weights=None``) or a released checkpoint
    loaded with ``strict=True`` (a layout mismatch is an error, never a silent partial load).

    Random weights use He initialisation: with torch's default one the audio embedding fades
    to nothing through the 13 audio blocks and the output ignores the mel, so a random-weight
    render could not show that each frame gets its own audio window."""
    net = Wav2Lip(int(size), float(width))
    if weights is None:
        _signal_init(net)
    else:
        ckpt = torch.load(Path(weights), map_location="cpu", weights_only=True)
        net.load_state_dict(state_dict_of(ckpt), strict=True)
        log.info("wav2lip %d px weights loaded from %s", size, weights)
    return net.eval()


def _signal_init(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
