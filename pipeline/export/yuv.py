"""Frames that carry their YUV 4:2:0 picture next to the RGB one, so an H.264 writer need not
convert the whole frame again.

A presenter clip's output frame is the stored clip frame (decoded from H.264, so its YUV
planes come free with the decode) with only the lower face redrawn. :func:`with_i420`
attaches the picture as I420 (BT.709, limited range: what the writers encode) to the RGB
frame; :class:`I420Patcher` makes that I420 from the source frame's planes with only a
rectangle converted again (:class:`I420Patcher`). ``ColorConverter`` (``pipeline.export.base``) hands such a
frame's planes to the encoder as they are; every other frame is converted as before.

Safety: the attached planes describe the RGB pixels only while those stay as they were, so
a frame with planes is read-only (a consumer that wants to draw on it copies it, and a copy,
view or arithmetic result of it carries no planes and is converted as usual).
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

PAD = 4  # px around a redrawn rectangle that are converted in too (its pixels reach their chroma), even
MARGIN = 8  # px of context converted around that (the chroma filter's taps), even


class YuvFrame(np.ndarray):
    """An RGB ``(H, W, 3)`` uint8 frame with ``i420``: the same picture as a ``(H * 3 // 2, W)``
    I420 array (BT.709 limited range), or None. Only the object :func:`with_i420` made has it."""

    i420: np.ndarray | None = None

    def __array_finalize__(self, obj: object) -> None:
        self.i420 = None  # a view, copy or result of this frame is a new picture


def with_i420(rgb: np.ndarray, i420: np.ndarray) -> YuvFrame:
    """``rgb`` (read-only from now on) carrying ``i420`` (not copied, made read-only)."""
    h, w = rgb.shape[:2]
    if rgb.ndim != 3 or rgb.shape[2] != 3 or i420.shape != (h * 3 // 2, w) or h % 2 or w % 2:
        raise ValueError(f"I420 {i420.shape} does not describe an RGB frame {rgb.shape} of even size")
    frame = rgb.view(YuvFrame)
    i420.flags.writeable = False
    frame.i420 = i420
    frame.flags.writeable = False
    return frame


def i420_of(frame: np.ndarray) -> np.ndarray | None:
    """The I420 planes a frame carries, or None."""
    return frame.i420 if isinstance(frame, YuvFrame) else None


def to_i420(rgb: np.ndarray, sws: VideoReformatter | None = None) -> np.ndarray:
    """An even-sized RGB image as I420 (BT.709 limited range), the conversion the writers use."""
    src = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    out = (sws or VideoReformatter()).reformat(src, format="yuv420p", dst_colorspace=Colorspace.ITU709,
                                               dst_color_range=ColorRange.MPEG)
    return out.to_ndarray()


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded BT.709 limited-range YUV frame as RGB."""
    return frame.to_ndarray(format="rgb24", src_colorspace=Colorspace.ITU709, src_color_range=ColorRange.MPEG)


def planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (H, W), U and V (H/2, W/2) planes of an I420 array."""
    h, w = i420.shape[0] * 2 // 3, i420.shape[1]
    flat, n, q = i420.reshape(-1), h * w, h * w // 4  # U and V need not start on a row of the array
    return flat[:n].reshape(h, w), flat[n : n + q].reshape(h // 2, w // 2), flat[n + q :].reshape(h // 2, w // 2)


class I420Patcher:
    """Makes a frame's I420 from its source frame's planes with one redrawn rectangle converted
    in (``patcher(base, rgb, rect)``). The rectangle is widened by :data:`PAD` px to even bounds
    and converted with :data:`MARGIN` px around that, so what is pasted equals a conversion of
    the whole frame. The converted crop keeps the largest size asked so far (the scaler is set
    up once per size, which costs about what converting the crop does)."""

    def __init__(self) -> None:
        self._sws = VideoReformatter()
        self._size = (0, 0)  # (width, height) of the converted crop

    def __call__(self, base: np.ndarray, rgb: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        """A copy of ``base`` (the I420 of the picture before ``rect`` = (x0, y0, x1, y1) of
        ``rgb`` was redrawn) with that rectangle of ``rgb`` converted in."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = rect
        x0, y0 = max(0, x0 - PAD - x0 % 2), max(0, y0 - PAD - y0 % 2)
        x1, y1 = min(w, x1 + PAD + x1 % 2), min(h, y1 + PAD + y1 % 2)
        out = base.copy()
        if x1 <= x0 or y1 <= y0:
            return out
        cw = min(w, max(self._size[0], x1 - x0 + 2 * MARGIN))
        ch = min(h, max(self._size[1], y1 - y0 + 2 * MARGIN))
        self._size = (cw, ch)
        cx0 = min(max(0, (x0 + x1 - cw) // 4 * 2), w - cw)  # centred on the rectangle, even, inside
        cy0 = min(max(0, (y0 + y1 - ch) // 4 * 2), h - ch)
        crop = to_i420(rgb[cy0 : cy0 + ch, cx0 : cx0 + cw], self._sws)
        oy, ou, ov = planes(out)
        py, pu, pv = planes(crop)
        oy[y0:y1, x0:x1] = py[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
        a, b, c, d = (y0 - cy0) // 2, (y1 - cy0) // 2, (x0 - cx0) // 2, (x1 - cx0) // 2
        ou[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = pu[a:b, c:d]
        ov[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = pv[a:b, c:d]
        return out


__all__ = ["MARGIN", "PAD", "I420Patcher", "YuvFrame", "i420_of", "planes", "to_i420", "to_rgb", "with_i420"]
