"""Foreground colour estimation (edge decontamination) and the plain "over" blend.

A soft-edge pixel (hair, a blurred outline) mixes the person's colour with the old
background: ``I = a * F + (1 - a) * B``. Compositing ``I`` over a new background would
carry the old one along as a halo; :func:`estimate_foreground` recovers ``F`` with
blur-fusion foreground estimation (:func:`fusion_fields`, two scales), so that the
composite ``a * F + (1 - a) * new`` is clean.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.matting._ops import box, c3, factor_for, grow, shrink


def as_alpha(alpha: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``alpha`` (HxW or HxWx1, uint8 or float) as float32 HxW in [0, 1], checked against
    the frame ``shape``; float32 input comes back as it is (not copied)."""
    a = np.asarray(alpha)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.shape != tuple(shape[:2]):
        raise InvalidOption(f"Alpha of shape {a.shape} does not match the frame ({shape[0]}x{shape[1]}).")
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255.0)
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    return a


def composite_over(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Plain "over": ``fg * a + bg * (1 - a)``, rounded to uint8 (no edge treatment)."""
    a = as_alpha(alpha, fg.shape[:2])[..., None]
    out = fg.astype(np.float32) * a + bg.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def fusion_fields(img: np.ndarray, a: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blur-fusion foreground and background colour fields of ``img`` (float32 HxWx3).

    Forte & Pitie (2021), two scales: local alpha-weighted means of the foreground (F) and
    background (B) colours, the foreground re-estimated from them, then local means again
    at a small radius. Radii scale with the image (9% and 1.2% of the short side).
    ``valid`` (0/1 float) marks pixels that exist (the rest of a canvas is ignored).
    Returns the two mean fields; the foreground of a pixel is then
    ``F = mF + a * (I - a * mF - (1 - a) * mB)``.
    """
    short = min(img.shape[:2])
    r_big, r_small = max(2, int(round(0.09 * short))), max(1, int(round(0.012 * short)))
    wf = a if valid is None else a * valid
    wb = (1.0 - a) if valid is None else (1.0 - a) * valid
    # 3-channel copies: numpy is several times slower broadcasting over a last axis of 3
    wf3, wb3, a3 = c3(wf), c3(wb), c3(a)

    def means(fg: np.ndarray, bg: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
        # weighted means (a weight sum of ~0 leaves ~0: those pixels get no weight later)
        mf = box(fg * wf3, r) / c3(np.maximum(box(wf, r), 1e-6))
        mb = box(bg * wb3, r) / c3(np.maximum(box(wb, r), 1e-6))
        return np.clip(mf, 0.0, 255.0, out=mf), np.clip(mb, 0.0, 255.0, out=mb)

    mf, mb = means(img, img, r_big)
    f1 = unmix(img, a3, mf, mb)
    return means(f1, mb, r_small)


def unmix(img: np.ndarray, a: np.ndarray, mf: np.ndarray, mb: np.ndarray) -> np.ndarray:
    """``mF + a * (I - a * mF - (1 - a) * mB)`` clipped to 0..255 (``a`` the shape of ``img``)."""
    res = img - mb
    res -= a * (mf - mb)
    res *= a
    res += mf
    return np.clip(res, 0.0, 255.0, out=res)


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, work_short: int = 360) -> np.ndarray:
    """Foreground colour (float32 HxWx3, 0..255) behind each pixel of ``rgb`` given ``alpha``.

    Where alpha is 1 this is the pixel itself; at soft edges the old background's share
    is taken out (see :func:`fusion_fields`). The smooth mean fields are computed at
    ``work_short`` pixels on the short side and upsampled.
    """
    h, w = rgb.shape[:2]
    a = as_alpha(alpha, rgb.shape)
    f = factor_for(min(h, w), work_short)
    mf, mb = fusion_fields(shrink(rgb, f).astype(np.float32), shrink(a, f))
    mf, mb = grow(mf, f, (w, h)), grow(mb, f, (w, h))
    return unmix(rgb.astype(np.float32), c3(a), mf, mb)


__all__ = ["as_alpha", "composite_over", "estimate_foreground", "fusion_fields", "unmix"]
