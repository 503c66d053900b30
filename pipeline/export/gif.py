"""GIF export for previews: one optimised 255-colour palette, ordered dithering, exact timing.

Palette: GIF frames are 8-bit palettised, so the palette decides the quality. While frames
come in, a colour histogram (6 bits per channel, mean colour per cell, a pixel sample of
every frame) is accumulated and the frames are spooled raw to a hidden temp file. At
``close()`` the palette is built for the whole clip (median cut on the histogram, splitting
the box with the largest squared error, then three k-means passes), and every frame is
mapped to it with an 8x8 ordered (Bayer) dither. Ordered dithering is stable in time:
pixels that do not change keep their index, so there is no crawling noise on a still
background and FFmpeg's GIF encoder can store only what changed (``transdiff``: unchanged
pixels become the one palette entry left free). Clips with at most 255 colours (at 6-bit
precision) are stored undithered. Temp disk use: width x height x 3 bytes per kept frame.

Timing: GIF delays are whole centiseconds and browsers slow down delays under 2 cs, so the
GIF rate is at most 30 fps: a faster clip keeps every k-th frame, k = ceil(fps / 30)
(50 -> 25, 60 -> 30, 59.94 -> 29.97). Frame j is shown from round(j k 100 / fps) cs, so
delays alternate where needed (30 fps: 3, 3, 4 cs) and never drift; the last frame lasts
until round(N 100 / fps) cs for N written frames, so the GIF is as long as the video to
the nearest centisecond. It loops forever.

No audio (a note is logged) and no alpha (``opts.alpha`` is refused; the alpha of RGBA
frames is dropped). Metadata: a GIF comment extension with the title and "Avatar Studio".
"""

from __future__ import annotations

import logging
import math
import shutil
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import numpy as np
from scipy.spatial import cKDTree

from pipeline.errors import UnsupportedMedia
from pipeline.export.base import PRODUCT, BaseWriter, remove_path, temp_path
from pipeline.types import AudioClip

log = logging.getLogger(__name__)

MAX_GIF_FPS = 30
PALETTE_SIZE = 255  # one entry stays free for the encoder's inter-frame transparency
_BITS = 6  # histogram / lookup precision per channel
_SAMPLES_PER_FRAME = 65536  # pixels sampled per frame for the histogram
_KMEANS_PASSES = 3
_CS = Fraction(100)  # centiseconds per second

# 8x8 Bayer matrix as thresholds in (-0.5, 0.5)
_B2 = np.array([[0, 2], [3, 1]])
_B8 = np.block([[4 * _B2 + 0, 4 * _B2 + 2], [4 * _B2 + 3, 4 * _B2 + 1]])
_B8 = np.block([[4 * _B8 + 0, 4 * _B8 + 2], [4 * _B8 + 3, 4 * _B8 + 1]])
BAYER8 = ((_B8 + 0.5) / 64.0 - 0.5).astype(np.float32)


# --------------------------------------------------------------------------- palette


