"""MuseTalk 1.5 (Zhang et al. 2024): one-step latent inpainting of the lower face from audio.

The three networks and their registry builders:

- :func:`build_unet`: ``UNet2DConditionModel`` as configured by ``musetalkV15/musetalk.json``
  (SD 1.x layout: 320/640/1280/1280 channels, cross-attention in the first three down and
  last three up blocks and the mid block, 8 heads; ``in_channels`` 8 = the masked face's
  latent + the reference face's latent, ``out_channels`` 4, ``cross_attention_dim`` 384 =
  whisper-tiny's width). One denoising step at ``t = 0``. The module adds MuseTalk's
  sinusoidal positional encoding to the audio tokens (not part of ``unet.pth``).
- :func:`build_vae`: the SD VAE (:mod:`pipeline.neural.sd_vae`); ``part`` selects the
  encoder (face in [0, 1] -> scaled latents), the decoder (latents -> face in [0, 1]) or both.
- :func:`build_whisper`: whisper-tiny's encoder (:mod:`pipeline.neural.whisper_encoder`),
  every hidden state stacked.

Parameter names follow diffusers / transformers, so ``unet.pth``, the VAE's
``diffusion_pytorch_model.safetensors`` (or ``.bin``) and whisper-tiny's ``model.safetensors``
(or ``pytorch_model.bin``) load with ``strict=True`` (the whisper file's decoder is ignored).
``width`` < 1 (and ``groups``) builds the same architecture narrower, for tests and
offline benchmarks with random weights.

:func:`audio_prompts` turns the whisper states into MuseTalk's per-frame audio tokens:
10 feature steps (2 video frames of context on each side at 25 fps) x 5 states = 50 x 384.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pipeline.errors import InvalidOption, ModelUnavailable
from pipeline.neural import sd_vae, whisper_encoder
from pipeline.neural.diffusion_blocks import DownBlock, MidBlock, UpBlock

log = logging.getLogger(__name__)

UNET_CONFIG: dict[str, Any] = {  # musetalkV15/musetalk.json (UNet2DConditionModel), the fields used
    "in_channels": 8, "out_channels": 4, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "attention_head_dim": 8, "cross_attention_dim": 384, "norm_num_groups": 32, "norm_eps": 1e-5,
    "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}  # fmt: skip
FACE_SIZE = 256  # MuseTalk's face crop
LATENT_SIZE = FACE_SIZE // 8
AUDIO_TOKENS = 50  # per video frame: 10 feature steps x 5 whisper states
AUDIO_DIM = 384
PAD_LEFT = PAD_RIGHT = 2  # video frames of audio context on each side


def timestep_embedding(t: Tensor, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0) -> Tensor:
    """diffusers' sinusoidal timestep embedding (``Timesteps``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - shift))
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1) if flip_sin_to_cos else emb


