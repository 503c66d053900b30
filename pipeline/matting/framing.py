"""Output framing: the output's shape and size, where the person's frame lands on it,
and fitting a picture (a background image or video frame) to a canvas.

    size = output_size(opts, (w, h))             # e.g. portrait 720p: (720, 1280)
    canvas = Canvas(opts, (w, h))                # size, placement, the visible part
    layer_on_canvas = canvas.put(alpha)          # a source-size layer scaled and placed
    plate = fit_image(img, canvas.size, "fill")  # a picture covering the canvas
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.matting._ops import resize
from pipeline.options import BackgroundOptions

RESOLUTION_SHORT = {"720p": 720, "1080p": 1080, "4k": 2160}
ASPECT = {"portrait": (9, 16), "square": (1, 1), "landscape": (16, 9)}  # (w, h)


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def output_size(opts: BackgroundOptions, src_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the output for a source of ``src_size`` (width, height).

    The resolution names the short side (720p portrait is 720x1280, landscape 1280x720);
    "source" keeps the source's short side. Sizes other than the source's are even, as
    4:2:0 video needs.
    """
    sw, sh = src_size
    if opts.framing == "source" and opts.resolution == "source":
        return sw, sh
    short = RESOLUTION_SHORT.get(opts.resolution, min(sw, sh))
    if opts.framing == "source":
        aw, ah = sw, sh
    else:
        aw, ah = ASPECT[opts.framing]
    if aw <= ah:
        return _even(short), _even(short * ah / aw)
    return _even(short * aw / ah), _even(short)


@dataclass(frozen=True)
class Placement:
    """Where the scaled source frame lands on the canvas (may extend past its edges)."""

    x: int  # left edge on the canvas
    y: int  # top edge on the canvas
    w: int  # scaled source width
    h: int  # scaled source height

    def clip(self, cw: int, ch: int) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
        """(canvas rows/cols, person rows/cols) of the visible part, or None if off-canvas."""
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(cw, self.x + self.w), min(ch, self.y + self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        canvas = (slice(y0, y1), slice(x0, x1))
        person = (slice(y0 - self.y, y1 - self.y), slice(x0 - self.x, x1 - self.x))
        return canvas, person


def placement(opts: BackgroundOptions, src_size: tuple[int, int], out_size: tuple[int, int]) -> Placement:
    """The source frame scaled to fit inside the canvas, times ``person_scale``, aligned
    by ``person_x`` / ``person_y`` (0: left/top edges flush, 1: right/bottom edges flush)."""
    sw, sh = src_size
    cw, ch = out_size
    if (sw, sh) == (cw, ch) and opts.person_scale == 1.0:
        return Placement(0, 0, sw, sh)
    k = min(cw / sw, ch / sh) * opts.person_scale
    w, h = max(1, int(round(sw * k))), max(1, int(round(sh * k)))
    return Placement(int(round((cw - w) * opts.person_x)), int(round((ch - h) * opts.person_y)), w, h)


class Canvas:
    """The output canvas of one render and where the source frame lands on it."""

    def __init__(self, opts: BackgroundOptions, src_size: tuple[int, int]) -> None:
        self.src_size = (int(src_size[0]), int(src_size[1]))
        self.size = output_size(opts, self.src_size)  # (width, height) of the output
        self.place = placement(opts, self.src_size, self.size)
        cw, ch = self.size
        # the output is the source frame itself, pixel for pixel
        self.identity = self.place == Placement(0, 0, cw, ch) and self.src_size == self.size
        self.clip = self.place.clip(cw, ch)  # the visible part (see Placement.clip)

    def put(self, layer: np.ndarray) -> np.ndarray:
        """``layer`` (source size) scaled and placed on a zero canvas (``layer`` itself for
        the identity framing)."""
        if self.identity:
            return layer
        cw, ch = self.size
        out = np.zeros((ch, cw) + layer.shape[2:], layer.dtype)
        self.paste(layer, out)
        return out

    def paste(self, layer: np.ndarray, out: np.ndarray) -> None:
        """The visible part of ``layer`` (source size), scaled, written into ``out`` (canvas)."""
        if self.clip is not None:
            (cy, cx), (py, px) = self.clip
            out[cy, cx] = resize(layer, (self.place.w, self.place.h))[py, px]


def fit_image(
    img: np.ndarray,
    size: tuple[int, int],
    fit: str = "fill",
    anchor: tuple[float, float] = (0.5, 0.5),
    fill: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """``img`` on a canvas of ``size`` (w, h): "fill" covers it (cropping at ``anchor``),
    "fit" shows all of it (bars of colour ``fill``, placed at ``anchor``), "stretch"
    distorts it to the canvas."""
    cw, ch = size
    ih, iw = img.shape[:2]
    ax, ay = anchor
    if fit == "stretch":
        return np.ascontiguousarray(resize(img, (cw, ch)))
    if fit == "fill":
        k = max(cw / iw, ch / ih)
        rw, rh = max(cw, int(math.ceil(iw * k - 1e-6))), max(ch, int(math.ceil(ih * k - 1e-6)))
        big = resize(img, (rw, rh))
        x0, y0 = int(round((rw - cw) * ax)), int(round((rh - ch) * ay))
        return np.ascontiguousarray(big[y0 : y0 + ch, x0 : x0 + cw])
    if fit == "fit":
        k = min(cw / iw, ch / ih)
        rw, rh = min(cw, max(1, int(round(iw * k)))), min(ch, max(1, int(round(ih * k))))
        out = np.empty((ch, cw, 3), np.uint8)
        out[:] = fill
        x0, y0 = int(round((cw - rw) * ax)), int(round((ch - rh) * ay))
        out[y0 : y0 + rh, x0 : x0 + rw] = resize(img, (rw, rh))
        return out
    raise InvalidOption(f"image_fit must be fit, fill or stretch, not {fit!r}.")


__all__ = ["ASPECT", "RESOLUTION_SHORT", "Canvas", "Placement", "fit_image", "output_size", "placement"]
