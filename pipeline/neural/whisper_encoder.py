"""Whisper's audio encoder (Radford et al. 2022), named like transformers' ``WhisperEncoder``.

MuseTalk conditions its UNet on every hidden state of whisper-tiny's encoder (the input
embedding and the output of each of its 4 layers, the last one layer-normed): 5 x 384
features at 50 per second. ``forward(input_features)`` takes the log-mel spectrogram
(``B x 80 x T``, 100 frames per second; T = 3000 for Whisper's 30 s windows, shorter works)
and returns the stacked hidden states ``B x 5 x T/2 x 384``.

:func:`log_mel` computes Whisper's features (16 kHz, n_fft 400, hop 160, 80 Slaney mel
bands, log10 clipped 8 below the peak, scaled (x + 4) / 4) with numpy only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

CONFIG: dict[str, Any] = {  # openai/whisper-tiny config.json, the encoder's fields
    "d_model": 384, "encoder_layers": 4, "encoder_attention_heads": 6, "encoder_ffn_dim": 1536,
    "num_mel_bins": 80, "max_source_positions": 1500,
}  # fmt: skip
SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
WINDOW_SECONDS = 30.0
FEATURES_PER_SECOND = 50  # encoder output rate (the second conv has stride 2)


class WhisperAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (p(x).reshape(b, n, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))


class WhisperEncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = WhisperAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoder(nn.Module):
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        c = {**CONFIG, **(config or {})}
        d = int(c["d_model"])
        self.conv1 = nn.Conv1d(int(c["num_mel_bins"]), d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(int(c["max_source_positions"]), d)
        heads, ffn = int(c["encoder_attention_heads"]), int(c["encoder_ffn_dim"])
        self.layers = nn.ModuleList([WhisperEncoderLayer(d, heads, ffn) for _ in range(int(c["encoder_layers"]))])
        self.layer_norm = nn.LayerNorm(d)
        with torch.no_grad():  # Whisper's fixed sinusoids (the checkpoint stores them too)
            self.embed_positions.weight.copy_(sinusoids(int(c["max_source_positions"]), d))

    def forward(self, input_features: Tensor) -> Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(input_features)))).transpose(1, 2)
        x = x + self.embed_positions.weight[: x.shape[1]].to(x.dtype)
        states = [x]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            states.append(self.layer_norm(x) if i == len(self.layers) - 1 else x)
        return torch.stack(states, dim=1)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's positional embedding: sin then cos, log-spaced timescales."""
    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def encoder_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The encoder's tensors of a WhisperModel / WhisperForConditionalGeneration checkpoint,
    without their prefix (``model.encoder.`` or ``encoder.``)."""
    for prefix in ("model.encoder.", "encoder."):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return sub
    return dict(state)


# --- features (numpy) -----------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, as Whisper's filters use)."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)


@lru_cache(maxsize=2)
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney-normalised triangular filters ``n_mels x (N_FFT // 2 + 1)``, 0 .. 8 kHz."""
    freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2)), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
        fb[i] *= 2.0 / (hi - lo)
    fb.flags.writeable = False
    return fb.astype(np.float32)


def log_mel(samples: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """Whisper's log-mel features ``80 x n_frames`` of 16 kHz mono float samples; padded with
    silence (or cut) to ``n_frames`` (default: 3000, a 30 s window)."""
    n_frames = int(n_frames or WINDOW_SECONDS * SAMPLE_RATE // HOP)
    x = np.zeros(n_frames * HOP, np.float32)
    x[: min(len(samples), x.size)] = np.asarray(samples, np.float32)[: x.size]
    x = np.pad(x, N_FFT // 2, mode="reflect")
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][: n_frames + 1]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = mel_filters() @ power[:-1].T  # Whisper drops the last STFT frame
    logm = np.log10(np.maximum(mel, 1e-10))
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32)