def audio_positional_encoding(length: int = 5000, dim: int = AUDIO_DIM) -> Tensor:
    """MuseTalk's ``PositionalEncoding`` table (sin on even, cos on odd channels)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class TimestepEmbedding(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet2DConditionModel(nn.Module):
    """diffusers' UNet2DConditionModel for the block types MuseTalk's config uses."""

    def __init__(self, config: dict[str, Any] | None = None, audio_pe: bool = True) -> None:
        super().__init__()
        c = {**UNET_CONFIG, **(config or {})}
        widths = list(c["block_out_channels"])
        layers, heads, ctx = int(c["layers_per_block"]), int(c["attention_head_dim"]), int(c["cross_attention_dim"])
        groups, eps = int(c["norm_num_groups"]), float(c["norm_eps"])
        temb = 4 * widths[0]
        self.flip, self.shift = bool(c["flip_sin_to_cos"]), float(c["freq_shift"])
        self.conv_in = nn.Conv2d(int(c["in_channels"]), widths[0], 3, 1, 1)
        self.time_embedding = TimestepEmbedding(widths[0], temb)
        for kinds, known in ((c["down_block_types"], ("CrossAttnDownBlock2D", "DownBlock2D")),
                             (c["up_block_types"], ("CrossAttnUpBlock2D", "UpBlock2D"))):  # fmt: skip
            bad = [k for k in kinds if k not in known]
            if bad or len(kinds) != len(widths):
                raise InvalidOption(f"MuseTalk UNet: unsupported block types {kinds}.")
        down, out = [], widths[0]
        for i, (kind, w) in enumerate(zip(c["down_block_types"], widths)):
            cross = heads if kind.startswith("CrossAttn") else 0
            down.append(DownBlock(out, w, temb, layers, i < len(widths) - 1, cross, ctx, groups, eps))
            out = w
        self.down_blocks = nn.ModuleList(down)
        self.mid_block = MidBlock(widths[-1], temb, heads, ctx, groups, eps)
        rev = list(reversed(widths))
        up, prev = [], rev[0]
        for i, (kind, w) in enumerate(zip(c["up_block_types"], rev)):
            cin = rev[min(i + 1, len(rev) - 1)]
            cross = heads if kind.startswith("CrossAttn") else 0
            up.append(UpBlock(cin, w, prev, temb, layers + 1, i < len(rev) - 1, cross, ctx, groups, eps))
            prev = w
        self.up_blocks = nn.ModuleList(up)
        self.conv_norm_out = nn.GroupNorm(groups, widths[0], eps=eps)
        self.conv_out = nn.Conv2d(widths[0], int(c["out_channels"]), 3, 1, 1)
        self.audio_pe = audio_pe
        self.register_buffer("pe", audio_positional_encoding(512, ctx), persistent=False)  # not in unet.pth

    def forward(self, latents: Tensor, timesteps: Tensor, audio: Tensor) -> Tensor:
        """``latents`` B x 8 x h x w, ``timesteps`` [1] or [B], ``audio`` B x N x 384 -> B x 4 x h x w."""
        if self.audio_pe:
            audio = audio + self.pe[: audio.shape[1]].to(audio.dtype)
        t = timesteps.reshape(-1).expand(latents.shape[0])
        emb = self.time_embedding(
            timestep_embedding(t, self.conv_in.out_channels, self.flip, self.shift).to(latents.dtype))
        x = self.conv_in(latents)
        skips = [x]
        for block in self.down_blocks:
            x, res = block(x, emb, audio)
            skips += res
        x = self.mid_block(x, emb, audio)
        for block in self.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            size = (skips[-1].shape[2], skips[-1].shape[3]) if skips else None
            x = block(x, res, emb, audio, size)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# --- checkpoints ------------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file (the format: u64 header length, JSON header of
    dtype/shape/offsets, raw little-endian data); without the safetensors package."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out: dict[str, Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = info["dtype"]
        if dtype == "BF16":
            raw = np.frombuffer(data, np.int16, (end - start) // 2, start)
            out[name] = torch.from_numpy(raw.copy()).view(torch.bfloat16).float().reshape(info["shape"])
            continue
        if dtype not in _ST_DTYPES:
            raise ModelUnavailable(f"{path.name}: tensor {name} has unsupported dtype {dtype}.")
        np_dtype = np.dtype(_ST_DTYPES[dtype])
        arr = np.frombuffer(data, np_dtype, (end - start) // np_dtype.itemsize, start).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def read_state(path: Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch pickle (weights only)."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return state


def _find(weights: Path, names: tuple[str, ...]) -> tuple[Path, dict[str, Any]]:
    """The weights file in ``weights`` (a file, or a folder holding one of ``names``) and the
    folder's ``config.json`` (or ``musetalk.json``) when there is one."""
    folder = weights if weights.is_dir() else weights.parent
    config: dict[str, Any] = {}
    for cfg in ("config.json", "musetalk.json"):
        if (folder / cfg).is_file():
            config = json.loads((folder / cfg).read_text(encoding="utf-8"))
            break
    if weights.is_file():
        return weights, config
    for n in names:
        for candidate in (folder / n, *folder.rglob(Path(n).name)):
            if candidate.is_file():
                return candidate, config
    raise ModelUnavailable(f"No weights file ({', '.join(names)}) in {folder}.")


def _scaled(widths: list[int], width: float, groups: int) -> list[int]:
    return [max(groups, int(round(w * width / groups)) * groups) for w in widths]


