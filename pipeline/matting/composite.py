"""Background replacement and output framing.

A :class:`Compositor` is prepared once per render (``Compositor(opts, src_size, fps)``)
and turns each animated frame plus its person alpha into an output frame::

    with Compositor(opts, (w, h), fps) as comp:
        for i, (rgb, alpha) in enumerate(frames):
            out = comp.apply(rgb, alpha, i)      # RGB, or RGBA (straight alpha) for "transparent"

What it does, per frame, in this order:

1. *Colour matching*: a gentle per-channel shift (and a luminance contrast match for
   textured backgrounds) of the person towards the new background, as lookup tables.
2. *Framing*: the person frame and its alpha are scaled (cv2.resize) and placed on the
   output canvas (aspect, resolution, position, scale).
3. *Pixel classes*: where alpha is 1 (and no light wraps in) the output is the person's
   own pixel, copied under a mask; where alpha is 0 it is the background (darkened by
   the shadow); only the soft edge and the light-wrap rim are computed pixel by pixel.
4. *Foreground colours* of the soft-edge pixels are estimated (blur-fusion foreground
   estimation, two scales), so the old background mixed into hair and edge pixels
   (and any mixing by the scaling) does not come along as a halo. The result is
   composited "over" with that colour: ``out = a * F + (1 - a) * background``, which is
   the premultiplied-correct sum; transparent output keeps F as straight colour.
5. *Light wrap* (the background blurred, bleeding over the person's edge) and an optional
   soft *drop shadow* under the person.

Everything that does not change per frame is computed once: the background image is
loaded and fitted once; the last full composite is kept, and a frame whose matte and
background match it redoes only the pixels that changed (the mouth, the eyes); one whose
matte changed in a region (a head turn) redoes that region; a frame that changed
nearly everywhere (a video source) is composited in full. A static source background
for "blur" is blurred once and redone only when the background moves noticeably.
Background videos are decoded with PyAV, looped, and sampled by timestamp at the output
frame rate.

A photo avatar goes further with :meth:`Compositor.prepare_still`: colour matching,
edge colours and light wrap are applied once to the photo, the engine animates that
image with the matte as a fourth channel, and each frame is one blend over the region
where it differs from the still (~0.3-0.5 ms at 512x512 with head motion).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline import timing
from pipeline.errors import InvalidOption, UnsupportedMedia
from pipeline.matting._ops import box as _box
from pipeline.matting._ops import factor_for, grow, shrink
from pipeline.options import BackgroundOptions

__all__ = [
    "BackgroundOptions",
    "BackgroundVideo",
    "Compositor",
    "Placement",
    "composite_over",
    "estimate_foreground",
    "fit_image",
    "output_size",
    "parse_color",
    "placement",
]

log = logging.getLogger(__name__)

RESOLUTION_SHORT = {"720p": 720, "1080p": 1080, "4k": 2160}
ASPECT = {"portrait": (9, 16), "square": (1, 1), "landscape": (16, 9)}  # (w, h)

LIGHT_WRAP_SIGMA = 0.010  # of the canvas short side
SHADOW_OFFSET = (0.018, 0.024)  # (dx, dy) of the canvas short side
SHADOW_SIGMA = 0.022  # of the canvas short side
SHADOW_OPACITY = 0.45
BLUR_SIGMA = 0.035  # background blur sigma at strength 1, of the canvas short side


# --- geometry -----------------------------------------------------------------------------


def parse_color(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"``, ``"rrggbb"`` or ``"#rgb"`` as an (r, g, b) tuple."""
    s = str(color).strip().lstrip("#")
    if re.fullmatch(r"[0-9a-fA-F]{3}", s):
        s = "".join(c * 2 for c in s)
    if not re.fullmatch(r"[0-9a-fA-F]{6}", s):
        raise InvalidOption(f"Colour must be written like #1a2b3c, not {color!r}.")
    return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)


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


def _resize(img: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """Area filter when shrinking, bilinear when enlarging."""
    w, h = size
    if (img.shape[1], img.shape[0]) == (w, h):
        if dst is None:
            return img
        np.copyto(dst, img)
        return dst
    shrink = w * h < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), dst=dst, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


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
        return np.ascontiguousarray(_resize(img, (cw, ch)))
    if fit == "fill":
        k = max(cw / iw, ch / ih)
        rw, rh = max(cw, int(math.ceil(iw * k - 1e-6))), max(ch, int(math.ceil(ih * k - 1e-6)))
        big = _resize(img, (rw, rh))
        x0, y0 = int(round((rw - cw) * ax)), int(round((rh - ch) * ay))
        return np.ascontiguousarray(big[y0 : y0 + ch, x0 : x0 + cw])
    if fit == "fit":
        k = min(cw / iw, ch / ih)
        rw, rh = min(cw, max(1, int(round(iw * k)))), min(ch, max(1, int(round(ih * k))))
        out = np.empty((ch, cw, 3), np.uint8)
        out[:] = fill
        x0, y0 = int(round((cw - rw) * ax)), int(round((ch - rh) * ay))
        out[y0 : y0 + rh, x0 : x0 + rw] = _resize(img, (rw, rh))
        return out
    raise InvalidOption(f"image_fit must be fit, fill or stretch, not {fit!r}.")


# --- image maths --------------------------------------------------------------------------


