"""What the compositor derives from the matte on the canvas: the light-wrap weight, the
drop shadow, what shows behind the person, and the pixel classes of a composite.

Pixel classes: where alpha is 1 and no light wraps in, the output is the person's own
pixel (``pure``); the soft edge and the light-wrap rim (``mixed``) are computed pixel by
pixel with :func:`mix`. Light wrap and shadow are smooth, so they are worked out at
1/f of the canvas size (``EdgeLayers.f``) and scaled up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.matting._ops import factor_for, grow, shrink
from pipeline.matting.foreground import unmix

LIGHT_WRAP_SIGMA = 0.010  # of the canvas short side
SHADOW_OFFSET = (0.018, 0.024)  # (dx, dy) of the canvas short side
SHADOW_SIGMA = 0.022  # of the canvas short side
SHADOW_OPACITY = 0.45
FIELDS_SHORT = 160  # short side (px) at which the smooth layers and colour fields are worked out


@dataclass
class AlphaLayers:
    """Everything on the canvas that depends only on the matte (rebuilt when it changes)."""

    ac: np.ndarray  # alpha on the canvas (float32)
    wrap: np.ndarray | None  # light-wrap weight (float32) or None
    shadow: np.ndarray | None  # drop-shadow strength (float32) or None
    pure: np.ndarray  # uint8 1 where the output is the person's own colour
    mixed: np.ndarray  # flat indices of the soft edge and light-wrap pixels
    low_a: np.ndarray  # canvas alpha at the working resolution of the colour fields
    map_x: np.ndarray  # working-resolution x of each mixed pixel (see point_map)
    map_y: np.ndarray  # working-resolution y
    am3: np.ndarray  # (n, 3) alpha of the mixed pixels
    wrap3: np.ndarray | None  # (n, 3) light-wrap weight of the mixed pixels
    shadow3: np.ndarray | None  # (n, 3) shadow strength of the mixed pixels
    mixed_yx: tuple[np.ndarray, np.ndarray]  # canvas row and column of each mixed pixel


def pure_mask(ac: np.ndarray, wrap: np.ndarray | None) -> np.ndarray:
    """Where the output is the person's own colour: alpha 1 (within half a grey level)
    and no light wrap."""
    pure = ac >= np.float32(1.0 - 0.5 / 255)
    if wrap is not None:
        pure &= wrap <= 0.0
    return pure


def mix(
    colours: np.ndarray,
    am: np.ndarray,
    mf: np.ndarray,
    mb: np.ndarray,
    under: np.ndarray,
    wrap: np.ndarray | None,
    wrap_colour: np.ndarray | None,
    shadow: np.ndarray | None,
    rgba: bool,
) -> np.ndarray:
    """Output values (k, 3|4) uint8 of soft-edge pixels: person colours (k, 3) unmixed
    with the colour fields, light-wrapped, then over the background (``under``, k x 3) or,
    for RGBA, straight colour with coverage (alpha plus shadow) as alpha."""
    fg = unmix(colours.astype(np.float32), am, mf, mb)
    if rgba:
        cov = am if shadow is None else am + shadow * (1.0 - am)
        px = np.empty((len(fg), 4), np.float32)
        px[:, :3] = fg * am / np.maximum(cov, 1e-6)
        px[:, 3] = cov[:, 0] * 255.0
        return np.clip(px + 0.5, 0, 255).astype(np.uint8)
    if wrap is not None and wrap_colour is not None:
        fg += wrap * (wrap_colour - fg)
    val = am * fg + (1.0 - am) * under
    return np.clip(val + 0.5, 0, 255).astype(np.uint8)


_ROW = 1024


def point_map(v: np.ndarray) -> np.ndarray:
    """A flat float vector as a (rows, 1024) float32 map for cv2.remap (which refuses
    images taller than 32767), padded with zeros."""
    n = v.size
    out = np.zeros(max(1, -(-n // _ROW)) * _ROW, np.float32)
    out[:n] = v
    return out.reshape(-1, _ROW)


def sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, n: int) -> np.ndarray:
    """Bilinear samples (n, C) of ``field`` at the points of a :func:`point_map`."""
    got = cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return got.reshape(-1, field.shape[2] if field.ndim == 3 else 1)[:n]


class EdgeLayers:
    """Light wrap, drop shadow and pixel classes on a canvas of ``size`` (w, h).

    ``wrap`` is the light-wrap strength (0: off), ``shadow`` whether to cast one. The
    background colours the light wrap uses, and what shows behind the person, are kept
    for the last background plate (and matte) they were made for.
    """

    def __init__(self, size: tuple[int, int], wrap: float, shadow: bool) -> None:
        self.size = size
        self.wrap = wrap
        self.shadow = shadow
        short = min(size)
        self.wrap_sigma = max(1.0, LIGHT_WRAP_SIGMA * short)
        self.f = factor_for(short, FIELDS_SHORT)  # the smooth layers are worked out 1/f the size
        self.k = 1.0 / self.f
        self._wrap_colour: tuple[object, np.ndarray] | None = None  # <- plate
        self._under: tuple[object, AlphaLayers, np.ndarray] | None = None  # <- plate, matte (shadow)

    def soft(
        self, ac: np.ndarray, region: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Light-wrap weight and drop-shadow strength for canvas alpha ``ac``, on the whole
        canvas or on ``region`` (x0, y0, x1, y1) only. Both are smooth, so they are worked
        out at 1/f resolution; a region is computed on a crop aligned to that grid with a
        margin for the blurs, which gives the same values as the whole canvas would."""
        if self.wrap <= 0 and not self.shadow:
            return None, None
        cw, ch = self.size
        f, k = self.f, self.k
        short = min(cw, ch)
        if region is None:
            cx0, cy0, cx1, cy1 = 0, 0, cw, ch
        else:
            pad = int(math.ceil(3.0 * max(self.wrap_sigma, SHADOW_SIGMA * short if self.shadow else 0.0)))
            if self.shadow:
                pad += int(math.ceil(max(SHADOW_OFFSET) * short))
            pad += 2 * f
            x0, y0, x1, y1 = region
            cx0, cy0 = max(0, (x0 - pad) // f * f), max(0, (y0 - pad) // f * f)
            cx1, cy1 = min(cw, -(-(x1 + pad) // f) * f), min(ch, -(-(y1 + pad) // f) * f)
            if cx1 > cw // f * f:  # reaches the right/bottom strip a shrink leaves out
                cx1 = cw
            if cy1 > ch // f * f:
                cy1 = ch
        crop = ac[cy0:cy1, cx0:cx1]
        low_a = shrink(crop, f)
        size = (cx1 - cx0, cy1 - cy0)
        wrap = shadow = None
        if self.wrap > 0:
            edge = 1.0 - cv2.GaussianBlur(low_a, (0, 0), self.wrap_sigma * k)
            wrap = grow(edge, f, size)
            wrap *= np.float32(self.wrap)
            wrap[wrap < 2e-3] = 0.0  # also clears the (negative) deep inside
        if self.shadow:
            dx, dy = SHADOW_OFFSET[0] * short * k, SHADOW_OFFSET[1] * short * k
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            shifted = cv2.warpAffine(low_a, m, (low_a.shape[1], low_a.shape[0]), borderMode=cv2.BORDER_REPLICATE)
            sh = cv2.GaussianBlur(shifted, (0, 0), SHADOW_SIGMA * short * k) * np.float32(SHADOW_OPACITY)
            shadow = grow(sh, f, size)
        if region is None:
            return wrap, shadow
        x0, y0, x1, y1 = region
        inner = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
        return (
            None if wrap is None else np.ascontiguousarray(wrap[inner]),
            None if shadow is None else np.ascontiguousarray(shadow[inner]),
        )

    @property
    def margin(self) -> int:
        """How far from a change of the matte the light wrap and the shadow change."""
        short = min(self.size)
        m = int(math.ceil(3.0 * self.wrap_sigma)) + 2 if self.wrap > 0 else 2
        if self.shadow:
            m += int(math.ceil((max(SHADOW_OFFSET) + 3.0 * SHADOW_SIGMA) * short))
        return m

    def alpha_layers(self, ac: np.ndarray) -> AlphaLayers:
        """Canvas alpha ``ac`` (kept, not copied), light-wrap weight, drop shadow, and the
        pixel classes of the composite."""
        cw = self.size[0]
        wrap, shadow = self.soft(ac)
        pure = pure_mask(ac, wrap)
        mixed = np.flatnonzero(((ac > np.float32(0.5 / 255)) & ~pure).reshape(-1))
        ys, xs = np.divmod(mixed, cw)
        map_x = point_map((xs + 0.5) * self.k - 0.5)
        map_y = point_map((ys + 0.5) * self.k - 0.5)

        def at_mixed(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else np.repeat(x.reshape(-1)[mixed][:, None], 3, axis=1)

        am3 = at_mixed(ac)
        assert am3 is not None
        return AlphaLayers(
            ac, wrap, shadow, pure.view(np.uint8), mixed, shrink(ac, self.f), map_x, map_y, am3,
            at_mixed(wrap), at_mixed(shadow), (ys.astype(np.int32), xs.astype(np.int32)),
        )

    def wrap_colour(self, plate: np.ndarray) -> np.ndarray:
        """The background blurred for the light wrap (float32 canvas), once per plate."""
        if self._wrap_colour is not None and self._wrap_colour[0] is plate:
            return self._wrap_colour[1]
        low = shrink(plate, self.f).astype(np.float32)
        low = cv2.GaussianBlur(low, (0, 0), max(0.5, 2.0 * self.wrap_sigma * self.k))
        colour = grow(low, self.f, self.size)
        self._wrap_colour = (plate, colour)
        return colour

    def under(self, plate: np.ndarray | None, layers: AlphaLayers) -> np.ndarray:
        """What shows where the person is not: the plate darkened by the shadow (RGB), or
        for transparent output black with the shadow as alpha (RGBA). Once per plate and matte."""
        if self._under is not None and self._under[0] is plate and self._under[1] is layers:
            return self._under[2]
        cw, ch = self.size
        if plate is None:
            under = np.zeros((ch, cw, 4), np.uint8)
            if layers.shadow is not None:
                under[..., 3] = np.clip(layers.shadow * 255.0 + 0.5, 0, 255)
        elif layers.shadow is not None:
            under = plate.astype(np.float32)
            under *= (1.0 - layers.shadow)[..., None]
            under = np.clip(under + 0.5, 0, 255).astype(np.uint8)
        else:
            under = plate
        self._under = (plate, layers, under)
        return under


__all__ = ["AlphaLayers", "EdgeLayers", "mix", "point_map", "pure_mask", "sample"]
