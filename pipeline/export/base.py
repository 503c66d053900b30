"""What every writer shares: checks, temp names and atomic commit, colour conversion, audio.

``BaseWriter`` owns the life cycle every format follows (see ``pipeline.export``):
validate the settings, write into a hidden temp path next to the output, encode frames as
they come, and on ``close()`` flush and move the result into place in one rename; any
failure (or ``abort()``, or an exception inside the ``with`` block) removes the temp path
and leaves an existing output untouched. ``ContainerWriter`` adds what the PyAV-muxed
formats (MP4, WebM, MOV, WAV) have in common: one container, BT.709 colour conversion, a
constant-frame-rate video stream and an audio track interleaved with the video.

Timing: the video time base is ``1 / fps_fraction(fps)`` and frame ``i`` has pts ``i``,
so N frames last exactly N / fps. Audio is encoded untouched from t = 0 (resampled only
when the codec cannot carry its rate) and kept level with the video as frames arrive.

Colour: frames are sRGB-encoded RGB(A); YUV formats get BT.709 matrix, primaries and
transfer with limited ("tv") range, and are tagged so; alpha is never range-scaled.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, VideoReformatter

from pipeline.errors import InvalidOption, UnsupportedMedia
from pipeline.export.readback import has_alpha
from pipeline.export.yuv import i420_of
from pipeline.media.audio import resample
from pipeline.options import ExportOptions
from pipeline.timing import fps_fraction
from pipeline.types import AudioClip

log = logging.getLogger(__name__)

PRODUCT = "Avatar Studio"  # written as the creation tool (comment / Software / ISFT)
MAX_SIDE = 8192  # largest width/height accepted
_PCM_CHUNK = 1024  # samples per frame for codecs without a fixed frame size (PCM)


# --------------------------------------------------------------------------- checks


def check_size(width: Any, height: Any) -> tuple[int, int]:
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))):
        raise InvalidOption(f"Video size must be whole pixels, got {width!r} x {height!r}.")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise InvalidOption(f"Video size {width}x{height} is out of range (1..{MAX_SIDE} px per side).")
    return int(width), int(height)


def check_fps(fps: Any) -> Fraction:
    """The exact rational frame rate for ``fps`` (1..240)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 1.0 <= value <= 240.0):
        raise InvalidOption(f"Frame rate must be between 1 and 240 fps, got {fps!r}.")
    return fps_fraction(value)


def check_frame(frame: Any, width: int, height: int) -> np.ndarray:
    """``frame`` as a uint8 ``(height, width, 3 or 4)`` array, or ValueError (a frame that
    carries its YUV planes, ``pipeline.export.yuv.YuvFrame``, is kept as it is)."""
    arr = np.asanyarray(frame)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[:2] != (height, width):
        raise ValueError(f"frame shape {arr.shape} does not match the writer ({height}, {width}, 3 or 4)")
    return arr


# --------------------------------------------------------------------------- temp paths


def temp_path(path: Path, suffix: str = "") -> Path:
    """A hidden, unique sibling of ``path``: ``.<name>.<pid>-<id>.partial<suffix>``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{suffix}")


def remove_path(path: Path) -> None:
    """Remove a temp file or folder; never raises (logs instead)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove temp path %s: %s", path, exc)