class ColourHistogram:
    """Counts and colour sums per 6-bit RGB cell, accumulated over sampled pixels."""

    def __init__(self) -> None:
        n = 1 << (3 * _BITS)
        self.counts = np.zeros(n, np.int64)
        self.sums = np.zeros((3, n), np.float64)

    @staticmethod
    def cells(rgb: np.ndarray) -> np.ndarray:
        shift = 8 - _BITS
        r = (rgb[..., 0] >> shift).astype(np.int32)
        g = (rgb[..., 1] >> shift).astype(np.int32)
        b = (rgb[..., 2] >> shift).astype(np.int32)
        return (r << (2 * _BITS)) | (g << _BITS) | b

    def add(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        step = max(1, int(math.sqrt(h * w / _SAMPLES_PER_FRAME)))
        sample = rgb[::step, ::step].reshape(-1, 3)
        idx = self.cells(sample)
        n = len(self.counts)
        self.counts += np.bincount(idx, minlength=n)
        for c in range(3):
            self.sums[c] += np.bincount(idx, weights=sample[:, c], minlength=n)

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Occupied cells: (cell ids, mean colours (k, 3), counts)."""
        ids = np.flatnonzero(self.counts)
        w = self.counts[ids].astype(np.float64)
        means = (self.sums[:, ids] / w).T
        return ids, means, w


def _sse(colours: np.ndarray, w: np.ndarray) -> float:
    mean = (colours * w[:, None]).sum(0) / w.sum()
    return float((w[:, None] * (colours - mean) ** 2).sum())


def median_cut(colours: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` representative colours of weighted ``colours`` (k, 3): median cut + k-means."""
    if len(colours) <= n:
        return colours.copy()
    boxes: list[tuple[float, np.ndarray]] = [(_sse(colours, weights), np.arange(len(colours)))]
    while len(boxes) < n:
        i = max(range(len(boxes)), key=lambda j: boxes[j][0])
        score, members = boxes[i]
        if score <= 0.0 or len(members) < 2:
            break
        c, w = colours[members], weights[members]
        mean = (c * w[:, None]).sum(0) / w.sum()
        axis = int(np.argmax((w[:, None] * (c - mean) ** 2).sum(0)))
        order = np.argsort(c[:, axis], kind="stable")
        cum = np.cumsum(w[order])
        cut = int(np.clip(np.searchsorted(cum, cum[-1] / 2.0) + 1, 1, len(members) - 1))
        left, right = members[order[:cut]], members[order[cut:]]
        boxes[i] = (_sse(colours[left], weights[left]), left)
        boxes.append((_sse(colours[right], weights[right]), right))
    palette = np.array([(colours[m] * weights[m, None]).sum(0) / weights[m].sum() for _, m in boxes])
    for _ in range(_KMEANS_PASSES):  # Lloyd refinement, weighted
        _, label = cKDTree(palette).query(colours)
        tot = np.bincount(label, weights=weights, minlength=len(palette))
        used = tot > 0
        for c in range(3):
            s = np.bincount(label, weights=weights * colours[:, c], minlength=len(palette))
            palette[used, c] = s[used] / tot[used]
    return palette


class PaletteMapper:
    """RGB frames to palette indices through a 6-bit lookup table, with optional Bayer dither."""

    def __init__(self, palette: np.ndarray, hist: ColourHistogram, dither: bool) -> None:
        self.palette = np.clip(np.round(palette), 0, 255).astype(np.uint8)
        tree = cKDTree(self.palette.astype(np.float64))
        q = 1 << (8 - _BITS)
        grid = (np.arange(1 << _BITS) * q + (q - 1) / 2.0).astype(np.float64)
        r, g, b = np.meshgrid(grid, grid, grid, indexing="ij")
        _, lut = tree.query(np.stack([r.ravel(), g.ravel(), b.ravel()], 1))
        ids, means, _ = hist.points()
        if len(ids):  # occupied cells map from their real mean colour, not the cell centre
            _, lut[ids] = tree.query(means)
        self.lut = lut.astype(np.uint8)
        self.amplitude = 0.0
        if dither and len(self.palette) > 1:
            nn, _ = tree.query(self.palette.astype(np.float64), k=2)
            self.amplitude = float(np.clip(np.median(nn[:, 1]) / math.sqrt(3.0), 2.0, 12.0))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if self.amplitude:
            h, w = rgb.shape[:2]
            tile = np.tile(BAYER8, (h // 8 + 1, w // 8 + 1))[:h, :w]
            offset = np.round(tile * self.amplitude).astype(np.int16)[:, :, None]
            rgb = np.clip(rgb.astype(np.int16) + offset, 0, 255).astype(np.uint8)
        return self.lut[ColourHistogram.cells(rgb)]

    def argb(self) -> np.ndarray:
        """The palette as the (256, 4) ARGB table PyAV's pal8 frames take (unused: opaque black)."""
        out = np.zeros((256, 4), np.uint8)
        out[:, 0] = 255
        out[: len(self.palette), 1:] = self.palette
        return out


# --------------------------------------------------------------------------- writer


def gif_step(rate: Fraction) -> int:
    """Keep every k-th frame so the GIF runs at most MAX_GIF_FPS."""
    return max(1, math.ceil(rate / MAX_GIF_FPS))


class GifWriter(BaseWriter):
    """Palette-optimised looping GIF; the palette is built at close() from the whole clip."""

    label = "GIF"
    format = "gif"
    suffixes = (".gif",)
    has_audio = False
    temp_suffix = ".gif"

    _spool: BinaryIO | None = None

    def _open(self, audio: AudioClip | None) -> None:
        if audio is not None and len(np.asarray(audio.samples)):
            log.info("%s: GIF cannot carry sound; the audio is left out", self.path.name)
        self.step = gif_step(self.rate)
        self.gif_rate = self.rate / self.step
        if self.step > 1:
            log.info(
                "%s: GIF timing is in centiseconds; keeping 1 frame in %d (%.3g fps)",
                self.path.name,
                self.step,
                float(self.gif_rate),
            )
        self._hist = ColourHistogram()
        self._kept = 0
        self._spool_path = temp_path(self.path, ".frames")
        self._muxed_path = temp_path(self.path, ".mux.gif")
        try:
            self._spool = open(self._spool_path, "xb")
        except OSError as exc:
            raise UnsupportedMedia(f"Cannot create '{self.path.name}': {exc.strerror or exc}.") from exc

    def _write_frame(self, arr: np.ndarray) -> None:
        if self._frames % self.step:
            return
        assert self._spool is not None
        rgb = np.ascontiguousarray(arr[:, :, :3])
        self._spool.write(rgb.tobytes())
        self._hist.add(rgb)
        self._kept += 1

    def _spooled(self) -> Iterator[np.ndarray]:
        size = self.width * self.height * 3
        with open(self._spool_path, "rb") as fh:
            for _ in range(self._kept):
                buf = fh.read(size)
                if len(buf) != size:
                    raise UnsupportedMedia(f"{self.path.name}: the frame spool is truncated.")
                yield np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3)

    def _finish(self) -> None:
        assert self._spool is not None
        self._spool.close()
        self._spool = None
        ids, means, weights = self._hist.points()
        palette = median_cut(means, weights, PALETTE_SIZE)
        mapper = PaletteMapper(palette, self._hist, dither=len(ids) > PALETTE_SIZE)
        argb = mapper.argb()

        end_cs = round(self._frames * _CS / self.rate)
        pts = [round(j * self.step * _CS / self.rate) for j in range(self._kept)]
        final_delay = max(1, end_cs - pts[-1])
        try:
            container = av.open(
                str(self._muxed_path),
                "w",
                format="gif",
                container_options={"loop": "0", "final_delay": str(final_delay)},
            )
        except (av.FFmpegError, OSError) as exc:
            raise UnsupportedMedia(f"Cannot create '{self.path.name}': {exc}.") from exc
        with container:
            stream = container.add_stream("gif", rate=self.gif_rate)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "pal8"
            stream.codec_context.time_base = Fraction(1, 100)
            for j, rgb in enumerate(self._spooled()):
                frame = av.VideoFrame.from_ndarray((mapper(rgb), argb), format="pal8")
                frame.pts = pts[j]
                frame.time_base = Fraction(1, 100)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        _add_comment(self._muxed_path, self._tmp, "\n".join(s for s in (self.title, PRODUCT) if s))
        remove_path(self._muxed_path)
        remove_path(self._spool_path)

    def _release(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()
        for p in (getattr(self, "_spool_path", None), getattr(self, "_muxed_path", None)):
            if p is not None:
                remove_path(p)


def _add_comment(src: Path, dst: Path, text: str) -> None:
    """Copy the GIF ``src`` to ``dst`` with a Comment Extension after the global colour table."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        head = fin.read(13)  # "GIF89a" + logical screen descriptor
        if len(head) < 13 or head[:3] != b"GIF":
            raise UnsupportedMedia(f"{dst.name}: the GIF encoder wrote no header.")
        flags = head[10]
        table = 3 * (1 << ((flags & 7) + 1)) if flags & 0x80 else 0
        fout.write(head + fin.read(table))
        data = text.encode("utf-8")
        fout.write(b"\x21\xfe")
        for i in range(0, len(data), 255):
            block = data[i : i + 255]
            fout.write(bytes([len(block)]) + block)
        fout.write(b"\x00")
        shutil.copyfileobj(fin, fout, 1 << 20)
