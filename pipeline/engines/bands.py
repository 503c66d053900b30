"""Band warps: the deformation primitive of the warp engine.

A facial feature (mouth, eye) gets a local frame: ``u`` along the feature, ``v``
across it (downwards). In each column ``u`` a few *knots* sit on feature curves
(lip edges, chin, nose base...). A pose moves the knots along ``v``; between two
knots the skin is stretched or compressed linearly, and outside the outermost
knots nothing moves. The inverse (output -> source) map is exact per column, so
there is no fold-over, and pixels whose knots do not move are sampled exactly at
their own position (pixel-identical output).

Everything that depends only on the avatar (frame, per-pixel u/v, knot curves)
is computed once in :class:`BandField`; per frame only a few array operations run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalFrame:
    origin: np.ndarray  # (2,) image pixels
    ex: np.ndarray  # unit vector along the feature
    ey: np.ndarray  # unit vector across it, pointing down the face

    @classmethod
    def from_points(cls, left: np.ndarray, right: np.ndarray, origin: np.ndarray) -> "LocalFrame":
        d = np.asarray(right, np.float64) - np.asarray(left, np.float64)
        ex = d / max(np.linalg.norm(d), 1e-6)
        ey = np.array([-ex[1], ex[0]])
        return cls(np.asarray(origin, np.float64), ex, ey)

    def to_local(self, pts: np.ndarray) -> np.ndarray:
        rel = np.asarray(pts, np.float64)[..., :2] - self.origin
        return np.stack([rel @ self.ex, rel @ self.ey], axis=-1)

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        return self.origin + uv[..., :1] * self.ex + uv[..., 1:2] * self.ey


def curve_fn(local_pts: np.ndarray):
    """v as a function of u through points (sorted by u, clamped at the ends)."""
    order = np.argsort(local_pts[:, 0])
    us, vs = local_pts[order, 0], local_pts[order, 1]
    us = us + np.arange(len(us)) * 1e-6  # strictly increasing for np.interp

    def f(u: np.ndarray) -> np.ndarray:
        return np.interp(u, us, vs).astype(np.float32)

    return f


def clip_rect(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> tuple[int, int, int, int]:
    return max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))


class BandField:
    """Per-pixel local coordinates of a rectangle of the image, in a local frame."""

    def __init__(self, frame: LocalFrame, rect: tuple[int, int, int, int]) -> None:
        self.frame = frame
        self.rect = rect
        x0, y0, x1, y1 = rect
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self.X, self.Y = xs, ys
        rel_x, rel_y = xs - frame.origin[0], ys - frame.origin[1]
        self.u = (rel_x * frame.ex[0] + rel_y * frame.ex[1]).astype(np.float32)
        self.v = (rel_x * frame.ey[0] + rel_y * frame.ey[1]).astype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return self.u.shape

    def maps(self, du: np.ndarray | float, dv: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Absolute source maps for cv2.remap from local displacements (source - output)."""
        ex, ey = self.frame.ex, self.frame.ey
        mx = self.X + (du * np.float32(ex[0]) + dv * np.float32(ey[0]))
        my = self.Y + (du * np.float32(ex[1]) + dv * np.float32(ey[1]))
        return mx.astype(np.float32, copy=False), my.astype(np.float32, copy=False)


def piecewise(v: np.ndarray, out_knots: list[np.ndarray], src_knots: list[np.ndarray]) -> np.ndarray:
    """Inverse band map along v.

    ``out_knots``/``src_knots`` are increasing lists of per-pixel knot positions in
    output and source space. Between knots k and k+1, output v maps linearly onto
    source; outside the first and last knot, v maps to itself (those knots must not
    move). Returns source v for every output v.
    """
    src = v.copy()
    flat_v, flat_src = v.ravel(), src.ravel()
    for k in range(len(out_knots) - 1):
        oa, ob = out_knots[k], out_knots[k + 1]
        inside = (v >= oa) & (v < ob)
        idx = np.flatnonzero(inside)
        if not len(idx):
            continue
        oa_i, ob_i = oa.ravel()[idx], ob.ravel()[idx]
        sa_i, sb_i = src_knots[k].ravel()[idx], src_knots[k + 1].ravel()[idx]
        span = ob_i - oa_i
        t = (flat_v[idx] - oa_i) / np.maximum(span, 1e-3)
        flat_src[idx] = sa_i + t * (sb_i - sa_i)
    return src


# --------------------------------------------------------------------------- half resolution
# A large feature's flow can be computed on every second pixel and interpolated: sample j of a
# half-resolution field sits at full-resolution position 2j + 0.5, which is where cv2.resize
# (INTER_LINEAR, 2x) puts it, so up2() puts every value back exactly where it was computed.


def half(a: np.ndarray) -> np.ndarray:
    """A per-pixel array at half resolution: the mean of each 2x2 block (the value at its centre
    for anything linear; odd sizes repeat the last row/column)."""
    h, w = a.shape
    a = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge") if (h % 2 or w % 2) else a
    return a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3), dtype=np.float32)


def half_field(field: BandField) -> BandField:
    """``field`` sampled at the centres of its 2x2 blocks (local coordinates exact: they are affine)."""
    out = object.__new__(BandField)
    out.frame, out.rect = field.frame, field.rect
    x0, y0 = field.rect[:2]
    h, w = field.shape
    ys, xs = np.mgrid[0 : (h + 1) // 2, 0 : (w + 1) // 2].astype(np.float32)
    out.X, out.Y = x0 + 2 * xs + np.float32(0.5), y0 + 2 * ys + np.float32(0.5)
    rel_x, rel_y = out.X - field.frame.origin[0], out.Y - field.frame.origin[1]
    ex, ey = field.frame.ex, field.frame.ey
    out.u = (rel_x * ex[0] + rel_y * ex[1]).astype(np.float32)
    out.v = (rel_x * ey[0] + rel_y * ey[1]).astype(np.float32)
    return out


def up2(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A half-resolution array (see :func:`half`) back at full resolution ``shape``."""
    import cv2

    big = cv2.resize(a, (2 * a.shape[1], 2 * a.shape[0]), interpolation=cv2.INTER_LINEAR)
    return big[: shape[0], : shape[1]]
