"""Small image operations shared by the matting modules (shrink/grow by integer factors,
box means, resizing, channel copies)."""

from __future__ import annotations

import cv2
import numpy as np


def shrink(img: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``img`` by an integer ``factor``: output pixel (y, x) is the mean of
    input pixels [y*f, (y+1)*f) x [x*f, (x+1)*f). The last ``h % f`` rows and ``w % f``
    columns are left out. OpenCV's area resize is several times faster for exact integer
    ratios than for fractional ones."""
    if factor <= 1:
        return img
    h, w = img.shape[:2]
    sh, sw = max(1, h // factor), max(1, w // factor)
    src = img[: sh * factor, : sw * factor] if (h % factor or w % factor) else img
    return cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA)


def factor_for(short: int, target: int) -> int:
    """The integer shrink factor bringing a short side of ``short`` closest to ``target``."""
    return max(1, int(round(short / float(target))))


def box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, borders reflected."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def grow(img: np.ndarray, factor: int, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """Bilinear inverse of :func:`shrink`: ``img`` scaled up by ``factor`` onto ``size``
    (w, h), pixel centres aligned, the left-out border rows/columns replicated."""
    w, h = size
    gw, gh = img.shape[1] * factor, img.shape[0] * factor
    if (gw, gh) == (w, h) or factor <= 1 and (img.shape[1], img.shape[0]) == (w, h):
        if factor <= 1:
            return img if dst is None else np.copyto(dst, img) or dst
        return cv2.resize(img, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)
    big = cv2.resize(img, (gw, gh), interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, 0, max(0, h - gh), 0, max(0, w - gw), cv2.BORDER_REPLICATE)[:h, :w]
    if dst is None:
        return np.ascontiguousarray(big)
    np.copyto(dst, big)
    return dst


def c3(x: np.ndarray) -> np.ndarray:
    """A single-channel image as three identical channels (HxWx3)."""
    return cv2.merge([x, x, x])


def resize(img: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """``img`` at ``size`` (w, h): area filter when shrinking, bilinear when enlarging;
    ``img`` itself (or copied into ``dst``) when it has that size already."""
    w, h = size
    if (img.shape[1], img.shape[0]) == (w, h):
        if dst is None:
            return img
        np.copyto(dst, img)
        return dst
    smaller = w * h < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), dst=dst, interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)
