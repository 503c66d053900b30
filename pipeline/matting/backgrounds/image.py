"""Background mode "image": a picture file, loaded and fitted to the canvas once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.matting.backgrounds.base import Background
from pipeline.matting.framing import fit_image


class ImageBackground(Background):
    """An image (any format Pillow reads) fitted to the canvas: fill, fit or stretch."""

    mode = "image"
    colour_match = True
    light_wrap = True

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fit: str = "fill",
        anchor: tuple[float, float] = (0.5, 0.5),
        fill: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        from pipeline.media.image import load_image

        self._plate = fit_image(load_image(path), size, fit, anchor, fill)

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> np.ndarray:
        return self._plate


__all__ = ["ImageBackground"]
