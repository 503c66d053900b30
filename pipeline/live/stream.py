"""The streaming preview: speech parts -> one render session -> chunk files, as they come.

    parts = text_parts("Hello there. How are you?", VoiceOptions())   # or recording_parts(path)
    preview = StreamPreview(avatar, parts, folder, RenderOptions(size=512))
    for path in preview:           # chunk-00000.mp4 (~0.5 s), chunk-00001.mp4 (~1 s), ...
        ...                        # hand to gr.Video(streaming=True), or play them in order

The speech is made on a thread a couple of parts ahead of the render (sentence-wise TTS,
or a recording timed segment by segment), resampled to the stream's audio rate
(:func:`pipeline.export.chunks.stream_audio`) part by part, and rendered by one
:class:`pipeline.render.RenderSession` over the parts, so the first chunk waits only for
the first sentence. Chunks hold whole samples of audio (25 fps at 32 kHz: first 12 frames,
then 24; 24 fps at 48 kHz: 12, then 23), so each decodes to exactly its frames / fps of
audio and the stream's audio and picture end together, chunk after chunk. ``cancel`` stops it
between two frames; the session's tracks, frame count and audio partition are those of
:class:`pipeline.parts.PartPlanner`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.options import BackgroundOptions, RenderOptions, VoiceOptions
from pipeline.render import CancelToken, Progress, RenderSession, no_progress
from pipeline.types import Avatar, Speech

FIRST_S = 0.5  # the first chunk: short, so playback starts soon
# the others: just under 1 s, so that every segment stays within the HLS playlist's
# target duration of 1 s (Gradio announces the ceiling of the longest segment; 24 fps: 23 frames)
CHUNK_S = 0.96
AHEAD = 2  # speech parts made ahead of the render
CHUNKS_AHEAD = 3  # chunks rendered ahead of the consumer (it gets the CPU for its own work on them)


def text_parts(text: str, opts: VoiceOptions = VoiceOptions()) -> Iterator[Speech]:
    """A script as speech parts, sentence by sentence (checked before the first is said)."""
    from pipeline.speech.stream import speak_parts

    return speak_parts(text, opts)


def recording_parts(path: str | Path, text: str = "", timing: str = "auto", language: str = "en") -> Iterator[Speech]:
    """A recording (decoded, loudness-normalised) as parts, segment by segment."""
    from pipeline.media.audio import load_audio, normalize_loudness
    from pipeline.speech.stream import recording_parts as cut

    clip = normalize_loudness(load_audio(path))
    return cut(clip, text=text, timing=timing, language=language)


def _at_rate(parts: Iterable[Speech], rate: int) -> Iterator[Speech]:
    from dataclasses import replace

    from pipeline.media.audio import resample

    for part in parts:
        yield part if part.audio.rate == rate else replace(part, audio=resample(part.audio, rate))


@dataclass
class StreamStats:
    """What a preview measured (``perf_counter`` seconds)."""

    started: float = field(default_factory=time.perf_counter)
    first_chunk: float | None = None  # seconds from start to the first chunk on disk
    chunks: int = 0
    frames: int = 0
    audio_s: float = 0.0  # seconds of audio in the chunks
    finished: float | None = None

    @property
    def wall_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def speed(self) -> float:
        """Seconds of video made per second of wall-clock time."""
        return self.audio_s / max(self.wall_s, 1e-9)


class StreamPreview:
    """Iterate for chunk paths (see the module docstring)."""

    def __init__(
        self,
        avatar: Avatar,
        parts: Iterable[Speech],
        folder: str | Path,
        opts: RenderOptions = RenderOptions(),
        background: BackgroundOptions = BackgroundOptions(),
        *,
        cancel: CancelToken | None = None,
        progress: Progress = no_progress,
        first: float = FIRST_S,
        seconds: float = CHUNK_S,
        started: float | None = None,
    ) -> None:
        from pipeline.export.chunks import ChunkFiles, chunk_seconds, stream_audio
        from pipeline.speech.stream import prefetched

        self.stats = StreamStats() if started is None else StreamStats(started=started)
        self.cancel = cancel or CancelToken()
        self.rate, unit = stream_audio(opts.fps)
        self.first = chunk_seconds(opts.fps, first, unit)
        self.seconds = chunk_seconds(opts.fps, seconds, unit)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files = ChunkFiles(self.folder)
        self._first_out = threading.Event()  # the TTS of the next sentences waits for the first chunk
        # the first part holds the next sentences' TTS back only when it covers the first two chunks
        self._parts = prefetched(_at_rate(parts, self.rate), AHEAD, hold=self._first_out,
                                 hold_after=self.first + self.seconds + 0.1)
        self.session = RenderSession(avatar, self._parts, opts, background, progress=progress, cancel=self.cancel)
        self._closed = threading.Event()

    def _produce(self, out: "queue.Queue[object]") -> None:
        """Render and write the chunks (on the preview's thread), handing each path over."""
        s = self.stats
        try:
            for chunk in self.session.chunks(self.seconds, self.first):
                path = self.files.write(chunk)
                if s.first_chunk is None:
                    s.first_chunk = time.perf_counter() - s.started
                    self._first_out.set()
                s.chunks += 1
                s.frames += len(chunk.frames)
                s.audio_s += chunk.audio.duration
                self._put(out, path)
            self._put(out, _DONE)
        except BaseException as exc:  # raised in the consumer
            self._put(out, exc)
        finally:
            s.finished = time.perf_counter()
            self._parts.close()
            self.session.close()

    def _put(self, out: "queue.Queue[object]", item: object) -> None:
        while not self._closed.is_set() and not (self.cancel.cancelled and item is not _DONE
                                                 and not isinstance(item, BaseException)):
            try:
                out.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Path]:
        """Chunk paths in order. The chunks are made on a thread, so the consumer's own
        work on a chunk (Gradio probes and remuxes each one) overlaps the next chunk's
        render; leaving the loop early stops the render."""
        out: "queue.Queue[object]" = queue.Queue(maxsize=CHUNKS_AHEAD)
        worker = threading.Thread(target=self._produce, args=(out,), name="live-preview", daemon=True)
        self._worker = worker
        worker.start()
        try:
            while True:
                item = out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.cancel.check()  # stopped: the chunks made ahead are not handed out
                yield item  # type: ignore[misc]
        finally:
            self._closed.set()
            self.cancel.cancel()  # no-op when the render is done; else it stops at the next frame
            # not joined here: the thread may be finishing a TTS call, and Stop must not wait for it

    def wait(self, timeout: float = 5.0) -> None:
        """Wait for the preview's threads to end (before the process exits, say)."""
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.join(timeout)


_DONE = object()


def stream_preview(
    avatar: Avatar,
    parts: Iterable[Speech],
    folder: str | Path,
    opts: RenderOptions = RenderOptions(),
    background: BackgroundOptions = BackgroundOptions(),
    **kwargs,
) -> StreamPreview:
    """A :class:`StreamPreview` (iterate it for the chunk paths; ``.stats`` for timings)."""
    return StreamPreview(avatar, parts, folder, opts, background, **kwargs)
