"""A small frame classifier that hears when the lips are closed: /p b m/ versus other
speech versus silence, every 10 ms.

Why: without a transcript, pocketsphinx's English phone recogniser often names a
bilabial as another consonant, and hears formant-synthesised voices (espeak-ng) so
badly that it found about one /p b m/ in five there; loudness dips catch stop closures
but not /m/, whose murmur is as loud as a vowel's low end. This network looks at the
spectrum around each frame (log-mel bands over +-100 ms) and was trained on speech with
exact phone times: the bundled Piper voice and espeak-ng's English accents and voice
variants at several speeds, with noise, gain and tilt added, reading sentences that
none of the benchmarks use (:mod:`pipeline.speech.bilabial_train`). The silent closure
before a /p b/ release counts as closed lips.

Inference is a few small matrix products (~0.2 s per minute of audio with the log-mel
features); the weights (``bilabial.npz`` next to this file, 177 KB) load once per
process through the model cache. Without the file, timing falls back to loudness dips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import models

SR = 16000
HOP = 160  # 10 ms frames
WIN = 400  # 25 ms window
N_FFT = 512
N_MELS = 32
FRAME_S = HOP / SR
CONTEXT = (-10, -6, -3, -1, 0, 1, 3, 6, 10)  # frames stacked around each frame
CLASSES = ("speech", "bilabial", "silence")
SPEECH_RANGE_DB = 25.0  # frames this close to the loud level set the spectral mean
FLOOR_DB = 60.0  # bands are clipped this far below the loud level
WEIGHTS = Path(__file__).with_name("bilabial.npz")


def _mel_filters() -> np.ndarray:
    from pipeline.speech.dtw import _mel_filters as mel

    return mel(N_FFT, SR, N_MELS)


def log_mel(x: np.ndarray) -> np.ndarray:
    """(n_frames, N_MELS + 1) log-mel bands and frame energy in dB of 16 kHz ``x``;
    frame k is centred at k * 10 ms."""
    x = np.asarray(x, np.float32)
    pad = np.pad(x, (WIN // 2, WIN // 2 + HOP))
    n = max(1, 1 + (len(pad) - WIN) // HOP)
    n = min(n, int(np.ceil(len(x) / HOP)) + 1)
    frames = np.lib.stride_tricks.sliding_window_view(pad, WIN)[::HOP][:n] * np.hamming(WIN).astype(np.float32)
    spec = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)).astype(np.float32) ** 2
    mel = spec @ _mel_filters().T
    db = 10.0 * np.log10(mel + 1e-10)
    energy = 10.0 * np.log10(spec[:, 3:].sum(1) + 1e-10)  # above ~90 Hz
    return np.concatenate([db, energy[:, None]], axis=1).astype(np.float32)


def features(x: np.ndarray, context: tuple[int, ...] = CONTEXT) -> np.ndarray:
    """Per-frame input of the network: level-normalised log-mel bands with the frames at
    ``context`` offsets stacked."""
    f = frame_features(x)
    n = len(f)
    idx = np.clip(np.arange(n)[:, None] + np.array(context)[None, :], 0, n - 1)
    return f[idx].reshape(n, -1)


def frame_features(x: np.ndarray) -> np.ndarray:
    """(n_frames, N_MELS + 1): log-mel bands relative to the speaker's mean spectrum and
    frame energy relative to the loud level, clipped :data:`FLOOR_DB` below it."""
    f = log_mel(x)
    e = f[:, -1]
    loud = float(np.percentile(e, 95))
    f = np.maximum(f, loud - FLOOR_DB)
    speech = e > loud - SPEECH_RANGE_DB
    ref = f[speech, :-1].mean(0) if speech.any() else f[:, :-1].mean(0)
    f[:, :-1] -= ref  # spectral shape relative to this speaker's mean
    f[:, -1] -= loud
    return f


class Net:
    """The trained classifier: input normalisation and a perceptron (``w0, b0, w1, ...``;
    ReLU between layers); ``context``: the frame offsets its input stacks (the weights
    file's, :data:`CONTEXT` when it has none)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.mu = weights["mu"].astype(np.float32)
        self.sd = weights["sd"].astype(np.float32)
        self.context = tuple(int(c) for c in weights["context"]) if "context" in weights else CONTEXT
        n = sum(1 for k in weights if k.startswith("w") and k[1:].isdigit())
        self.layers = [(weights[f"w{i}"].astype(np.float32), weights[f"b{i}"].astype(np.float32)) for i in range(n)]

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        """(n, len(CLASSES)) class probabilities of feature rows."""
        h = (feats - self.mu) / self.sd
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                np.maximum(h, 0.0, out=h)
        h -= h.max(1, keepdims=True)
        p = np.exp(h)
        return p / p.sum(1, keepdims=True)


def load(path: Path | None = None) -> Net:
    with np.load(path or WEIGHTS) as z:
        return Net({k: z[k] for k in z.files})


def net() -> Net:
    """The shared classifier (loaded once per process)."""
    return models.get("speech.bilabial", load).model


def available() -> bool:
    return WEIGHTS.is_file()


def probabilities(x: np.ndarray) -> np.ndarray:
    """(n_frames, 3) probabilities of speech / bilabial / silence for 16 kHz ``x``,
    one row per 10 ms (row k centred at k * 10 ms)."""
    if len(x) < WIN:
        x = np.pad(np.asarray(x, np.float32), (0, WIN - len(x)))
    model = net()
    return model.probabilities(features(x, model.context))
