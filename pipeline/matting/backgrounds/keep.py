"""Background mode "keep": the source frame as it is, no matte needed. Reframed onto
another output shape, it sits on a blurred, enlarged copy of itself."""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.matting.backgrounds.base import Background
from pipeline.matting.framing import Canvas


class KeepBackground(Background):
    """The source's own background: the frame itself, or for another framing a blurred
    copy of the frame covering the canvas behind it."""

    mode = "keep"

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> np.ndarray:
        """The frame enlarged to cover the canvas and blurred (at 1/16 size)."""
        assert rgb is not None, "mode keep shows the source frame"
        cw, ch = self.canvas.size
        h, w = rgb.shape[:2]
        cover = max(cw / w, ch / h)
        tw, th = max(8, int(round(w * cover / 16))), max(8, int(round(h * cover / 16)))
        small = cv2.GaussianBlur(cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA), (0, 0), 2.0)
        size = (int(math.ceil(w * cover)), int(math.ceil(h * cover)))
        big = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
        x0, y0 = (big.shape[1] - cw) // 2, (big.shape[0] - ch) // 2
        return np.ascontiguousarray(big[y0 : y0 + ch, x0 : x0 + cw])

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        """The output frame of mode keep: the source, placed on :meth:`plate` when reframed."""
        if self.canvas.identity:
            return rgb.copy()
        out = self.plate(0.0, rgb)
        self.canvas.paste(rgb, out)
        return out


__all__ = ["KeepBackground"]