def composite_over(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Plain "over": ``fg * a + bg * (1 - a)``, rounded to uint8 (no edge treatment)."""
    a = _as_alpha(alpha, fg.shape[:2])[..., None]
    out = fg.astype(np.float32) * a + bg.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _as_alpha(alpha: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
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
    wf3, wb3, a3 = _c3(wf), _c3(wb), _c3(a)

    def means(fg: np.ndarray, bg: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
        # weighted means (a weight sum of ~0 leaves ~0: those pixels get no weight later)
        mf = _box(fg * wf3, r) / _c3(np.maximum(_box(wf, r), 1e-6))
        mb = _box(bg * wb3, r) / _c3(np.maximum(_box(wb, r), 1e-6))
        return np.clip(mf, 0.0, 255.0, out=mf), np.clip(mb, 0.0, 255.0, out=mb)

    mf, mb = means(img, img, r_big)
    f1 = _unmix(img, a3, mf, mb)
    return means(f1, mb, r_small)


def _c3(x: np.ndarray) -> np.ndarray:
    """A single-channel image as three identical channels (HxWx3)."""
    return cv2.merge([x, x, x])


def _unmix(img: np.ndarray, a: np.ndarray, mf: np.ndarray, mb: np.ndarray) -> np.ndarray:
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
    a = _as_alpha(alpha, rgb.shape)
    f = factor_for(min(h, w), work_short)
    mf, mb = fusion_fields(shrink(rgb, f).astype(np.float32), shrink(a, f))
    mf, mb = grow(mf, f, (w, h)), grow(mb, f, (w, h))
    return _unmix(rgb.astype(np.float32), _c3(a), mf, mb)


def _push_pull(img: np.ndarray, weight: np.ndarray) -> np.ndarray:
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


def _colour_transform(person: np.ndarray, plate: np.ndarray, strength: float) -> np.ndarray:
    """3x4 affine colour transform moving ``person`` pixels (n, 3) towards ``plate`` (m, 3).

    Gentle by design: means move ``0.35 * strength`` of the way (at most 40 levels) and
    the luminance contrast is matched only for textured backgrounds, within +-25%.
    """
    m = np.zeros((3, 4), np.float32)
    m[:, :3] = np.eye(3)
    if strength <= 0 or len(person) < 64 or len(plate) < 16:
        return m
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    mp, mb = person.mean(0), plate.mean(0)
    yp, yb = float((person @ luma).std()), float((plate @ luma).std())
    gain = 1.0
    if yb > 8.0 and yp > 4.0:
        gain = float(np.clip((yb / yp) ** (0.5 * strength), 0.8, 1.25))
    shift = np.clip(0.35 * strength * (mb - mp), -40.0, 40.0)
    m[:, :3] *= gain
    m[:, 3] = (1.0 - gain) * mp + shift
    return m


# --- background video -----------------------------------------------------------------


class BackgroundVideo:
    """Frames of a video file fitted to the canvas, looped, chosen by timestamp.

    ``frame_at(t)`` is the frame on screen at ``t`` seconds of the looped video: the last
    frame whose presentation time is <= ``t`` modulo the loop length (the last frame's
    time plus its duration). Decoding streams forward; a loop or a step back reopens the
    file. Only the current source frame is kept, fitted once.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fit: str = "fill",
        anchor: tuple[float, float] = (0.5, 0.5),
        fill: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UnsupportedMedia(f"Background video not found: {self.path}")
        self.size, self.fit, self.anchor, self.fill = size, fit, anchor, fill
        self.period: float | None = None  # loop length in seconds, known after the first pass
        self._container = None
        self._frames = None
        self._t0: float | None = None
        self._cur: tuple[float, object] | None = None  # (time, av.VideoFrame)
        self._next: tuple[float, object] | None = None
        self._last_dur = 0.0
        self._plate: np.ndarray | None = None
        self._plate_time: float | None = None
        self.index = -1  # index of the current source frame in the file (for tests and logs)
        self._open()
        if self._next is None:
            raise UnsupportedMedia(f"{self.path.name} has no video frames.")

    def _open(self) -> None:
        import av

        self.close()
        try:
            self._container = av.open(str(self.path))
            stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as exc:
            raise UnsupportedMedia(f"Cannot read background video {self.path.name}: {exc}") from exc
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self._nominal_dur = float(1 / rate) if rate else 1 / 25.0
        self._frames = self._container.decode(stream)
        self._cur, self._next, self.index = None, None, -1
        self._advance()

    def _read(self) -> tuple[float, object] | None:
        try:
            frame = next(self._frames)  # type: ignore[arg-type]
        except StopIteration:
            return None
        t = frame.time if frame.time is not None else (self.index + 1) * self._nominal_dur
        if self._t0 is None:
            self._t0 = float(t)
        return float(t) - self._t0, frame

    def _advance(self) -> None:
        """Make the look-ahead frame current and read the next one."""
        if self._next is not None:
            if self._cur is not None:
                self._last_dur = max(1e-6, self._next[0] - self._cur[0])
            self._cur = self._next
            self.index += 1
        self._next = self._read()
        if self._next is None and self.period is None and self._cur is not None:
            self.period = self._cur[0] + (self._last_dur or self._nominal_dur)

    def _seek(self, t: float) -> None:
        """Make the frame on screen at ``t`` (seconds from the first frame) current."""
        if self._cur is not None and t + 1e-6 < self._cur[0]:
            self._open()  # looped or stepped back: decode from the start again
        while self._next is not None and self._next[0] <= t + 1e-6:
            self._advance()

    def _wrap(self, t: float) -> float:
        if not self.period:
            return t
        return max(0.0, t - self.period * math.floor(t / self.period + 1e-6))

    def frame_at(self, t: float) -> np.ndarray:
        """The fitted RGB plate (uint8, canvas size) on screen at ``t`` seconds."""
        t = self._wrap(max(0.0, float(t)))
        self._seek(t)
        looped = self._wrap(t)
        if looped != t:  # the end was found during this call and ``t`` lies past it
            self._seek(looped)
        assert self._cur is not None
        if self._plate is None or self._plate_time != self._cur[0]:
            rgb = self._cur[1].to_ndarray(format="rgb24")  # type: ignore[attr-defined]
            self._plate = fit_image(rgb, self.size, self.fit, self.anchor, self.fill)
            self._plate_time = self._cur[0]
        return self._plate

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


# --- the compositor -------------------------------------------------------------------


@dataclass
class _AlphaLayers:
    """Everything on the canvas that depends only on the matte (rebuilt when it changes)."""

    ac: np.ndarray  # alpha on the canvas (float32)
    wrap: np.ndarray | None  # light-wrap weight (float32) or None
    shadow: np.ndarray | None  # drop-shadow strength (float32) or None
    pure: np.ndarray  # uint8 1 where the output is the person's own colour
    mixed: np.ndarray  # flat indices of the soft edge and light-wrap pixels
    low_a: np.ndarray  # canvas alpha at the working resolution of the colour fields
    map_x: np.ndarray  # working-resolution x of each mixed pixel (see _rows)
    map_y: np.ndarray  # working-resolution y
    am3: np.ndarray  # (n, 3) alpha of the mixed pixels
    wrap3: np.ndarray | None  # (n, 3) light-wrap weight of the mixed pixels
    shadow3: np.ndarray | None  # (n, 3) shadow strength of the mixed pixels
    mixed_yx: tuple[np.ndarray, np.ndarray]  # canvas row and column of each mixed pixel


def _pure(ac: np.ndarray, wrap: np.ndarray | None) -> np.ndarray:
    """Where the output is the person's own colour: alpha 1 (within half a grey level)
    and no light wrap."""
    pure = ac >= np.float32(1.0 - 0.5 / 255)
    if wrap is not None:
        pure &= wrap <= 0.0
    return pure


def _mix(
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
    fg = _unmix(colours.astype(np.float32), am, mf, mb)
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


def _rows(v: np.ndarray) -> np.ndarray:
    """A flat float vector as a (rows, 1024) float32 map for cv2.remap (which refuses
    images taller than 32767), padded with zeros."""
    n = v.size
    out = np.zeros(max(1, -(-n // _ROW)) * _ROW, np.float32)
    out[:n] = v
    return out.reshape(-1, _ROW)


def _sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, n: int) -> np.ndarray:
    """Bilinear samples (n, C) of ``field`` at the points of a :func:`_rows` map."""
    got = cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return got.reshape(-1, field.shape[2] if field.ndim == 3 else 1)[:n]


class Compositor:
    """Background, edges, framing: one instance per render (see the module docstring)."""

    def __init__(self, opts: BackgroundOptions, src_size: tuple[int, int], fps: float = 25.0) -> None:
        self.opts = opts
        self.src_size = (int(src_size[0]), int(src_size[1]))
        self.fps = float(fps)
        self.out_size = output_size(opts, self.src_size)
        self.place = placement(opts, self.src_size, self.out_size)
        cw, ch = self.out_size
        self.identity = self.place == Placement(0, 0, cw, ch) and self.src_size == self.out_size
        self._clip = self.place.clip(cw, ch)
        self._color = parse_color(opts.color)
        short = min(cw, ch)
        self._wrap_sigma = max(1.0, LIGHT_WRAP_SIGMA * short)
        self._f = factor_for(short, 160)  # the smooth fields are worked out 1/f the size
        self._k = 1.0 / self._f
        self._low = (max(1, cw // self._f), max(1, ch // self._f))
        self._static_plate: np.ndarray | None = None
        self._video: BackgroundVideo | None = None
        mode = opts.mode
        if mode == "color":
            plate = np.empty((ch, cw, 3), np.uint8)
            plate[:] = self._color
            self._static_plate = plate
        elif mode == "image":
            if not opts.image:
                raise InvalidOption("Background mode 'image' needs an image file.")
            from pipeline.media.image import load_image

            img = load_image(opts.image)
            anchor = (opts.image_x, opts.image_y)
            self._static_plate = fit_image(img, self.out_size, opts.image_fit, anchor, self._color)
        elif mode == "video":
            if not opts.video:
                raise InvalidOption("Background mode 'video' needs a video file.")
            anchor = (opts.image_x, opts.image_y)
            self._video = BackgroundVideo(opts.video, self.out_size, opts.image_fit, anchor, self._color)
        self._match = opts.color_match if mode in ("color", "image", "video") else 0.0
        self._wrap = opts.light_wrap if mode in ("blur", "color", "image", "video") else 0.0
        # where the scaled source lands (1) on the canvas, at the working resolution
        self._valid_low: np.ndarray | None = None
        if not self.identity:
            valid = np.zeros((ch, cw), np.float32)
            if self._clip is not None:
                valid[self._clip[0]] = 1.0
            self._valid_low = shrink(valid, self._f)
        # caches, each with what it depends on
        self._alpha_ref: np.ndarray | None = None  # copy of the last matte (source size)
        self._alpha_obj: np.ndarray | None = None  # the caller's last matte array
        self._alpha_raw: np.ndarray | None = None  # a copy of it, as given
        self._layers: _AlphaLayers | None = None  # <- matte
        self._plate_key: object = None  # plate the caches below were built for
        self._wrap_colour: tuple[object, np.ndarray] | None = None  # <- plate
        self._under: tuple[object, np.ndarray] | None = None  # <- plate, matte (shadow)
        self._blur_plate: np.ndarray | None = None
        self._blur_thumbs: tuple[np.ndarray, np.ndarray] | None = None
        self._lut: list[np.ndarray] | None = None  # per-channel colour-match tables
        self._colour_m: np.ndarray | None = None  # the 3x4 transform behind them (smoothed)
        self._colour_age = 0
        self._base: np.ndarray | None = None  # last full composite (cached path)
        self._snap: np.ndarray | None = None  # the (placed) person colours it was made from
        self._snap_src: np.ndarray | None = None  # and the source frame (reframed "blur")
        self._mixed: dict[str, np.ndarray | None] | None = None  # per mixed pixel: colour fields, background
        self._grid: np.ndarray | None = None  # background pixels watched in mode "blur"
        self._fields: tuple[np.ndarray, np.ndarray] | None = None  # colour fields of the base (1/f size)
        self._base_plate: np.ndarray | None = None  # the background the base was made on
        self._alpha_is_base = False  # the last matte equals the base's
        self._still: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # prepared photo: colours, alpha, alpha8
        self._still_base: tuple[object, np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._still_rgba: np.ndarray | None = None

    # -- public ------------------------------------------------------------------------

    @property
    def has_alpha(self) -> bool:
        """True when frames come out RGBA (mode "transparent")."""
        return self.opts.mode == "transparent"

    @property
    def needs_alpha(self) -> bool:
        """False for mode "keep": no matting needed."""
        return self.opts.mode != "keep"

    def prepare_still(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Treat a photo avatar's colours once, for the engine to animate.

        Returns the still (uint8 RGB, source size) with the person's colours matched to
        this background, soft-edge colours unmixed from the old background and the light
        wrap baked in. Animate it with the matte carried along (e.g. as a fourth channel)
        and pass the frames to :meth:`apply`: from then on a frame costs one blend
        ``a * colour + (1 - a) * background`` over the region where it differs from the
        still (the mouth, the eyes, the head when it moves), which keeps a photo avatar's
        background work to a fraction of a millisecond per frame at 512x512.
        """
        rgb = self._check_rgb(rgb)
        a = _as_alpha(alpha, rgb.shape).copy()
        if self.opts.mode == "keep":
            return rgb.copy()
        plate = self._video_plate(0) if self._video is not None else self._plate(rgb, a)
        self._update_colour(rgb, a, plate)
        self._plate_key = plate
        person = self._recolour(rgb)
        fg = estimate_foreground(person, a)
        if self._wrap > 0 and plate is not None:
            scale = self.place.w / self.src_size[0]
            sigma = self._wrap_sigma / scale
            weight = np.clip(1.0 - cv2.GaussianBlur(a, (0, 0), sigma), 0.0, 1.0) * np.float32(self._wrap)
            weight[(weight < 2e-3) | (a <= 0.0)] = 0.0
            colour = self._wrap_colour_for(plate)
            if not self.identity:  # the canvas colours behind each source pixel
                m = np.float32([[scale, 0, self.place.x], [0, scale, self.place.y]])
                colour = cv2.warpAffine(
                    colour, m, self.src_size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REPLICATE,
                )
            fg += _c3(weight) * (colour - fg)
        still = np.clip(fg + 0.5, 0, 255).astype(np.uint8)
        self._still = (still, a, np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))
        self._still_base = self._still_rgba = None
        return still.copy()

    def apply(self, rgb: np.ndarray, alpha: np.ndarray | None, frame_index: int = 0) -> np.ndarray:
        """The output frame for source frame ``rgb`` (uint8 HxWx3) with person ``alpha``
        (float32 HxW in [0, 1], or uint8) at output frame ``frame_index``: uint8 RGB, or
        RGBA with straight alpha for mode "transparent". An RGBA frame with ``alpha``
        None brings its matte in its fourth channel."""
        four = alpha is None and isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 4
        if four and self._still is not None and rgb.dtype == np.uint8 and rgb.shape[1::-1] == self.src_size:
            return self._apply_still_rgba(np.ascontiguousarray(rgb), frame_index)
        if four:
            alpha = cv2.extractChannel(rgb, 3)  # an engine that carries the matte as a fourth channel
        rgb = self._check_rgb(rgb)
        if self.opts.mode == "keep":
            return self._keep(rgb)
        if self._still is not None and alpha is not None:
            return self._apply_still(rgb, alpha, frame_index)
        if alpha is None:
            raise InvalidOption(f"Background mode {self.opts.mode!r} needs the person's alpha matte.")
        alpha_changed = self._update_alpha(alpha, rgb.shape)
        a = self._alpha_ref
        assert a is not None
        plate = self._video_plate(frame_index) if self._video is not None else self._plate_key
        if self._base is not None and plate is self._plate_key and self._bg_still(rgb):
            # the background is as in the cached composite: redo only what changed
            if self._alpha_is_base and not alpha_changed:
                return self._fast(rgb)
            out = self._incremental(rgb, a)
            if out is not None:
                return out
        if self._video is None:
            plate = self._plate(rgb, a)
        plate_changed = plate is not self._plate_key
        if plate_changed or (alpha_changed and self._colour_age >= 10) or self._lut is None:
            self._update_colour(rgb, a, plate)
        out = self._full(rgb, a, plate)
        self._plate_key = plate
        return out

    def close(self) -> None:
        if self._video is not None:
            self._video.close()

    def __enter__(self) -> "Compositor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inputs ----------------------------------------------------------------------

    def _check_rgb(self, rgb: np.ndarray) -> np.ndarray:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
            raise InvalidOption(f"Frames must be uint8 RGB arrays, got {getattr(rgb, 'shape', None)}.")
        if (rgb.shape[1], rgb.shape[0]) != self.src_size:
            raise InvalidOption(
                f"Frame is {rgb.shape[1]}x{rgb.shape[0]} but the compositor was prepared for "
                f"{self.src_size[0]}x{self.src_size[1]}."
            )
        if rgb.shape[2] == 4:
            return cv2.cvtColor(rgb, cv2.COLOR_RGBA2RGB)  # several times faster than a numpy slice copy
        return np.ascontiguousarray(rgb)

    def _update_alpha(self, alpha: np.ndarray, shape: tuple[int, ...]) -> bool:
        """True when the matte differs from the last frame's; keeps it as float32 in
        ``_alpha_ref`` (alpha layers are rebuilt when it changed).

        The same read-only array as last time (a photo avatar's one matte, or a matter's
        output) is taken as unchanged; anything else is compared, as given (uint8 or
        float), with a copy of the last one.
        """
        raw = self._alpha_raw
        if raw is not None and self._alpha_ref is not None:
            if alpha is self._alpha_obj and not alpha.flags.writeable:
                return False
            if isinstance(alpha, np.ndarray) and alpha.dtype == raw.dtype and np.array_equal(alpha, raw):
                self._alpha_obj = alpha  # held, so that its id is not reused by another array
                return False
        a = _as_alpha(alpha, shape)
        self._alpha_ref = a.copy() if np.shares_memory(a, alpha) else a
        self._alpha_raw = np.array(alpha, copy=True)
        self._alpha_obj = alpha
        self._colour_age += 1
        return True

    # -- background plates -------------------------------------------------------------

    def _plate(self, rgb: np.ndarray, a: np.ndarray) -> np.ndarray | None:
        """The background for this frame (uint8 canvas RGB; None when transparent). The same
        array object comes back while the background does not change."""
        mode = self.opts.mode
        if mode in ("color", "image"):
            return self._static_plate
        if mode == "blur":
            return self._blur_background(rgb, a)
        return None

    def _video_plate(self, frame_index: int) -> np.ndarray:
        assert self._video is not None
        return self._video.frame_at(float(timing.frame_start(frame_index, self.fps)))

    def _blur_background(self, rgb: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The source background without the person, blurred, covering the canvas.

        Reused while the visible background and the person stay put (compared on 1/8
        thumbnails), so a photo avatar or a locked-off camera pays for it once.
        """
        h, w = rgb.shape[:2]
        thumb = shrink(rgb, 8).astype(np.float32)
        athumb = shrink(a, 8)
        if self._blur_plate is not None and self._blur_thumbs is not None:
            t0, a0 = self._blur_thumbs
            bgmask = (athumb < 0.05) & (a0 < 0.05)
            moved = float(np.abs(athumb - a0).mean())
            diff = float(np.abs(thumb - t0)[bgmask].mean()) if bgmask.any() else 0.0
            if moved < 0.01 and diff < 3.0:
                return self._blur_plate
        cw, ch = self.out_size
        sigma = self.opts.blur * BLUR_SIGMA * min(cw, ch)  # canvas pixels
        cover = max(cw / w, ch / h)  # the source covers the canvas ("fill")
        # blur at about 4 working pixels per sigma: shrink the source by an integer factor
        sigma_src = sigma / cover
        f = max(1, int(sigma_src / 4.0))
        small = shrink(rgb, f).astype(np.float32)
        weight = np.clip(1.0 - 1.5 * shrink(a, f), 0.0, 1.0) ** 2  # how surely a pixel is background
        filled = _push_pull(small, weight)
        if sigma_src / f > 0.3:
            filled = cv2.GaussianBlur(filled, (0, 0), sigma_src / f)
        size = (int(math.ceil(w * cover)), int(math.ceil(h * cover)))
        big = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
        x0, y0 = (big.shape[1] - cw) // 2, (big.shape[0] - ch) // 2
        plate = np.clip(big[y0 : y0 + ch, x0 : x0 + cw] + 0.5, 0, 255).astype(np.uint8)
        self._blur_plate = plate
        self._blur_thumbs = (thumb, athumb)
        return plate

    def _wrap_colour_for(self, plate: np.ndarray) -> np.ndarray:
        """The background blurred for the light wrap (float32 canvas), once per plate."""
        if self._wrap_colour is not None and self._wrap_colour[0] is plate:
            return self._wrap_colour[1]
        cw, ch = self.out_size
        low = shrink(plate, self._f).astype(np.float32)
        low = cv2.GaussianBlur(low, (0, 0), max(0.5, 2.0 * self._wrap_sigma * self._k))
        colour = grow(low, self._f, (cw, ch))
        self._wrap_colour = (plate, colour)
        return colour

    def _under_for(self, plate: np.ndarray | None, layers: _AlphaLayers) -> np.ndarray:
        """What shows where the person is not: the plate darkened by the shadow (RGB), or
        for transparent output black with the shadow as alpha (RGBA). Once per plate and matte."""
        if self._under is not None and self._under[0] is plate and self._layers is layers:
            return self._under[1]
        cw, ch = self.out_size
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
        self._under = (plate, under)
        return under

    # -- colour --------------------------------------------------------------------------

    def _update_colour(self, rgb: np.ndarray, a: np.ndarray, plate: np.ndarray | None) -> None:
        """Colour-match tables from subsampled person and background pixels; smoothed over
        updates so that a video source does not flicker."""
        self._colour_age = 0
        if self._match <= 0 or plate is None:
            self._lut, self._colour_m = [], None
            return
        step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / 20000)))
        person = rgb[::step, ::step].reshape(-1, 3)[(a[::step, ::step] > 0.9).reshape(-1)].astype(np.float32)
        pstep = max(1, int(math.sqrt(plate.shape[0] * plate.shape[1] / 20000)))
        m = _colour_transform(person, plate[::pstep, ::pstep].reshape(-1, 3).astype(np.float32), self._match)
        if self._colour_m is not None:
            m = self._colour_m + 0.15 * (m - self._colour_m)
        self._colour_m = m
        v = np.arange(256, dtype=np.float32)
        self._lut = [np.clip(v * m[c, c] + m[c, 3] + 0.5, 0, 255).astype(np.uint8) for c in range(3)]

    def _recolour(self, rgb: np.ndarray) -> np.ndarray:
        if not self._lut:
            return rgb
        return cv2.merge([cv2.LUT(p, t) for p, t in zip(cv2.split(rgb), self._lut)])

    # -- layers that depend on the matte only ----------------------------------------------

    def _soft_layers(
        self, ac: np.ndarray, region: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Light-wrap weight and drop-shadow strength for canvas alpha ``ac``, on the whole
        canvas or on ``region`` (x0, y0, x1, y1) only. Both are smooth, so they are worked
        out at 1/f resolution; a region is computed on a crop aligned to that grid with a
        margin for the blurs, which gives the same values as the whole canvas would."""
        if self._wrap <= 0 and not self.opts.shadow:
            return None, None
        cw, ch = self.out_size
        f, k = self._f, self._k
        short = min(cw, ch)
        if region is None:
            cx0, cy0, cx1, cy1 = 0, 0, cw, ch
        else:
            pad = int(math.ceil(3.0 * max(self._wrap_sigma, SHADOW_SIGMA * short if self.opts.shadow else 0.0)))
            if self.opts.shadow:
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
        if self._wrap > 0:
            edge = 1.0 - cv2.GaussianBlur(low_a, (0, 0), self._wrap_sigma * k)
            wrap = grow(edge, f, size)
            wrap *= np.float32(self._wrap)
            wrap[wrap < 2e-3] = 0.0  # also clears the (negative) deep inside
        if self.opts.shadow:
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
    def _margin(self) -> int:
        """How far from a change of the matte the light wrap and the shadow change."""
        short = min(self.out_size)
        m = int(math.ceil(3.0 * self._wrap_sigma)) + 2 if self._wrap > 0 else 2
        if self.opts.shadow:
            m += int(math.ceil((max(SHADOW_OFFSET) + 3.0 * SHADOW_SIGMA) * short))
        return m

    def _alpha_layers(self, a: np.ndarray) -> _AlphaLayers:
        """Canvas alpha, light-wrap weight, drop shadow, and the pixel classes of the composite."""
        cw, ch = self.out_size
        ac = self._place(a)
        if ac is a:
            ac = a.copy()
        wrap, shadow = self._soft_layers(ac)
        pure = _pure(ac, wrap)
        mixed = np.flatnonzero(((ac > np.float32(0.5 / 255)) & ~pure).reshape(-1))
        ys, xs = np.divmod(mixed, cw)
        map_x = _rows((xs + 0.5) * self._k - 0.5)
        map_y = _rows((ys + 0.5) * self._k - 0.5)

        def at_mixed(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else np.repeat(x.reshape(-1)[mixed][:, None], 3, axis=1)

        am3 = at_mixed(ac)
        assert am3 is not None
        self._layers = _AlphaLayers(
            ac, wrap, shadow, pure.view(np.uint8), mixed, shrink(ac, self._f), map_x, map_y, am3,
            at_mixed(wrap), at_mixed(shadow), (ys.astype(np.int32), xs.astype(np.int32)),
        )
        return self._layers

    def _place(self, layer: np.ndarray) -> np.ndarray:
        """``layer`` (source size) scaled and placed on a zero canvas."""
        if self.identity:
            return layer
        cw, ch = self.out_size
        out = np.zeros((ch, cw) + layer.shape[2:], layer.dtype)
        if self._clip is not None:
            (cy, cx), (py, px) = self._clip
            out[cy, cx] = _resize(layer, (self.place.w, self.place.h))[py, px]
        return out

    # -- composing -----------------------------------------------------------------------

    def _full(self, rgb: np.ndarray, a: np.ndarray, plate: np.ndarray | None) -> np.ndarray:
        """The composite from scratch: background and shadow, the person's own pixels
        copied, and the soft-edge / light-wrap pixels computed one by one. Keeps what the
        cached and incremental paths need."""
        layers = self._alpha_layers(a)
        person = self._place(self._recolour(rgb))
        under = self._under_for(plate, layers)
        out = under.copy()
        self._copy_person(person, layers.pure, out)
        idx = layers.mixed
        low = shrink(person, self._f).astype(np.float32)
        self._fields = fusion_fields(low, layers.low_a, self._valid_low)
        mf, mb = self._fields
        cache = {
            "mf": _sample(mf, layers.map_x, layers.map_y, idx.size),
            "mb": _sample(mb, layers.map_x, layers.map_y, idx.size),
            "under": under.reshape(-1, under.shape[2])[idx, :3].astype(np.float32),
            "wc": None,
        }
        if layers.wrap3 is not None and plate is not None and not self.has_alpha:
            cache["wc"] = self._wrap_colour_for(plate).reshape(-1, 3)[idx]
        self._mixed = cache
        self._set_mixed(out, person.reshape(-1, 3)[idx], slice(None))
        self._base = out.copy()  # the caller may draw on ``out``
        self._base_plate = plate
        self._snap = rgb.copy() if self.identity else person.copy()
        self._snap_src = rgb.copy() if (not self.identity and self.opts.mode == "blur") else None
        self._alpha_is_base = True
        self._grid = None
        if self.opts.mode == "blur":  # background pixels well away from the person
            away = cv2.distanceTransform((a <= 0.0).astype(np.uint8), cv2.DIST_L2, 3) > 0.12 * min(a.shape)
            grid = np.zeros(a.shape, np.uint8)
            grid[::16, ::16] = away[::16, ::16]
            self._grid = grid
        return out

    def _copy_person(self, person: np.ndarray, pure: np.ndarray, out: np.ndarray) -> None:
        if self.has_alpha:
            person = cv2.cvtColor(person, cv2.COLOR_RGB2RGBA)
        cv2.copyTo(person, pure, out)

    def _set_mixed(self, out: np.ndarray, colours: np.ndarray, sel: slice | np.ndarray) -> None:
        """Write the base's mixed pixels ``sel`` (of ``layers.mixed``) whose person colours
        (k, 3) are ``colours``."""
        layers, cache = self._layers, self._mixed
        assert layers is not None and cache is not None
        idx = layers.mixed[sel]
        if idx.size == 0:
            return
        values = _mix(
            colours, layers.am3[sel], cache["mf"][sel], cache["mb"][sel], cache["under"][sel],
            None if layers.wrap3 is None else layers.wrap3[sel],
            None if cache["wc"] is None else cache["wc"][sel],
            None if layers.shadow3 is None else layers.shadow3[sel],
            self.has_alpha,
        )
        out.reshape(-1, out.shape[2])[idx] = values

    # -- the cached path for a still matte --------------------------------------------------

    def _bg_still(self, rgb: np.ndarray) -> bool:
        """For "blur": whether a sparse grid of background pixels is as in the base frame
        (else the blurred background may have to be redone)."""
        if self.opts.mode != "blur":
            return True
        snap = self._snap if self.identity else self._snap_src
        return snap is not None and self._grid is not None and cv2.norm(rgb, snap, cv2.NORM_INF, mask=self._grid) == 0

    def _fast(self, rgb: np.ndarray) -> np.ndarray:
        """The base composite with what changed since it was made (the mouth, the eyes, a
        strand of hair the brows pulled) redone: the person's own pixels copied, soft-edge
        pixels recomputed from the cached colour fields."""
        assert self._base is not None and self._snap is not None and self._layers is not None
        out = self._base.copy()
        layers = self._layers
        if self.identity:
            diff = cv2.absdiff(rgb, self._snap).reshape(rgb.shape[0], -1)
            x, y, w, h = cv2.boundingRect(diff)
            if w == 0 or h == 0:
                return out
            x0, x1, y0, y1 = x // 3, (x + w + 2) // 3, y, y + h
            person_roi = self._recolour(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            self._copy_person(person_roi, np.ascontiguousarray(layers.pure[y0:y1, x0:x1]), out[y0:y1, x0:x1])
            person_at = None
        else:
            person = self._place(self._recolour(rgb))
            diff = cv2.absdiff(person, self._snap).reshape(person.shape[0], -1)
            x, y, w, h = cv2.boundingRect(diff)
            if w == 0 or h == 0:
                return out
            x0, x1, y0, y1 = x // 3, (x + w + 2) // 3, y, y + h
            self._copy_person(
                np.ascontiguousarray(person[y0:y1, x0:x1]),
                np.ascontiguousarray(layers.pure[y0:y1, x0:x1]),
                out[y0:y1, x0:x1],
            )
            person_at = person
        my, mx = layers.mixed_yx
        sel = np.flatnonzero((my >= y0) & (my < y1) & (mx >= x0) & (mx < x1))
        if sel.size:
            src = rgb if person_at is None else person_at
            colours = src.reshape(-1, 3)[layers.mixed[sel]]
            changed = (colours != self._snap.reshape(-1, 3)[layers.mixed[sel]]).any(axis=1)
            sel, colours = sel[changed], colours[changed]
            if sel.size:
                if person_at is None:
                    colours = self._recolour(colours.reshape(-1, 1, 3)).reshape(-1, 3)
                self._set_mixed(out, colours, sel)
        return out

    def _incremental(self, rgb: np.ndarray, a: np.ndarray) -> np.ndarray | None:
        """The base composite redone where this frame's matte or person differ from it
        (a head turn, a blink, the mouth): alpha layers and soft-edge pixels there are
        recomputed, with the base's colour fields. None when most of the frame changed."""
        base, layers, fields = self._base, self._layers, self._fields
        assert base is not None and layers is not None and fields is not None and self._snap is not None
        cw, ch = self.out_size
        ac = self._place(a)
        changed = cv2.compare(ac, layers.ac, cv2.CMP_NE)
        ax, ay, aw, ah = cv2.boundingRect(changed)
        if aw * ah > 0.5 * cw * ch:
            return None
        if aw == 0 or ah == 0:
            self._alpha_is_base = True
            return self._fast(rgb)
        self._alpha_is_base = False
        person = None if self.identity else self._place(self._recolour(rgb))
        now = rgb if person is None else person
        px, py, pw, ph = cv2.boundingRect(cv2.absdiff(now, self._snap).reshape(ch, -1))
        m = self._margin
        x0, y0, x1, y1 = max(0, ax - m), max(0, ay - m), min(cw, ax + aw + m), min(ch, ay + ah + m)
        if pw and ph:
            x0, y0 = min(x0, px // 3), min(y0, py)
            x1, y1 = max(x1, (px + pw + 2) // 3), max(y1, py + ph)
        rows, cols = slice(y0, y1), slice(x0, x1)
        wrap_r, shadow_r = self._soft_layers(ac, (x0, y0, x1, y1))
        ac_r = np.ascontiguousarray(ac[rows, cols])
        plate = self._base_plate
        if self.has_alpha:
            under = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
            if shadow_r is not None:
                under[..., 3] = np.clip(shadow_r * 255.0 + 0.5, 0, 255)
        else:
            assert plate is not None
            under = np.ascontiguousarray(plate[rows, cols])
            if shadow_r is not None:
                under = np.clip(under * (1.0 - shadow_r)[..., None] + 0.5, 0, 255).astype(np.uint8)
        tile = under.copy()
        person_r = self._recolour(np.ascontiguousarray(rgb[rows, cols])) if person is None else person[rows, cols]
        person_r = np.ascontiguousarray(person_r)
        pure = _pure(ac_r, wrap_r)
        self._copy_person(person_r, pure.view(np.uint8), tile)
        idx = np.flatnonzero(((ac_r > np.float32(0.5 / 255)) & ~pure).reshape(-1))
        if idx.size:
            ys, xs = np.divmod(idx, x1 - x0)
            map_x = _rows((xs + x0 + 0.5) * self._k - 0.5)
            map_y = _rows((ys + y0 + 0.5) * self._k - 0.5)

            def at(x: np.ndarray | None) -> np.ndarray | None:
                return None if x is None else np.repeat(x.reshape(-1)[idx][:, None], 3, axis=1)

            wc = None
            if wrap_r is not None and plate is not None and not self.has_alpha:
                wc = np.ascontiguousarray(self._wrap_colour_for(plate)[rows, cols]).reshape(-1, 3)[idx]
            am = at(ac_r)
            assert am is not None
            values = _mix(
                person_r.reshape(-1, 3)[idx], am,
                _sample(fields[0], map_x, map_y, idx.size), _sample(fields[1], map_x, map_y, idx.size),
                under.reshape(-1, under.shape[2])[idx, :3].astype(np.float32),
                at(wrap_r), wc, at(shadow_r), self.has_alpha,
            )
            tile.reshape(-1, tile.shape[2])[idx] = values
        out = base.copy()
        out[rows, cols] = tile
        return out

    # -- a prepared still (photo avatar) ---------------------------------------------------

    def _still_layers(self, plate: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(base composite of the still, what shows behind the person, shadow) on the
        canvas, rebuilt when the background changes."""
        if self._still_base is not None and self._still_base[0] is plate:
            return self._still_base[1], self._still_base[2], self._still_base[3]
        assert self._still is not None
        still, a, _ = self._still
        ac = self._place(a)
        _, shadow = self._soft_layers(ac) if self.opts.shadow else (None, None)
        cw, ch = self.out_size
        if self.has_alpha:
            under = np.zeros((ch, cw, 4), np.uint8)
            if shadow is not None:
                under[..., 3] = np.clip(shadow * 255.0 + 0.5, 0, 255)
        else:
            assert plate is not None
            under = plate
            if shadow is not None:
                under = np.clip(plate * _c3(1.0 - shadow) + 0.5, 0, 255).astype(np.uint8)
        base = self._blend(self._place(still), ac, under, shadow)
        self._still_base = (plate, base, under, shadow)
        return base, under, shadow

    def _blend(self, colour: np.ndarray, a: np.ndarray, under: np.ndarray, shadow: np.ndarray | None) -> np.ndarray:
        """``a * colour + (1 - a) * under`` (uint8); for RGBA output the straight colour with
        the coverage of person and shadow as alpha."""
        if not self.has_alpha:
            return cv2.blendLinear(colour, under, a, 1.0 - a)
        if shadow is None:
            return cv2.merge([*cv2.split(colour), np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)])
        cov = a + shadow * (1.0 - a)
        rgb = np.clip(colour * _c3(a / np.maximum(cov, 1e-6)) + 0.5, 0, 255).astype(np.uint8)
        return cv2.merge([*cv2.split(rgb), np.clip(cov * 255.0 + 0.5, 0, 255).astype(np.uint8)])

    def _apply_still_rgba(self, rgba: np.ndarray, frame_index: int) -> np.ndarray:
        """An RGBA frame (matte in the fourth channel) animated from the prepared still:
        one difference finds the changed box, which alone is split and blended."""
        assert self._still is not None
        if self._still_rgba is None:
            self._still_rgba = cv2.merge([*cv2.split(self._still[0]), self._still[2]])
        x, y, w, h = cv2.boundingRect(cv2.absdiff(rgba, self._still_rgba).reshape(rgba.shape[0], -1))
        box = (x // 4, y, (x + w + 3) // 4, y + h) if w and h else None
        rows, cols = (slice(box[1], box[3]), slice(box[0], box[2])) if box else (slice(0, 0), slice(0, 0))
        part = np.ascontiguousarray(rgba[rows, cols]) if self.identity else rgba
        return self._still_frame(
            cv2.cvtColor(part, cv2.COLOR_RGBA2RGB) if part.size else part[..., :3],
            cv2.extractChannel(part, 3) if part.size else part[..., 3],
            box, frame_index,
        )

    def _apply_still(self, rgb: np.ndarray, alpha: np.ndarray, frame_index: int) -> np.ndarray:
        """A frame animated from the prepared still: blended only where it differs from it."""
        assert self._still is not None
        still, a_still, a8_still = self._still
        if alpha.dtype == np.uint8:
            alpha_diff = cv2.compare(alpha, a8_still, cv2.CMP_NE)
        else:
            alpha_diff = cv2.compare(_as_alpha(alpha, rgb.shape), a_still, cv2.CMP_NE)
        ax, ay, aw, ah = cv2.boundingRect(alpha_diff)
        px, py, pw, ph = cv2.boundingRect(cv2.absdiff(rgb, still).reshape(rgb.shape[0], -1))
        if pw and ph:
            px, pw = px // 3, (px + pw + 2) // 3 - px // 3
        boxes = [(x, y, x + w, y + h) for x, y, w, h in ((ax, ay, aw, ah), (px, py, pw, ph)) if w and h]
        box = None
        if boxes:
            (bx0, by0, _, _), (_, _, bx1, by1) = np.min(boxes, axis=0), np.max(boxes, axis=0)
            box = (int(bx0), int(by0), int(bx1), int(by1))
        if self.identity and box is not None:
            rows, cols = slice(box[1], box[3]), slice(box[0], box[2])
            rgb, alpha = np.ascontiguousarray(rgb[rows, cols]), np.ascontiguousarray(alpha[rows, cols])
        return self._still_frame(rgb, alpha, box, frame_index)

    def _still_frame(
        self, rgb: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int] | None, frame_index: int
    ) -> np.ndarray:
        """The still's base with ``box`` (source x0, y0, x1, y1; None: nothing changed)
        blended from the frame: ``rgb``/``alpha`` are that box's pixels when framing is
        the identity, else the whole frame."""
        plate = self._video_plate(frame_index) if self._video is not None else self._plate_key
        base, under, shadow = self._still_layers(plate)
        out = base.copy()
        if box is None:
            return out
        x0, y0, x1, y1 = box
        if self.identity:
            rows, cols = slice(y0, y1), slice(x0, x1)
            colour, ar = rgb, _as_alpha(alpha, rgb.shape)
        else:  # the changed source box, scaled onto the canvas (the whole frame is resized)
            if self._clip is None:
                return out
            s = self.place.w / self.src_size[0]
            cw, ch = self.out_size
            cx0, cy0 = max(0, int(x0 * s) + self.place.x - 2), max(0, int(y0 * s) + self.place.y - 2)
            cx1 = min(cw, int(math.ceil(x1 * s)) + self.place.x + 2)
            cy1 = min(ch, int(math.ceil(y1 * s)) + self.place.y + 2)
            if cx1 <= cx0 or cy1 <= cy0:
                return out
            rows, cols = slice(cy0, cy1), slice(cx0, cx1)
            colour = np.ascontiguousarray(self._place(rgb)[rows, cols])
            ar = np.ascontiguousarray(self._place(_as_alpha(alpha, rgb.shape))[rows, cols])
        sh = None if shadow is None else np.ascontiguousarray(shadow[rows, cols])
        out[rows, cols] = self._blend(colour, ar, np.ascontiguousarray(under[rows, cols]), sh)
        return out

    # -- keep ----------------------------------------------------------------------------

    def _keep(self, rgb: np.ndarray) -> np.ndarray:
        """The source frame as it is; reframed onto a blurred, enlarged copy of itself."""
        if self.identity:
            return rgb.copy()
        cw, ch = self.out_size
        h, w = rgb.shape[:2]
        cover = max(cw / w, ch / h)
        tw, th = max(8, int(round(w * cover / 16))), max(8, int(round(h * cover / 16)))
        small = cv2.GaussianBlur(cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA), (0, 0), 2.0)
        size = (int(math.ceil(w * cover)), int(math.ceil(h * cover)))
        big = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
        x0, y0 = (big.shape[1] - cw) // 2, (big.shape[0] - ch) // 2
        out = np.ascontiguousarray(big[y0 : y0 + ch, x0 : x0 + cw])
        if self._clip is not None:
            (cy, cx), (py, px) = self._clip
            out[cy, cx] = _resize(rgb, (self.place.w, self.place.h))[py, px]
        return out