def build_unet(weights: Path | None = None, width: float = 1.0, groups: int | None = None,
               audio_pe: bool = True, **options: Any) -> nn.Module:
    """MuseTalk's UNet; ``weights``: ``unet.pth`` or the ``musetalkV15`` folder (with its
    ``musetalk.json``). ``width``/``groups`` narrow a random-weights build."""
    config = dict(UNET_CONFIG)
    path = None
    if weights is not None:
        path, found = _find(Path(weights), ("unet.pth", "musetalkV15/unet.pth"))
        config.update({k: v for k, v in found.items() if k in UNET_CONFIG})
    config.update({k: v for k, v in options.items() if k in UNET_CONFIG})
    unknown = sorted(set(options) - set(UNET_CONFIG))
    if unknown:
        raise InvalidOption(f"build_unet: unknown option(s) {', '.join(unknown)}.")
    if width != 1.0 or groups:
        g = int(groups or config["norm_num_groups"])
        config.update(block_out_channels=_scaled(config["block_out_channels"], width, g), norm_num_groups=g)
    net = UNet2DConditionModel(config, audio_pe=audio_pe)
    if path is not None:
        net.load_state_dict(read_state(path), strict=True)
        log.info("loaded the MuseTalk UNet from %s", path)
    return net.eval()


def build_vae(weights: Path | None = None, part: Literal["encoder", "decoder", "both"] = "decoder",
              width: float = 1.0, groups: int | None = None) -> nn.Module:
    """The SD VAE; ``part`` "encoder" / "decoder" wrap one half (see :mod:`sd_vae`), "both"
    is the whole :class:`~pipeline.neural.sd_vae.AutoencoderKL`."""
    if part not in ("encoder", "decoder", "both"):
        raise InvalidOption(f"build_vae: part is encoder, decoder or both; got {part!r}.")
    config = sd_vae.random_config(width, groups)
    path = None
    if weights is not None:
        path, found = _find(Path(weights), ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
        config.update({k: v for k, v in found.items() if k in sd_vae.CONFIG})
    vae = sd_vae.AutoencoderKL(config)
    if path is not None:
        sd_vae.load_into(vae, read_state(path))
        log.info("loaded the SD VAE from %s", path)
    module: nn.Module = vae
    if part != "both":
        module = sd_vae.VaeEncode(vae) if part == "encoder" else sd_vae.VaeDecode(vae)
    return module.eval()


def build_whisper(weights: Path | None = None, width: float = 1.0, layers: int | None = None) -> nn.Module:
    """whisper-tiny's encoder; ``weights``: the repo folder (config.json + model.safetensors)
    or a file. ``width``/``layers`` narrow a random-weights build."""
    config = dict(whisper_encoder.CONFIG)
    path = None
    if weights is not None:
        path, found = _find(Path(weights), ("model.safetensors", "pytorch_model.bin"))
        config.update({k: v for k, v in found.items() if k in whisper_encoder.CONFIG})
    if width != 1.0:
        heads = int(config["encoder_attention_heads"])
        config.update(d_model=max(heads, int(round(config["d_model"] * width / heads)) * heads),
                      encoder_ffn_dim=max(4, int(config["encoder_ffn_dim"] * width)))
    if layers:
        config["encoder_layers"] = int(layers)
    net = whisper_encoder.WhisperEncoder(config)
    if path is not None:
        net.load_state_dict(whisper_encoder.encoder_state(read_state(path)), strict=True)
        log.info("loaded the whisper encoder from %s", path)
    return net.eval()


# --- audio tokens per video frame ---------------------------------------------------------------


def audio_prompts(states: np.ndarray, n_frames: int, fps: float, audio_seconds: float) -> np.ndarray:
    """MuseTalk's per-frame audio tokens ``n_frames x (10 * S) x D`` from whisper states
    ``S x T x D`` (50 per second, concatenated windows): the features from 2 frames before to
    2 frames after each video frame, zero-padded at the ends, time-major then state."""
    s, t, d = states.shape
    per = 50.0 / fps
    usable = min(t, int(math.floor(audio_seconds * 50)))
    steps = 2 * (PAD_LEFT + PAD_RIGHT + 1)
    pad = int(math.ceil(per))
    feats = np.zeros((pad * PAD_LEFT + usable + pad * 3 * PAD_RIGHT + steps, s, d), np.float32)
    feats[pad * PAD_LEFT: pad * PAD_LEFT + usable] = states[:, :usable].transpose(1, 0, 2)
    out = np.empty((n_frames, steps * s, d), np.float32)
    for i in range(n_frames):
        j = int(math.floor(i * per))
        out[i] = feats[j: j + steps].reshape(steps * s, d)
    return out
