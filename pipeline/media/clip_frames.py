"""Presenter clips as frames at a constant rate: probing, rotation, CFR normalisation, and
the block-coded store a prepared clip keeps its frames in.

    info = probe_clip("phone.mov")                 # size upright, fps, VFR, duration, rotation, codecs
    with VideoReader(info.path) as video:
        for k, image, t in cfr_frames(video, 25.0, info.rotation, stored_size(info.size)):
            ...                                    # the frame on screen at k / 25 s, upright

A variable-frame-rate source is normalised by timestamp (:meth:`VideoReader.resample`):
output frame ``k`` shows the source frame on screen at ``k / fps``, so a source frame is
repeated or left out only where the timelines say so, never by counting frames.

:class:`BlockWriter` / :class:`BlockReader`: the normalised frames are stored once as
H.264 with a keyframe every :data:`BLOCK` frames and no B-frames, so any frame is one seek
and at most ``BLOCK`` decodes away, and a block read backwards (a ping-pong loop) costs
what reading it forwards does. The store is BT.709 limited range, what the writers encode, so
a render can hand a frame's decoded planes to the encoder as they are (``BlockReader.i420``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from pipeline import timing
from pipeline.errors import UnsupportedMedia
from pipeline.export.base import ColorConverter, tag_bt709
from pipeline.export.yuv import to_i420, to_rgb
from pipeline.media.video import VideoReader

log = logging.getLogger(__name__)

MIN_SECONDS = 2.0  # shortest presenter clip accepted
MAX_SECONDS = 60.0  # longest
MAX_SIDE = 1280  # longest side a prepared clip is kept at (720p): larger sources are scaled down
BLOCK = 16  # frames per keyframe interval of the stored clip
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".3gp", ".mpg", ".mpeg", ".ts", ".mts")


def is_video_path(source: object) -> bool:
    """Whether ``source`` names a file that is read as a clip (by its suffix)."""
    return isinstance(source, (str, Path)) and Path(str(source)).suffix.lower() in VIDEO_SUFFIXES


def looks_like_video(path: str | Path) -> bool:
    """Whether a file without a video suffix (an upload named "blob") holds a moving video."""
    try:
        with VideoReader(path, threads=False) as video:
            return video.codec not in ("png", "mjpeg", "gif", "webp", "bmp", "tiff") and video.frame_count > 1
    except Exception:  # noqa: BLE001 - not a video: the caller reports the image error
        return False


@dataclass(frozen=True)
class ClipInfo:
    """What a presenter clip is, as read from its file."""

    path: str
    size: tuple[int, int]  # (width, height) upright (rotation applied)
    fps: float  # nominal frame rate from the header
    vfr: bool  # frame steps vary (a phone recording)
    duration: float  # seconds
    frames: int  # frames in the file
    rotation: int  # display rotation from the file, degrees counter-clockwise (0, 90, 180, 270)
    codec: str
    container: str
    audio_codec: str  # "" without audio

    def describe(self) -> str:
        w, h = self.size
        mean = self.frames / max(self.duration, 1e-9)
        rate = f"variable frame rate (about {mean:.1f} fps)" if self.vfr else f"{self.fps:.3g} fps"
        turn = f", rotated {self.rotation}°" if self.rotation else ""
        return f"{w}×{h} {self.codec}, {self.duration:.1f} s at {rate}{turn}"


def probe_clip(path: str | Path) -> ClipInfo:
    """Read a clip's stream facts, refusing what cannot be a presenter clip (unreadable,
    shorter than MIN_SECONDS, longer than MAX_SECONDS)."""
    p = Path(path)
    with VideoReader(p) as video:
        rot = int(round(video.rotation / 90.0)) % 4 * 90
        w, h = video.size
        if rot in (90, 270):
            w, h = h, w
        audio_codec = ""
        streams = video._container.streams.audio if video._container is not None else ()
        if streams:
            cc = streams[0].codec_context
            audio_codec = cc.name if cc is not None else ""
        container = str(getattr(video._container.format, "name", "")) if video._container is not None else ""
        info = ClipInfo(str(p), (w, h), float(video.fps), bool(video.is_vfr), float(video.duration),
                        int(video.frame_count), rot, video.codec, container, audio_codec)
    if info.duration < MIN_SECONDS:
        raise UnsupportedMedia(
            f"'{p.name}' is {info.duration:.2f} s long; a presenter clip must be {MIN_SECONDS:g}–{MAX_SECONDS:g} s "
            "(use a photo for a still avatar)."
        )
    if info.duration > MAX_SECONDS + 0.5:
        raise UnsupportedMedia(
            f"'{p.name}' is {info.duration:.1f} s long; presenter clips of {MIN_SECONDS:g}–{MAX_SECONDS:g} s are "
            "supported (longer speech loops the clip, so a short one is enough): trim it first."
        )
    return info


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """The image as displayed: ``rotation`` degrees counter-clockwise (PyAV's convention)."""
    k = int(round(rotation / 90.0)) % 4
    if not k:
        return image
    turn = (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE)[k - 1]
    return cv2.rotate(np.ascontiguousarray(image), turn)


def stored_size(size: tuple[int, int], longest: int = MAX_SIDE) -> tuple[int, int]:
    """(width, height) a clip of ``size`` is kept at: at most ``longest`` px, even sides."""
    w, h = size
    s = min(1.0, longest / float(max(w, h)))
    return max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)


