"""Wav2Lip's audio features, numpy only (no librosa).

The released networks were trained on these exact features (their ``hparams``): 16 kHz
mono, preemphasis 0.97, a centred STFT (n_fft 800, hop 200, Hann window of 800, reflect
padding), 80 Slaney-scale mel bands from 55 to 7600 Hz (area-normalised filters), dB with a
-100 dB floor and a 20 dB reference, symmetric normalisation clipped to [-4, 4].

80 mel frames per second; video frame ``i`` at ``fps`` takes the 16-frame (200 ms) window
that starts at mel frame ``int(80 * i / fps)`` (the last full window near the end).
"""

from __future__ import annotations

import numpy as np

from pipeline import timing
from pipeline.types import AudioClip

RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
WINDOW = 16  # mel frames per video frame (200 ms)
MEL_FPS = RATE // HOP  # 80

_basis: np.ndarray | None = None


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asarray(m, np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_basis() -> np.ndarray:
    """(80, 401) triangular filters, each normalised to unit area (Slaney)."""
    global _basis
    if _basis is None:
        freqs = np.linspace(0.0, RATE / 2, N_FFT // 2 + 1)
        edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
        lower = (freqs[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
        upper = (edges[2:, None] - freqs[None, :]) / np.diff(edges)[1:, None]
        tri = np.maximum(0.0, np.minimum(lower, upper))
        tri *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
        _basis = tri.astype(np.float32)
    return _basis


def band_of(hz: float) -> int:
    """The mel band whose filter peaks nearest ``hz``."""
    centres = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))[1:-1]
    return int(np.argmin(np.abs(centres - hz)))


def to_16k(audio: AudioClip) -> np.ndarray:
    from pipeline.media.audio import resample

    return resample(audio, RATE).samples


def melspectrogram(samples: np.ndarray) -> np.ndarray:
    """(80, 1 + len // 200) normalised log-mel of 16 kHz ``samples``, float32 in [-4, 4]."""
    x = np.asarray(samples, np.float64)
    if len(x) == 0:
        x = np.zeros(1)
    y = np.empty_like(x)
    y[0] = x[0]
    y[1:] = x[1:] - PREEMPHASIS * x[:-1]
    pad = N_FFT // 2
    mode = "reflect" if len(y) > pad else "constant"
    y = np.pad(y, pad, mode=mode)
    n = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(y, (n, N_FFT), (y.strides[0] * HOP, y.strides[0]), writeable=False)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)  # periodic Hann
    spec = np.abs(np.fft.rfft(frames * window, axis=1)).T  # (401, n)
    mel = mel_basis().astype(np.float64) @ spec
    min_level = 10.0 ** (MIN_LEVEL_DB / 20.0)
    db = 20.0 * np.log10(np.maximum(min_level, mel)) - REF_LEVEL_DB
    norm = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / (-MIN_LEVEL_DB) - MAX_ABS
    return np.clip(norm, -MAX_ABS, MAX_ABS).astype(np.float32)


def window_starts(n_frames: int, fps: float, n_mel: int) -> np.ndarray:
    """First mel frame of each video frame's window: ``int(80 * frame start)`` computed
    exactly (rational fps), moved back to the last full window near the end."""
    f = timing.fps_fraction(fps)
    i = np.arange(n_frames, dtype=np.int64)
    starts = (MEL_FPS * f.denominator * i) // f.numerator
    return np.minimum(starts, max(0, n_mel - WINDOW))


def frame_windows(audio: AudioClip, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames, 1, 80, 16) float32: the network's audio input for every video frame."""
    mel = melspectrogram(to_16k(audio))
    if mel.shape[1] < WINDOW:  # shorter than 200 ms: pad with silence
        mel = np.pad(mel, ((0, 0), (0, WINDOW - mel.shape[1])), constant_values=-MAX_ABS)
    starts = window_starts(n_frames, fps, mel.shape[1])
    idx = starts[:, None] + np.arange(WINDOW)[None, :]
    out = mel[:, idx]  # (80, n, 16)
    return np.ascontiguousarray(np.transpose(out, (1, 0, 2))[:, None])

