"""Colour matching: a gentle pull of the person's colours towards a new background.

A per-channel gain and shift (3x4 affine transform, applied as lookup tables) from
subsampled person and background pixels, smoothed over updates so that a video source
does not flicker.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

REFRESH_AFTER = 10  # matte changes after which the tables are worked out again


def colour_transform(person: np.ndarray, plate: np.ndarray, strength: float) -> np.ndarray:
    """3x4 affine colour transform moving ``person`` pixels (n, 3) towards ``plate`` (m, 3).

    Gentle by design: means move ``0.35 * strength`` of the way (at most 40 levels) and
    the luminance contrast is matched only for textured backgrounds, within +-25%.
    """
    m = np.zeros((3, 4), np.float32)
    m[:, :3] = np.eye(3)
    if strength <= 0 or len(person) < 64 or len(plate) < 16:
        return m
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    mp, mb = person.mean(0), plate.mean(0)
    yp, yb = float((person @ luma).std()), float((plate @ luma).std())
    gain = 1.0
    if yb > 8.0 and yp > 4.0:
        gain = float(np.clip((yb / yp) ** (0.5 * strength), 0.8, 1.25))
    shift = np.clip(0.35 * strength * (mb - mp), -40.0, 40.0)
    m[:, :3] *= gain
    m[:, 3] = (1.0 - gain) * mp + shift
    return m


class ColourMatch:
    """Colour-match tables of one render (``strength`` 0: off)."""

    def __init__(self, strength: float) -> None:
        self.strength = strength
        self.lut: list[np.ndarray] | None = None  # per-channel tables; [] when off; None before the first update
        self.m: np.ndarray | None = None  # the 3x4 transform behind them (smoothed)
        self.age = 0  # matte changes since the last update

    @property
    def stale(self) -> bool:
        """Whether the person changed enough times for the tables to be worked out again."""
        return self.age >= REFRESH_AFTER

    def update(self, rgb: np.ndarray, a: np.ndarray, plate: np.ndarray | None) -> None:
        """New tables from subsampled person (alpha > 0.9) and background pixels."""
        self.age = 0
        if self.strength <= 0 or plate is None:
            self.lut, self.m = [], None
            return
        step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / 20000)))
        person = rgb[::step, ::step].reshape(-1, 3)[(a[::step, ::step] > 0.9).reshape(-1)].astype(np.float32)
        pstep = max(1, int(math.sqrt(plate.shape[0] * plate.shape[1] / 20000)))
        m = colour_transform(person, plate[::pstep, ::pstep].reshape(-1, 3).astype(np.float32), self.strength)
        if self.m is not None:
            m = self.m + 0.15 * (m - self.m)
        self.m = m
        v = np.arange(256, dtype=np.float32)
        self.lut = [np.clip(v * m[c, c] + m[c, 3] + 0.5, 0, 255).astype(np.uint8) for c in range(3)]

    def recolour(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (uint8 ...x3) through the tables (``rgb`` itself when matching is off)."""
        if not self.lut:
            return rgb
        return cv2.merge([cv2.LUT(p, t) for p, t in zip(cv2.split(rgb), self.lut)])


__all__ = ["ColourMatch", "colour_transform"]
