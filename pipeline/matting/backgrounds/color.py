"""Background mode "color": one solid colour (and the colour parser the options use)."""

from __future__ import annotations

import re

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.matting.backgrounds.base import Background


def parse_color(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"``, ``"rrggbb"`` or ``"#rgb"`` as an (r, g, b) tuple."""
    s = str(color).strip().lstrip("#")
    if re.fullmatch(r"[0-9a-fA-F]{3}", s):
        s = "".join(c * 2 for c in s)
    if not re.fullmatch(r"[0-9a-fA-F]{6}", s):
        raise InvalidOption(f"Colour must be written like #1a2b3c, not {color!r}.")
    return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)


class ColorBackground(Background):
    """A canvas of one colour, made once."""

    mode = "color"
    colour_match = True
    light_wrap = True

    def __init__(self, size: tuple[int, int], color: tuple[int, int, int]) -> None:
        cw, ch = size
        self._plate = np.empty((ch, cw, 3), np.uint8)
        self._plate[:] = color

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> np.ndarray:
        return self._plate


__all__ = ["ColorBackground", "parse_color"]
