"""The whole viseme chain: Speech -> per-frame mouth channels in ``Tracks``."""

from __future__ import annotations

import numpy as np

from pipeline import timing
from pipeline.types import MOUTH_CHANNELS, AudioClip, Speech, Tracks
from pipeline.visemes import acoustic, passes


def dense_curve(speech: Speech) -> tuple[np.ndarray, list[passes.Closure], list[passes.Peak]]:
    """Dense (RATE Hz) mouth curve, closure intervals and vowel peaks for ``speech``."""
    if speech.phonemes:
        keys = passes.pauses(passes.targets(speech.phonemes))
        if speech.source == "phones":
            keys = passes.hedge_vowels(keys, HEDGE_VOWELS)
        curve = passes.coarticulate(keys, speech.duration)
        # recognised phones run on into a pause by a few tens of ms: close sooner after them
        cl = passes.closures(keys, settle=PHONES_SETTLE_S if speech.source == "phones" else 0.04)
        curve = passes.smooth(curve)
        if speech.source == "phones":
            curve = _with_loudness(curve, speech)
            cl = cl + silent_closures(speech.audio)
        curve = passes.apply_closures(curve, cl)
        return curve, cl, passes.peaks(keys)
    curve, cl = acoustic.estimate(speech.audio)
    return curve, cl, []


PHONES_SETTLE_S = 0.01  # lips close this soon after recognised speech ends (0.04 with exact times)
HEDGE_VOWELS = 0.5  # recognised vowels (no transcript) open at least this far towards /ə/
SILENT_DB = 50.0  # audio this far below the speech level (or under -65 dBFS) is silence
SILENT_MIN_S = 0.12  # silences at least this long close the lips (as pauses of a transcript do)
SILENT_SETTLE_S = 0.02  # the lips close this long after a silence starts...
SILENT_MARGIN_S = 0.04  # ...and open this long before it ends


def silent_closures(audio: AudioClip) -> list[passes.Closure]:
    """Closures over stretches where the recording is silent, whatever the recogniser
    heard there (timing without a transcript can run a phone on into the pause)."""
    hop = int(round(audio.rate / passes.RATE))
    x = np.asarray(audio.samples, np.float32)
    n = len(x) // hop
    if n < 2:
        return []
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20.0 * np.log10(rms)
    loud = float(np.percentile(db, 95))
    quiet = db < max(loud - SILENT_DB, -65.0)
    out: list[passes.Closure] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    frame_s = hop / audio.rate  # not 1 / RATE: 110 samples at 22.05 kHz are 4.99 ms (0.11 s off after 50 s)
    for a, b in zip(edges[::2], edges[1::2]):
        t0, t1 = a * frame_s, b * frame_s
        if t1 - t0 >= SILENT_MIN_S:
            start = t0 if a == 0 else t0 + SILENT_SETTLE_S
            end = t1 + 1.0 if b == n else t1 - SILENT_MARGIN_S
            out.append(passes.Closure(start, end))
    return out


LOUDNESS_SHARE = 1.0  # how much of the acoustic opening recognised phones may be raised to (was 0.8:
# the 20-60 ms schwa of "the" before a pause, recognised as part of a consonant, opened to 0.06-0.097)
LOUDNESS_DELAY_S = 0.03  # the loudness opening is moved this much later (it leads the vowels)


def _with_loudness(curve: np.ndarray, speech: Speech) -> np.ndarray:
    """Recognised phones (no transcript) can name a loud vowel as a consonant: let the
    jaw and lips open at least as far as the loudness alone suggests, scaled down."""
    ac, _ = acoustic.estimate(speech.audio)
    lag = int(round(LOUDNESS_DELAY_S * passes.RATE))
    if lag > 0:
        ac = np.concatenate([np.zeros((lag, ac.shape[1]), ac.dtype), ac[:-lag]])
    n = min(len(curve), len(ac))
    out = curve.copy()
    for ch in ("jaw", "gap"):
        i = passes.CH[ch]
        out[:n, i] = np.maximum(out[:n, i], LOUDNESS_SHARE * ac[:n, i])
    return out


def build_mouth_tracks(speech: Speech, fps: float, mouth_scale: float = 1.0) -> Tracks:
    """Mouth channels for every output frame; frame count = round(duration * fps)."""
    n = timing.frame_count(speech.duration, fps)
    curve, cl, pk = dense_curve(speech)
    frames = passes.sample(curve, fps, n, cl, pk)
    tracks = Tracks(fps=fps, n_frames=n)
    for i, name in enumerate(MOUTH_CHANNELS):
        values = frames[:, i]
        if name in ("jaw", "gap"):
            values = np.clip(values * mouth_scale, 0.0, 1.5)
        tracks.set(name, values)
    return tracks
