"""Speech-coupled head motion and brow raises, seeded and reproducible.

- Sway: smooth low-frequency noise (0.1-0.5 Hz) on yaw, pitch and roll, a little
  larger in pauses (listeners keep moving when they are not talking).
- Nods: a small chin-down bump on each stressed vowel, strongest after a pause.
- Brows: a raise on emphasised syllables (stressed vowels that follow a pause or
  start a sentence), never more often than every 1.2 s.
Amplitudes are degrees at intensity 1; the engine turns them into pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline import timing
from pipeline.types import Phoneme
from pipeline.phones import PAUSE, is_vowel

SWAY_DEG = {"yaw": 3.0, "pitch": 2.0, "roll": 1.8}
NOD_DEG = 2.2


def _smooth_noise(n: int, fps: float, rng: np.random.Generator, cutoff_hz: float) -> np.ndarray:
    """Unit-RMS noise band-limited to ``cutoff_hz`` (Gaussian smoothing of white noise)."""
    if n == 0:
        return np.zeros(0, np.float32)
    sigma = fps / (2 * np.pi * cutoff_hz)
    pad = int(4 * sigma) + 1
    x = rng.standard_normal(n + 2 * pad)
    k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / sigma) ** 2)
    y = np.convolve(x, k / k.sum(), mode="same")[pad : pad + n]
    return (y / max(float(np.std(y)), 1e-9)).astype(np.float32)


def _bump(t: np.ndarray, center: float, width: float) -> np.ndarray:
    """Smooth raised-cosine bump of total ``width`` seconds, peak 1 at ``center``."""
    x = (t - center) / (0.5 * width)
    return np.where(np.abs(x) < 1, 0.5 * (1 + np.cos(np.pi * x)), 0.0)


def emphasis(phonemes: Sequence[Phoneme]) -> list[tuple[Phoneme, float]]:
    """Stressed vowels with a weight: 1 after a pause or at the start, else 0.5."""
    out = []
    seen_vowel_since_pause = False
    for p in phonemes:
        if p.symbol == PAUSE and p.duration >= 0.12:
            seen_vowel_since_pause = False
        elif is_vowel(p.symbol) and p.stress == 1:
            out.append((p, 1.0 if not seen_vowel_since_pause else 0.5))
            seen_vowel_since_pause = True
        elif is_vowel(p.symbol):
            seen_vowel_since_pause = True
    return out


def gaze_track(n_frames: int, fps: float, seed: int, amount: float) -> np.ndarray:
    """Small sideways eye movements: a quick saccade (~40 ms) to a new point every
    0.6-2.5 s, held in between, mostly near the centre."""
    out = np.zeros(n_frames, np.float32)
    if amount <= 0 or n_frames == 0:
        return out
    rng = np.random.default_rng([seed, 11])
    t = timing.frame_times(n_frames, fps)
    pos, start = 0.0, float(rng.uniform(0.3, 1.2))
    target_times, targets = [0.0], [0.0]
    while start < t[-1]:
        pos = float(np.clip(0.55 * pos + rng.normal(0.0, 0.6), -1.0, 1.0))
        target_times.append(start)
        targets.append(pos)
        start += float(rng.uniform(0.6, 2.5))
    for a, p0, p1 in zip(target_times[1:], targets[:-1], targets[1:]):
        k = np.clip((t - a) / 0.04, 0.0, 1.0)
        sel = t >= a
        out[sel] = (p0 + (p1 - p0) * k[sel]).astype(np.float32)
    return amount * out


def head_tracks(
    n_frames: int,
    fps: float,
    seed: int,
    intensity: float,
    brow_strength: float,
    phonemes: Sequence[Phoneme] | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame yaw/pitch/roll (degrees) and brow (0..1)."""
    rng = np.random.default_rng([seed, 7])
    t = timing.frame_times(n_frames, fps)
    out = {k: np.zeros(n_frames, np.float32) for k in ("yaw", "pitch", "roll", "brow")}
    phonemes = phonemes or ()
    talking = np.zeros(n_frames, np.float32)
    for p in phonemes:
        if p.symbol != PAUSE:
            talking[(t >= p.start) & (t < p.end)] = 1.0
    if n_frames:
        k = np.ones(max(1, int(0.4 * fps)))
        talking = np.clip(np.convolve(talking, k / k.sum(), mode="same"), 0, 1)
    sway_gain = 1.0 + 0.3 * (1 - talking)
    if intensity > 0:
        for name, amp in SWAY_DEG.items():
            out[name] = intensity * amp * _smooth_noise(n_frames, fps, rng, 0.35) * sway_gain * 0.6
        for p, w in emphasis(phonemes):
            out["pitch"] += intensity * NOD_DEG * w * _bump(t, p.start + 0.06, 0.45).astype(np.float32)
    if brow_strength > 0:
        last = -10.0
        for p, w in emphasis(phonemes):
            if w >= 1.0 and p.start - last >= 1.2:
                out["brow"] = np.maximum(out["brow"], brow_strength * _bump(t, p.start + 0.1, 0.7).astype(np.float32))
                last = p.start
    return {k: v.astype(np.float32) for k, v in out.items()}
