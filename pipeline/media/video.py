"""Reading video files: the one video reader of the pipeline (PyAV).

    with VideoReader("clip.mp4") as video:
        video.size, video.fps, video.frame_count, video.duration, video.is_vfr
        for frame in video:                      # TimedFrame: image, time, duration, index
            ...
        frame = video.frame_at(2.5)              # the frame on screen at 2.5 s
        frame = video.frame_at(9.0, loop=True)   # ... of the clip played in a loop
        for frame in video.resample(25.0):       # constant frame rate: on screen at k / 25 s
            ...

Time is seconds from the first frame's presentation (the first frame is at 0.0). Every
frame keeps its own presentation timestamp, so a variable-frame-rate file is read on its
real timeline; a frame without one goes one nominal frame after the frame before.
:attr:`VideoReader.start_time` is where the first frame sits on the file's timeline and
:attr:`VideoReader.audio_start` where the audio stream starts (None without audio), so
``frame.time + start_time - audio_start`` is a frame's time on the audio's clock.

Opening decodes the first frame, so a file that cannot be read is refused at once with
:class:`~pipeline.errors.UnsupportedMedia`. Frame count, duration and variable frame rate
come from one pass over the packets (no decoding), made on first use. Decoding streams
forward with one frame of look-ahead (each frame's display duration is known when it is
handed out); stepping back, or far ahead, seeks to the keyframe before and decodes from
there. A decoding error after the first frame ends the video early with a warning.

``format="rgba"`` returns the real alpha plane: VP9 in WebM with ``alpha_mode=1`` keeps
its alpha as Matroska BlockAdditional side data, which FFmpeg's native ``vp9`` decoder
drops, so such a stream is decoded with ``libvpx-vp9``; other formats without alpha
give 255. Images are as stored: :attr:`VideoReader.rotation` reports a display rotation
from the file, it is not applied.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from pipeline import timing
from pipeline.errors import InvalidOption, UnsupportedMedia

log = logging.getLogger(__name__)

PixelFormat = Literal["rgb24", "rgba"]

EPS = 1e-6  # s: times this close count as equal
SEEK_AHEAD = 2.0  # s: a jump further ahead than this seeks instead of decoding through
VFR_TOLERANCE = 0.05  # a frame step differing from the median by more than this share is VFR
DEFAULT_FPS = 25.0  # nominal rate of a stream that declares none
_ALPHA_PREFIXES = ("yuva", "rgba", "bgra", "argb", "abgr", "gbrap", "ya")


@dataclass(frozen=True)
class TimedFrame:
    """One decoded frame and when it is on screen."""

    image: np.ndarray  # uint8 (H, W, 3) RGB, or (H, W, 4) RGBA for format "rgba"
    time: float  # presentation start, seconds from the first frame
    duration: float  # seconds on screen (until the next frame; the last: its own duration)
    index: int  # position in presentation order, 0 for the first frame

    @property
    def end(self) -> float:
        return self.time + self.duration


@dataclass
class _Raw:
    """A decoded frame not yet converted to an array."""

    frame: Any  # av.VideoFrame
    time: float  # seconds from the first frame
    own_duration: float  # the frame's own duration from the file (0: not given)
    index: int


@dataclass(frozen=True)
class _Scan:
    """What one pass over the packets tells (no decoding)."""

    times: np.ndarray  # float64 presentation times of the frames, sorted, seconds on the file's timeline
    last_duration: float  # the last frame's own duration (0: not given)
    timed: bool  # every packet has a timestamp


def open_container(path: str | Path) -> Any:
    """``av.open`` for reading, its failures as :class:`UnsupportedMedia` naming the file."""
    import av

    p = Path(path)
    if not p.is_file():
        raise UnsupportedMedia(f"'{p.name}' was not found.")
    try:
        return av.open(str(p), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise UnsupportedMedia(f"Cannot read '{p.name}': {getattr(exc, 'strerror', None) or exc}.") from exc


def vp9_alpha(stream: Any) -> bool:
    """A VP9 track whose alpha plane rides in BlockAdditional side data (WebM ``alpha_mode``)."""
    meta = {k.lower(): v for k, v in dict(stream.metadata).items()}
    cc = stream.codec_context
    return cc is not None and cc.name == "vp9" and str(meta.get("alpha_mode", "0")) == "1"


def has_alpha(pix_fmt: str | None) -> bool:
    """Whether a pixel format carries an alpha plane (yuva420p, rgba, gbrap, ya8, ...)."""
    return bool(pix_fmt) and str(pix_fmt).startswith(_ALPHA_PREFIXES)


def _stream_start(stream: Any) -> float | None:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return None


class VideoReader:
    """Frames of the first video stream of a file, with their presentation times.

    A context manager; see the module docstring for the time convention. A reader has
    one position: iterating, :meth:`frames`, :meth:`frame_at` and :meth:`resample` all
    move it (each starts where it needs to), so interleave them on one reader only
    knowingly; a second reader of the same file is independent.
    """

    def __init__(self, path: str | Path, *, format: PixelFormat = "rgb24", threads: bool = True,
                 scale_to: tuple[int, int] | None = None) -> None:
        if format not in ("rgb24", "rgba"):
            raise InvalidOption(f"Video frames are read as rgb24 or rgba, not {format!r}.")
        self.path = Path(path)
        self.format: PixelFormat = format
        self._threads = threads
        self._scale_to = scale_to  # (width, height) images are scaled to as they are converted (one swscale pass)
        self._container: Any = None
        self._frames: Iterator[Any] | None = None  # decoded av frames from the current position
        self._peeked: _Raw | None = None  # look-ahead: decoded, not handed out yet
        self._ended = False  # the decoder has no more frames
        self._shown: _Raw | None = None  # the last frame handed out
        self._shown_image: np.ndarray | None = None  # its array, once converted
        self._next_index = 0  # index of the next frame to decode
        self._prev_raw: float | None = None  # file time of the frame decoded last (fills missing pts)
        self._scan_result: _Scan | None = None
        self._origin: float | None = None  # file time of the first frame
        self._open()
        vs = self._stream
        cc = vs.codec_context
        self.width, self.height = int(cc.width or vs.width), int(cc.height or vs.height)
        self.codec: str = cc.name
        self.pix_fmt: str | None = cc.pix_fmt
        # the stream stores transparency (decoded as such with format "rgba")
        self.alpha = vp9_alpha(vs) or (self.codec != "gif" and has_alpha(self.pix_fmt))
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        self.fps = float(rate) if rate else DEFAULT_FPS  # nominal frame rate (the header's)
        self._nominal = 1.0 / self.fps
        self._tick = float(vs.time_base) if vs.time_base else 0.0
        audio = self._container.streams.audio
        self.has_audio = bool(audio)
        self.audio_start: float | None = _stream_start(audio[0]) if audio else None
        self.start_time = 0.0  # the first frame's time on the file's timeline (set by the first decode)
        first = self._peek()
        if first is None:
            self.close()
            raise UnsupportedMedia(f"'{self.path.name}' contains no video frames.")
        self.rotation = int(getattr(first.frame, "rotation", 0) or 0)  # display rotation (degrees), not applied

    # -- metadata -------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def frame_count(self) -> int:
        """Frames in the file (counted from its packets, not a header estimate)."""
        return len(self._scan().times)

    @property
    def timestamps(self) -> np.ndarray:
        """Presentation times (s, from the first frame) of every frame, in order."""
        scan = self._scan()
        if not scan.timed:
            return timing.frame_times(len(scan.times), self.fps)
        return scan.times - self.start_time

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        ts = self.timestamps
        return float(ts[-1] + self._last_duration(ts)) if len(ts) else 0.0

    @property
    def is_vfr(self) -> bool:
        """Whether frame steps differ (beyond timestamp rounding): a variable frame rate."""
        d = np.diff(self.timestamps)
        if len(d) < 2:
            return False
        med = float(np.median(d))
        return bool(np.any(np.abs(d - med) > max(2.0 * self._tick, VFR_TOLERANCE * med)))

    def _last_duration(self, ts: np.ndarray) -> float:
        """The last frame's own duration, else the step before it, else the nominal one."""
        own = self._scan().last_duration
        if own > 0:
            return own
        if len(ts) >= 2 and ts[-1] > ts[-2]:
            return float(ts[-1] - ts[-2])
        return self._nominal

    def _scan(self) -> _Scan:
        if self._scan_result is None:
            container = open_container(self.path)
            times: list[float] = []
            timed = True
            last: tuple[float, float] = (-math.inf, 0.0)  # (time, own duration) of the latest frame
            with container:
                vs = container.streams.video[0]
                tb = vs.time_base
                for pkt in container.demux(vs):
                    if pkt.size == 0 or getattr(pkt, "is_discard", False):
                        continue
                    if pkt.pts is None or tb is None:
                        timed = False
                        times.append(0.0)
                        continue
                    t = float(pkt.pts * tb)
                    times.append(t)
                    if t >= last[0]:
                        last = (t, float((pkt.duration or 0) * tb))
            self._scan_result = _Scan(np.sort(np.asarray(times, np.float64)), last[1], timed)
        return self._scan_result

    # -- reading --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[TimedFrame]:
        return self.frames()

    def frames(self, start: float = 0.0) -> Iterator[TimedFrame]:
        """Every frame from the one on screen at ``start`` seconds to the end, in order."""
        if start > 0:
            self._position(float(start))
        else:
            self._rewind()
        raw = self._shown if self._shown is not None and start > 0 else self._pop()
        while raw is not None:
            image = self._image(raw)
            nxt = self._peek()
            yield TimedFrame(image, raw.time, self._duration(raw, nxt), raw.index)
            raw = self._pop()

    def frame_at(self, t: float, *, loop: bool = False) -> TimedFrame:
        """The frame on screen at ``t`` seconds: the last one starting at or before it (the
        first frame for ``t`` before 0, the last one past the end). With ``loop`` the clip
        repeats: ``t`` is taken modulo :attr:`duration`."""
        t = max(0.0, float(t))
        if loop:
            t = self.wrap(t)
        raw = self._position(t)
        nxt = self._peek()
        return TimedFrame(self._image(raw), raw.time, self._duration(raw, nxt), raw.index)

    def wrap(self, t: float) -> float:
        """``t`` (>= 0) folded into one pass of the looped clip."""
        period = self.duration
        if period <= 0:
            return t
        return max(0.0, t - period * math.floor(t / period + EPS))

    def resample(self, fps: float, duration: float | None = None, *, loop: bool = False) -> Iterator[TimedFrame]:
        """The frames on screen at ``k / fps`` for a constant frame rate, ``k`` from 0 over
        ``duration`` seconds (default: the clip's); ``time`` and ``index`` are the output's."""
        length = self.duration if duration is None else float(duration)
        for k in range(timing.frame_count(length, fps)):
            t = float(timing.frame_start(k, fps))
            src = self.frame_at(t, loop=loop)
            yield TimedFrame(src.image, t, float(timing.frame_start(k + 1, fps)) - t, k)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._frames = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- decoding -------------------------------------------------------------------------

    def _open(self) -> None:
        """Open the file (again) and decode from its start."""
        self.close()
        self._container = open_container(self.path)
        if not self._container.streams.video:
            self.close()
            raise UnsupportedMedia(f"'{self.path.name}' has no video stream.")
        self._stream = self._container.streams.video[0]
        if self._threads:
            self._stream.thread_type = "AUTO"
        self._reset(0)

    def _reset(self, next_index: int) -> None:
        """A fresh decoder at the container's current position."""
        self._frames = self._decoder()
        self._peeked, self._ended, self._shown, self._shown_image = None, False, None, None
        self._next_index, self._prev_raw = next_index, None

    def _decoder(self) -> Iterator[Any]:
        """Decoded av frames from the container's current position."""
        import av

        container, vs = self._container, self._stream
        if self.format == "rgba" and vp9_alpha(vs):
            ctx = av.CodecContext.create("libvpx-vp9", "r")
            for pkt in container.demux(vs):
                if pkt.size:
                    yield from ctx.decode(pkt)
            yield from ctx.decode(None)
            return
        yield from container.decode(vs)

    def _peek(self) -> _Raw | None:
        if self._peeked is None and not self._ended:
            self._peeked = self._decode()
        return self._peeked

    def _pop(self) -> _Raw | None:
        raw = self._peek()
        self._peeked = None
        if raw is not None:
            self._shown, self._shown_image = raw, None
        return raw

    def _decode(self) -> _Raw | None:
        import av

        assert self._frames is not None
        try:
            frame = next(self._frames)
        except StopIteration:
            self._ended = True
            return None
        except av.FFmpegError as exc:
            self._ended = True
            if self._origin is None:
                raise UnsupportedMedia(f"Cannot decode the video of '{self.path.name}' ({exc}).") from exc
            log.warning("%s: decoding stopped after frame %d: %s", self.path.name, self._next_index, exc)
            return None
        tb = self._stream.time_base
        if frame.pts is not None and tb is not None:
            raw_t = float(frame.pts * tb)
        else:
            raw_t = (self._prev_raw + self._nominal) if self._prev_raw is not None else 0.0
        self._prev_raw = raw_t
        if self._origin is None:
            self._origin = self.start_time = raw_t
        own = float(frame.duration * tb) if frame.duration and tb is not None else 0.0
        raw = _Raw(frame, raw_t - self._origin, own, self._next_index)
        self._next_index += 1
        return raw

    def _duration(self, raw: _Raw, nxt: _Raw | None) -> float:
        if nxt is not None and nxt.time > raw.time:
            return nxt.time - raw.time
        if raw.own_duration > 0:
            return raw.own_duration
        return self._last_duration(self.timestamps)

    def _image(self, raw: _Raw) -> np.ndarray:
        if raw is self._shown and self._shown_image is not None:
            return self._shown_image
        if self._scale_to is not None:
            w, h = self._scale_to
            image = raw.frame.to_ndarray(format=self.format, width=w, height=h, interpolation="AREA")
        else:
            image = raw.frame.to_ndarray(format=self.format)
        if raw is self._shown:
            self._shown_image = image
        return image

    def _position(self, t: float) -> _Raw:
        """Make the frame on screen at ``t`` the one shown last, and return it.

        Between calls no frame shown means the reader is at the start of the file.
        """
        shown, nxt = self._shown, self._peek()
        back = shown is not None and t + EPS < shown.time
        ahead = nxt is not None and t - nxt.time > SEEK_AHEAD and self._scan().timed
        if back or ahead:
            self._seek_back(t)
        while (nxt := self._peek()) is not None and nxt.time <= t + EPS:
            self._pop()
        if self._shown is None:  # ``t`` lies before the first frame decoded
            self._rewind()
            self._pop()
        if self._shown is None:
            raise UnsupportedMedia(f"'{self.path.name}' has no frame to show at {t:.3f} s.")
        return self._shown

    def _rewind(self) -> None:
        """Back to the first frame (nothing re-decoded when it is the next one already).
        Reopening rather than seeking: every format can do that, and it is exact."""
        if self._shown is None and self._peeked is not None and self._peeked.index == 0:
            return
        self._open()

    def _seek_back(self, t: float) -> None:
        """Decode from the keyframe at or before ``t``; frame indices then come from the scan."""
        scan = self._scan()
        if t <= EPS or not scan.timed or self._container is None:
            self._open()
            return
        try:
            self._container.seek(int(math.floor((t + self.start_time) / self._tick)), stream=self._stream)
        except Exception as exc:  # noqa: BLE001 - a format that cannot seek: decode from the start
            log.debug("%s: seek failed (%s); decoding from the start", self.path.name, exc)
            self._open()
            return
        self._reset(0)
        first = self._peek()
        if first is None or first.time > t + EPS:  # landed past ``t``: decode from the start
            self._open()
            return
        first.index = max(0, int(np.searchsorted(self.timestamps, first.time + EPS, side="right")) - 1)
        self._next_index = first.index + 1


def read_frames(path: str | Path, *, format: PixelFormat = "rgb24", limit: int | None = None) -> Iterator[np.ndarray]:
    """The frames of ``path`` as arrays, in order (at most ``limit``)."""
    if limit is not None and limit <= 0:
        return
    with VideoReader(path, format=format) as video:
        for frame in video:
            yield frame.image
            if limit is not None and frame.index + 1 >= limit:
                return


__all__ = ["PixelFormat", "TimedFrame", "VideoReader", "has_alpha", "open_container", "read_frames", "vp9_alpha"]