def commit_dir(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` to ``path``, replacing a previous folder there.

    A rename cannot replace a non-empty folder, so an existing one is first renamed aside,
    the new one renamed in, and the old one deleted: ``path`` is never half-written, but it
    is briefly absent between the two renames. If the second rename fails, the old folder
    is put back.
    """
    old: Path | None = None
    if path.exists() or path.is_symlink():
        old = temp_path(path, ".old")
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        remove_path(old)


# --------------------------------------------------------------------------- colour


def tag_bt709(cc: Any) -> None:
    """Tag a video codec context as BT.709 (matrix, primaries, transfer), limited (tv) range."""
    cc.colorspace = int(Colorspace.ITU709)
    cc.color_primaries = int(ColorPrimaries.BT709)
    cc.color_trc = int(ColorTrc.BT709)
    cc.color_range = int(ColorRange.MPEG)


class ColorConverter:
    """RGB(A) uint8 arrays to PyAV frames in one YUV(A) pixel format, BT.709 limited range.

    When the target has an alpha plane, RGB input gets an opaque one; when it has none,
    the input's alpha is dropped. A frame that carries its picture as I420 already
    (:class:`pipeline.export.yuv.YuvFrame`) goes to a "yuv420p" target as it is.
    """

    def __init__(self, pix_fmt: str) -> None:
        self.pix_fmt = pix_fmt
        self.alpha = has_alpha(pix_fmt)
        self._sws = VideoReformatter()

    def __call__(self, arr: np.ndarray) -> av.VideoFrame:
        if self.pix_fmt == "yuv420p":
            i420 = i420_of(arr)
            if i420 is not None and i420.shape == (arr.shape[0] * 3 // 2, arr.shape[1]):
                frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
                frame.colorspace, frame.color_range = Colorspace.ITU709, ColorRange.MPEG
                return frame
        if self.alpha:
            if arr.shape[2] == 3:
                arr = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
            src = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgba")
        else:
            if arr.shape[2] == 4:
                arr = arr[:, :, :3]
            src = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        return self._sws.reformat(
            src,
            format=self.pix_fmt,
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
            dst_color_trc=ColorTrc.BT709,
            dst_color_primaries=ColorPrimaries.BT709,
        )


# --------------------------------------------------------------------------- audio


def mono_samples(audio: AudioClip | None, name: str) -> AudioClip | None:
    """The clip as contiguous float32 mono in [-1, 1], or None when there is no audio."""
    if audio is None:
        return None
    samples = np.asarray(audio.samples, dtype=np.float32)
    if samples.ndim != 1:
        raise InvalidOption(f"Audio must be mono (1-D samples), got shape {samples.shape}.")
    if samples.size == 0:
        log.warning("%s: the audio clip is empty; writing video only", name)
        return None
    if int(audio.rate) <= 0:
        raise InvalidOption(f"Audio sample rate must be positive, got {audio.rate}.")
    return AudioClip(np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32), int(audio.rate))


@dataclass(frozen=True)
class AudioSpec:
    """How a writer wants its audio encoded."""

    codec: str  # PyAV encoder name: "aac", "libopus", "pcm_s16le"
    rate: int  # sample rate of the stream (the clip is resampled when it differs)
    bit_rate: int | None = None  # bits per second for lossy codecs
    sample_format: str | None = None  # encoder input format when not its default ("flt" for Opus)
    options: dict[str, str] = field(default_factory=dict)  # encoder options


class AudioTrack:
    """One mono audio stream fed in codec-sized chunks, interleaved with the video.

    ``encode_until(n)`` encodes whole codec frames up to sample ``n``; ``finish()`` encodes
    the rest (a short last frame) and flushes the encoder. ``extend(clip)`` appends speech
    that arrived later (a render over speech parts), before the frames that need it.
    """

    def __init__(self, container: av.container.OutputContainer, clip: AudioClip, spec: AudioSpec) -> None:
        self._source_rate = clip.rate
        if clip.rate != spec.rate:
            clip = resample(clip, spec.rate)
        self.rate = spec.rate
        self._buf = np.array(clip.samples, np.float32)
        self._n = len(self._buf)
        stream = container.add_stream(spec.codec, rate=spec.rate, options=dict(spec.options))
        stream.layout = "mono"
        if spec.sample_format:
            stream.format = spec.sample_format
        if spec.bit_rate:
            stream.bit_rate = spec.bit_rate
        stream.codec_context.time_base = Fraction(1, spec.rate)
        fmt = stream.codec_context.format
        self._fmt = fmt.name if fmt is not None else "fltp"
        self._container = container
        self.stream = stream
        self._chunk = 0  # known once the encoder is open (PCM: no fixed size)
        self.pos = 0  # next sample to encode

    @property
    def samples(self) -> np.ndarray:
        """The samples so far (at the stream's rate)."""
        return self._buf[: self._n]

    @property
    def duration(self) -> float:
        return self._n / self.rate

    def extend(self, clip: AudioClip) -> None:
        """Append ``clip`` (at the rate the track was made with). A part resampled on its
        own joins the next without a click when parts meet in silence, as speech parts do."""
        if clip.rate != self._source_rate:
            raise InvalidOption(f"Audio at {clip.rate} Hz cannot continue a track made at {self._source_rate} Hz.")
        more = resample(clip, self.rate).samples if clip.rate != self.rate else clip.samples
        if self._n + len(more) > len(self._buf):
            grown = np.zeros(max(2 * len(self._buf), self._n + len(more)), np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : self._n + len(more)] = np.clip(more, -1.0, 1.0)
        self._n += len(more)

    def _frame_size(self) -> int:
        if not self._chunk:
            if not self.stream.codec_context.is_open:
                self.stream.codec_context.open()
            self._chunk = int(self.stream.codec_context.frame_size or 0) or _PCM_CHUNK
        return self._chunk

    def _to_frame(self, chunk: np.ndarray) -> av.AudioFrame:
        if self._fmt in ("fltp", "flt"):
            data = chunk[None, :]
        elif self._fmt in ("s16", "s16p"):
            data = np.round(chunk * 32767.0).astype(np.int16)[None, :]
        elif self._fmt in ("s32", "s32p"):
            data = np.round(chunk.astype(np.float64) * 2147483647.0).astype(np.int32)[None, :]
        else:  # pragma: no cover - every codec used here takes one of the above
            raise UnsupportedMedia(f"audio sample format {self._fmt} is not supported")
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=self._fmt, layout="mono")
        af.sample_rate = self.rate
        af.pts = self.pos
        af.time_base = Fraction(1, self.rate)
        return af

    def encode_until(self, until: int, *, final: bool = False) -> None:
        """Encode samples up to ``until`` in whole codec frames (the rest too when ``final``)."""
        size = self._frame_size()
        until = min(until, len(self.samples))
        while self.pos < until:
            end = self.pos + size
            if end > until and not (final and until == len(self.samples)):
                break
            chunk = self.samples[self.pos : min(end, until)]
            self._container.mux(self.stream.encode(self._to_frame(chunk)))
            self.pos += len(chunk)

    def finish(self) -> None:
        self.encode_until(len(self.samples), final=True)
        self._container.mux(self.stream.encode(None))


# --------------------------------------------------------------------------- writers


class WriterContext:
    """``with`` support for writers: close on success, abort (no output) on an error."""

    def close(self) -> Any:  # pragma: no cover - every writer defines it
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - every writer defines it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class BaseWriter(WriterContext):
    """Life cycle shared by every writer; subclasses fill in the format-specific hooks.

    Hooks: ``_open(audio)`` (create the temp output), ``_start(first_frame)`` (once, before
    the first frame: decide alpha, add streams), ``_write_frame(arr)``, ``_finish()`` (flush
    into a complete temp output), ``_release()`` (drop open handles, errors ignored) and
    ``_commit()`` (move the temp output to ``path``).
    """

    # format facts (read by pipeline.export.formats for the CLI, the UI, options and the API)
    format: ClassVar[str] = ""  # ExportOptions.format value
    label: ClassVar[str] = "video"  # format name used in messages
    suffixes: ClassVar[tuple[str, ...]] = ()  # output name suffixes, the first is the default ("" = a folder)
    has_video: ClassVar[bool] = True  # stores the frames
    has_audio: ClassVar[bool] = True  # stores the speech
    browser_playable: ClassVar[bool] = False  # a browser <video> plays it (studio preview)
    temp_suffix: ClassVar[str] = ""  # suffix of the temp path
    supports_alpha: ClassVar[bool] = False  # can keep transparency
    needs_frames: ClassVar[bool] = True  # close() with no frames is an error

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        audio: AudioClip | None = None,
        opts: ExportOptions = ExportOptions(),
        title: str = "",
    ) -> None:
        self.width, self.height = check_size(width, height)
        self.rate: Fraction = check_fps(fps)
        self._check_options(opts)
        self.path = Path(path)
        self.opts = opts
        self.title = title
        self._time_base = Fraction(1, 1) / self.rate
        self._frames = 0
        self._closed = False
        self._started = False
        # Formats with alpha: True when opts ask for it, else None until the first frame decides.
        self.alpha: bool | None = (True if opts.alpha else None) if self.supports_alpha else False
        self._audio_duration: float | None = None
        self._tmp = temp_path(self.path, self.temp_suffix)
        try:
            if not self.path.parent.is_dir():
                raise InvalidOption(f"Output folder '{self.path.parent}' does not exist.")
            self._open(audio)
        except BaseException:
            self._closed = True
            self._discard()
            raise

    def _check_options(self, opts: ExportOptions) -> None:
        if opts.alpha and not self.supports_alpha:
            raise InvalidOption(
                f"{self.label} cannot keep transparency; export as webm, mov or png, or turn alpha off."
            )

    # ------------------------------------------------------------------ hooks

    def _open(self, audio: AudioClip | None) -> None:
        raise NotImplementedError

    def _start(self, first: np.ndarray) -> None:
        """Called once before the first frame is written."""

    def _write_frame(self, arr: np.ndarray) -> None:
        raise NotImplementedError

    def _after_frame(self) -> None:
        """Called after each frame (audio interleaving)."""

    def _finish(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Close whatever is open; called on failure, must not raise."""

    def _commit(self) -> None:
        os.replace(self._tmp, self.path)

    def _decide_alpha(self, first: np.ndarray) -> bool:
        """Alpha is kept when the options ask for it or the frames carry an alpha channel."""
        if self.alpha is None:
            self.alpha = bool(self.supports_alpha and first.shape[2] == 4)
            if self.alpha:
                log.info("%s: frames have an alpha channel; keeping transparency", self.path.name)
        return self.alpha

    # ------------------------------------------------------------------ writing

    @property
    def frames_written(self) -> int:
        """Number of video frames written so far."""
        return self._frames

    @property
    def duration(self) -> float:
        """Duration of the video written so far, in seconds."""
        return float(self._frames / self.rate)

    def write(self, frame: np.ndarray) -> None:
        """Encode one uint8 RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)`` frame."""
        if self._closed:
            raise ValueError(f"{self.path.name}: write() after close()")
        arr = check_frame(frame, self.width, self.height)
        if not self._started:
            self._start(arr)
            self._started = True
        self._write_frame(arr)
        self._frames += 1
        self._after_frame()

    # ------------------------------------------------------------------ finishing

    def close(self) -> Path:
        """Flush, finish the output and move it to ``path``; returns ``path``."""
        if self._closed:
            return self.path
        self._closed = True
        try:
            if self._frames == 0 and self.needs_frames:
                raise ValueError(f"{self.path.name}: no frames were written")
            self._finish()
            self._commit()
        except BaseException:
            self._discard()
            raise
        self._check_sync()
        log.debug("wrote %s: %d frames at %s fps", self.path, self._frames, self.rate)
        return self.path

    def _check_sync(self) -> None:
        if self._audio_duration is None or self._frames == 0:
            return
        if abs(self._audio_duration - self.duration) > float(1 / self.rate):
            log.warning(
                "%s: video (%.3f s) and audio (%.3f s) differ by more than a frame",
                self.path.name,
                self.duration,
                self._audio_duration,
            )

    def abort(self) -> None:
        """Stop writing and remove the temp output; nothing appears at ``path``."""
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        try:
            self._release()
        except Exception as exc:  # the output is thrown away; the first error matters
            log.debug("ignoring error while discarding %s: %s", self._tmp.name, exc)
        remove_path(self._tmp)


    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                log.warning("%s: writer dropped without close(); discarding", self.path.name)
                self.abort()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


class ContainerWriter(BaseWriter):
    """A writer muxing one PyAV container: metadata, a CFR video stream, interleaved audio.

    Subclasses set ``container_format`` and implement ``_video_stream()`` (add and configure
    the video stream, return the ColorConverter for it) and ``_audio_spec(clip)``.
    """

    container_format: ClassVar[str] = ""
    container_options: ClassVar[dict[str, str]] = {}
    add_streams_at_open: ClassVar[bool] = False  # True: no per-frame decision to wait for

    _container: av.container.OutputContainer | None = None
    _audio_track: AudioTrack | None = None
    _video: av.VideoStream | None = None
    _convert: ColorConverter | None = None
    _clip: AudioClip | None = None

    def _open(self, audio: AudioClip | None) -> None:
        try:
            container = av.open(
                str(self._tmp), "w", format=self.container_format, container_options=dict(self.container_options)
            )
        except (av.FFmpegError, OSError) as exc:
            raise UnsupportedMedia(f"Cannot create '{self.path.name}': {exc}.") from exc
        self._container = container
        if self.title:
            container.metadata["title"] = self.title
        container.metadata["comment"] = PRODUCT
        self._clip = mono_samples(audio, self.path.name)
        if self.add_streams_at_open:
            self._add_streams(None)

    def _add_streams(self, first: np.ndarray | None) -> None:
        assert self._container is not None
        self._convert = self._video_stream(first)
        if self._clip is not None:
            self._audio_track = AudioTrack(self._container, self._clip, self._audio_spec(self._clip))
            self._audio_duration = self._audio_track.duration

    def _start(self, first: np.ndarray) -> None:
        if not self.add_streams_at_open:
            self._add_streams(first)

    def extend_audio(self, clip: AudioClip) -> None:
        """Append speech that arrived after the writer was opened with the first of it
        (see :meth:`AudioTrack.extend`); call it before writing the frames it belongs to."""
        if self._clip is None:
            raise ValueError(f"{self.path.name}: opened without audio; nothing to continue")
        if len(clip.samples) == 0:
            return
        more = mono_samples(clip, self.path.name)
        assert more is not None
        if self._audio_track is not None:
            self._audio_track.extend(more)
            self._audio_duration = self._audio_track.duration
        else:  # the streams are added at the first frame: keep it with the rest
            if more.rate != self._clip.rate:
                raise InvalidOption(f"Audio at {more.rate} Hz cannot continue audio at {self._clip.rate} Hz.")
            self._clip = AudioClip(np.concatenate([self._clip.samples, more.samples]), self._clip.rate)

    def _video_stream(self, first: np.ndarray | None) -> ColorConverter | None:
        raise NotImplementedError

    def _audio_spec(self, clip: AudioClip) -> AudioSpec:
        raise NotImplementedError

    def _new_video_stream(self, codec: str, pix_fmt: str, width: int, height: int, options: dict[str, str]) -> Any:
        assert self._container is not None
        vs = self._container.add_stream(codec, rate=self.rate, options=options)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = self._time_base
        self._video = vs
        return vs

    def _prepare(self, arr: np.ndarray) -> np.ndarray:
        """Per-format touch-up of a frame before colour conversion (e.g. padding)."""
        return arr

    def _write_frame(self, arr: np.ndarray) -> None:
        assert self._container is not None and self._video is not None and self._convert is not None
        frame = self._convert(self._prepare(arr))
        frame.pts = self._frames
        frame.time_base = self._time_base
        self._container.mux(self._video.encode(frame))

    def _after_frame(self) -> None:
        if self._audio_track is not None:
            # Keep audio level with the video so the file is interleaved.
            self._audio_track.encode_until(int(math.ceil(self._frames / self.rate * self._audio_track.rate)))

    def _finish(self) -> None:
        if self._container is None:
            raise ValueError(f"{self.path.name}: the writer failed to open")
        if self._video is not None:
            self._container.mux(self._video.encode(None))
        if self._audio_track is not None:
            self._audio_track.finish()
        self._container.close()
        self._container = None

    def _release(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()
