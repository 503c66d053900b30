"""The one place where seconds become frame indices and back.

Convention: frame ``i`` is presented from ``i / fps`` to ``(i + 1) / fps``. A clip of
``duration`` seconds has ``round(duration * fps)`` frames (at least one).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def fps_fraction(fps: float) -> Fraction:
    """Exact rational frame rate; 29.97 -> 30000/1001, 23.976 -> 24000/1001."""
    for num in (24000, 30000, 60000):
        if abs(fps - num / 1001) < 0.005:
            return Fraction(num, 1001)
    return Fraction(fps).limit_denominator(1001)


def frame_count(duration: float, fps: float) -> int:
    """Number of frames that cover ``duration`` seconds at ``fps``."""
    if duration <= 0:
        return 0
    return max(1, int(round(duration * float(fps_fraction(fps)))))


def frame_start(index: int | np.ndarray, fps: float) -> float | np.ndarray:
    """Start time in seconds of frame ``index``."""
    return index / float(fps_fraction(fps))


def frame_times(n: int, fps: float) -> np.ndarray:
    """Start times of frames ``0..n-1``."""
    return np.arange(n, dtype=np.float64) / float(fps_fraction(fps))


def frame_index(seconds: float, fps: float) -> int:
    """Index of the frame on screen at ``seconds`` (floor), never negative."""
    return max(0, int(math.floor(seconds * float(fps_fraction(fps)) + 1e-9)))
