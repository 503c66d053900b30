"""Background mode "blur": the source's own background, the person filled out and blurred.

The person is removed by pyramid push-pull filling from the pixels that are surely
background, the result blurred at about four working pixels per sigma and scaled to
cover the canvas. A static source background (a photo avatar, a locked-off camera) is
blurred once and redone only when the background moves noticeably.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.matting._ops import shrink
from pipeline.matting.backgrounds.base import Background

BLUR_SIGMA = 0.035  # background blur sigma at strength 1, of the canvas short side


def push_pull(img: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where ``weight`` is ~0 from the surrounding weighted colours (pyramid push-pull)."""
    levels = []
    s = img * weight[..., None]
    wgt = weight.copy()
    while True:
        levels.append((s, wgt))
        if min(wgt.shape[:2]) <= 4:
            break
        s, wgt = cv2.pyrDown(s), cv2.pyrDown(wgt)
    s, wgt = levels[-1]
    total = float(wgt.sum())
    mean = s.reshape(-1, 3).sum(0) / total if total > 1e-6 else np.full(3, 128.0, np.float32)
    filled = np.where(wgt[..., None] > 1e-6, s / np.maximum(wgt, 1e-6)[..., None], mean).astype(np.float32)
    for s, wgt in reversed(levels[:-1]):
        up = cv2.pyrUp(filled, dstsize=(wgt.shape[1], wgt.shape[0]))
        t = np.clip(wgt * 4.0, 0.0, 1.0)[..., None]
        filled = (s / np.maximum(wgt, 1e-6)[..., None]) * t + up * (1.0 - t)
        filled = filled.astype(np.float32)
    return filled


class BlurBackground(Background):
    """The source frame's background, blurred with ``strength`` (0..1), covering the canvas."""

    mode = "blur"
    from_source = True
    light_wrap = True

    def __init__(self, size: tuple[int, int], strength: float) -> None:
        self.size = size
        self.strength = strength
        self.cached: np.ndarray | None = None  # the plate last made
        self._thumbs: tuple[np.ndarray, np.ndarray] | None = None  # 1/8 source and alpha it was made from

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> np.ndarray:
        """Reused while the visible background and the person stay put (compared on 1/8
        thumbnails), so a photo avatar or a locked-off camera pays for it once."""
        assert rgb is not None and a is not None, "a blurred background is made from the source frame"
        h, w = rgb.shape[:2]
        thumb = shrink(rgb, 8).astype(np.float32)
        athumb = shrink(a, 8)
        if self.cached is not None and self._thumbs is not None:
            t0, a0 = self._thumbs
            bgmask = (athumb < 0.05) & (a0 < 0.05)
            moved = float(np.abs(athumb - a0).mean())
            diff = float(np.abs(thumb - t0)[bgmask].mean()) if bgmask.any() else 0.0
            if moved < 0.01 and diff < 3.0:
                return self.cached
        cw, ch = self.size
        sigma = self.strength * BLUR_SIGMA * min(cw, ch)  # canvas pixels
        cover = max(cw / w, ch / h)  # the source covers the canvas ("fill")
        # blur at about 4 working pixels per sigma: shrink the source by an integer factor
        sigma_src = sigma / cover
        f = max(1, int(sigma_src / 4.0))
        small = shrink(rgb, f).astype(np.float32)
        weight = np.clip(1.0 - 1.5 * shrink(a, f), 0.0, 1.0) ** 2  # how surely a pixel is background
        filled = push_pull(small, weight)
        if sigma_src / f > 0.3:
            filled = cv2.GaussianBlur(filled, (0, 0), sigma_src / f)
        size = (int(math.ceil(w * cover)), int(math.ceil(h * cover)))
        big = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
        x0, y0 = (big.shape[1] - cw) // 2, (big.shape[0] - ch) // 2
        plate = np.clip(big[y0 : y0 + ch, x0 : x0 + cw] + 0.5, 0, 255).astype(np.uint8)
        self.cached = plate
        self._thumbs = (thumb, athumb)
        return plate


__all__ = ["BLUR_SIGMA", "BlurBackground", "push_pull"]
