"""Natural eye blinks: seeded, reproducible, every 2-6 s, never on a stressed vowel."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline import timing
from pipeline.types import Phoneme

CLOSE_S, HOLD_S, OPEN_S = 0.07, 0.04, 0.13  # lid down, closed, lid up


def _shape(t: np.ndarray) -> np.ndarray:
    """Lid closure (0..1) at times ``t`` relative to the blink start."""
    down = np.clip(t / CLOSE_S, 0, 1)
    up = np.clip((t - CLOSE_S - HOLD_S) / OPEN_S, 0, 1)
    out = np.where(t < CLOSE_S + HOLD_S, down**1.5, 1.0 - up**0.8)
    return np.where((t < 0) | (t > CLOSE_S + HOLD_S + OPEN_S), 0.0, out)


def blink_times(duration: float, seed: int, stressed: Sequence[tuple[float, float]] = ()) -> list[float]:
    """Start times of blinks: intervals of 2-6 s, moved off stressed syllables."""
    rng = np.random.default_rng(seed)
    total = CLOSE_S + HOLD_S + OPEN_S
    times: list[float] = []
    t = float(rng.uniform(0.6, 2.5))
    while t < duration - total:
        for _ in range(8):  # nudge later until clear of stressed vowels
            if not any(a - total < t < b for a, b in stressed):
                break
            t += 0.12
        if t < duration - total:
            times.append(t)
        t += float(rng.uniform(2.0, 6.0))
    return times


def blink_track(n_frames: int, fps: float, seed: int, phonemes: Sequence[Phoneme] | None = None) -> np.ndarray:
    """Per-frame lid closure for ``n_frames`` at ``fps``."""
    duration = n_frames / float(timing.fps_fraction(fps))
    stressed = [(p.start, p.end) for p in (phonemes or ()) if p.stress == 1]
    track = np.zeros(n_frames, np.float32)
    t = timing.frame_times(n_frames, fps) + 0.5 / float(timing.fps_fraction(fps))
    for start in blink_times(duration, seed, stressed):
        track = np.maximum(track, _shape(t - start).astype(np.float32))
    return track