def cfr_frames(
    video: VideoReader, fps: float, rotation: int = 0, size: tuple[int, int] | None = None,
    start: float = 0.0, duration: float | None = None,
) -> Iterator[tuple[int, np.ndarray, float]]:
    """``(k, image, source time)`` for the frames on screen at ``start + k / fps`` over
    ``duration`` s (default: to the end), upright and scaled to ``size`` (width, height); the
    source time is when the frame shown starts in the source (the same for a repeated frame)."""
    length = (video.duration - start) if duration is None else duration
    for k in range(timing.frame_count(max(0.0, length), fps)):
        t = start + float(timing.frame_start(k, fps))
        shown = video.frame_at(t)
        image = upright(shown.image, rotation)
        if size is not None and (image.shape[1], image.shape[0]) != size:
            interp = cv2.INTER_AREA if size[0] < image.shape[1] else cv2.INTER_LINEAR
            image = cv2.resize(image, size, interpolation=interp)
        yield k, image, shown.time


class BlockWriter:
    """Frames of one size to an H.264 file with a keyframe every ``BLOCK`` frames (the store of a
    prepared clip); a context manager, ``write(image)`` then ``close()``."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, crf: int = 14) -> None:
        import av

        self.path = Path(path)
        self.size = size
        rate = timing.fps_fraction(fps)
        self._c = av.open(str(self.path), "w")
        self._s = self._c.add_stream("libx264", rate=rate, options={
            "preset": "ultrafast", "crf": str(crf), "g": str(BLOCK), "keyint_min": str(BLOCK),
            "sc_threshold": "0", "bf": "0", "x264-params": f"keyint={BLOCK}:min-keyint={BLOCK}:scenecut=0",
        })
        self._s.width, self._s.height, self._s.pix_fmt = size[0], size[1], "yuv420p"
        self._s.time_base = Fraction(1, 1) / rate
        tag_bt709(self._s.codec_context)
        self._convert = ColorConverter("yuv420p")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        frame = self._convert(image)  # BT.709 limited range, as the writers
        frame.pts = self.frames
        self._c.mux(self._s.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self._c is not None:
            self._c.mux(self._s.encode(None))
            self._c.close()
            self._c = None

    def __enter__(self) -> "BlockWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlockReader:
    """Random access to the frames of a :class:`BlockWriter` file: ``reader[i]`` (RGB) decodes the
    block holding frame ``i`` (kept with the one before, so forward and backward runs decode each
    block once); ``reader.i420(i)`` is the same frame's decoded planes (read-only)."""

    def __init__(self, path: str | Path, n_frames: int, fps: float, keep: int = 2) -> None:
        import av

        self.path = Path(path)
        self.n_frames = n_frames
        self.keep = keep
        try:
            self._c = av.open(str(self.path))
        except av.FFmpegError as exc:
            raise UnsupportedMedia(
                f"The prepared clip '{self.path}' cannot be read ({exc}); prepare it again."
            ) from exc
        self._s = self._c.streams.video[0]
        self._s.thread_type = "AUTO"  # measured: the same CPU per frame as one thread, less waiting
        self._tb = float(self._s.time_base)
        self._start = int(self._s.start_time or 0)
        self._fps = float(timing.fps_fraction(fps))
        self._blocks: "OrderedDict[int, list[tuple[np.ndarray, np.ndarray]]]" = OrderedDict()
        self.decoded = 0  # frames decoded so far (tests, benchmarks)

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, i: int) -> np.ndarray:
        return self._frame(i)[0]

    def i420(self, i: int) -> np.ndarray:
        """Frame ``i`` as decoded: I420, BT.709 limited range, ``(H * 3 // 2, W)``, read-only."""
        return self._frame(i)[1]

    def _frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        i = min(max(int(i), 0), self.n_frames - 1)
        b = i // BLOCK
        block = self._blocks.get(b)
        if block is None:
            block = self._decode(b)
            self._blocks[b] = block
            while len(self._blocks) > self.keep:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(b)
        return block[min(i - b * BLOCK, len(block) - 1)]

    def _decode(self, b: int) -> list[tuple[np.ndarray, np.ndarray]]:
        first = b * BLOCK
        want = min(BLOCK, self.n_frames - first)
        target = self._start + int(round(first / self._fps / self._tb))
        self._c.seek(target, stream=self._s, backward=True, any_frame=False)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for frame in self._c.decode(self._s):
            k = first + len(out) if frame.pts is None else int(round((frame.pts - self._start) * self._tb * self._fps))
            if k < first:
                continue
            rgb = to_rgb(frame)
            planes = frame.to_ndarray() if frame.format.name == "yuv420p" else to_i420(rgb)
            planes.flags.writeable = False
            out.append((rgb, planes))
            self.decoded += 1
            if len(out) >= want:
                break
        if not out:
            raise UnsupportedMedia(f"The prepared clip '{self.path.name}' has no frame {first}; prepare it again.")
        return out

    def close(self) -> None:
        if self._c is not None:
            self._c.close()
            self._c = None
        self._blocks.clear()

    def __enter__(self) -> "BlockReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
