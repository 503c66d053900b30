"""The one render path: a session turns an avatar and a speech into frames and audio.

    session = RenderSession(avatar, speech, RenderOptions(), BackgroundOptions(), progress=cb, cancel=token)
    for chunk in session.chunks(seconds=1.0, first=0.5):    # streaming: frames + their exact audio
        ...
    result = session.write("out.mp4", ExportOptions())      # files: the same frames through a writer

A session prepares once (output size, person matte and compositor when the background
changes, the engine's per-avatar rig, the per-frame control tracks), then yields frames
lazily, the first at once. Frames are the engine's output composited over the chosen
background. ``progress(fraction, message)`` is called as frames are made; ``cancel`` (a
:class:`CancelToken`) is checked between frames and stops the render with
:class:`Cancelled`; a cancelled or failed file render leaves nothing at the output name
(writers write to a temp name and rename on success).

Chunks partition both streams exactly: chunk ``k`` holds frames ``[a, b)`` and audio
samples ``[round(a / fps * rate), round(b / fps * rate))`` (the last chunk runs to the end
of the audio), so concatenated chunks equal what a file render writes, sample for sample.

Speech that arrives in parts (sentence-wise TTS, a recording timed segment by segment)
renders through the same session: pass an iterable of Speech parts instead of one Speech
(``RenderSession(avatar, parts, ...)``). Each part is planned when it arrives by a
:class:`pipeline.parts.PartPlanner` (state continuous across parts, frame count of
the whole ``round(total duration * fps)``) and rendered at once, so the first chunk does
not wait for the rest of the speech. Such a session streams (``frames()``, ``chunks()``);
``write()`` needs the whole Speech, since writers take the audio up front.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from pipeline import timing
from pipeline.errors import PipelineError
from pipeline.options import SOURCE_SIZE_CAP, BackgroundOptions, ExportOptions, RenderOptions
from pipeline.types import AudioClip, Avatar, Frame, Speech, Tracks

Progress = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    pass


class Cancelled(PipelineError):
    """The render was stopped by its caller."""

    code = "cancelled"


class CancelToken:
    """Set by whoever may stop a render; checked by the session between frames."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("The render was stopped; nothing was written.")


@dataclass
class RenderResult:
    path: Path
    frames: int
    fps: float
    duration: float  # seconds of audio (and video)
    seconds: float  # wall-clock time of the render
    size: tuple[int, int]

    @property
    def speed(self) -> float:
        """Output frames per second of wall-clock time."""
        return self.frames / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class RenderChunk:
    """Consecutive frames with exactly their audio."""

    index: int
    first_frame: int
    frames: list[Frame]
    audio: AudioClip
    fps: float

    @property
    def start(self) -> float:
        return float(timing.frame_start(self.first_frame, self.fps))

    @property
    def duration(self) -> float:
        return len(self.frames) / float(timing.fps_fraction(self.fps))


def plan(speech: Speech, opts: RenderOptions = RenderOptions()) -> Tracks:
    """All per-frame controls for a render: mouth poses plus blinks, head, brows, smile, gaze."""
    from pipeline.motion import blink_track, gaze_track, head_tracks
    from pipeline.visemes import build_mouth_tracks

    tracks = build_mouth_tracks(speech, opts.fps, opts.mouth_scale)
    if opts.blinks:
        tracks.set("blink", blink_track(tracks.n_frames, opts.fps, opts.seed, speech.phonemes))
    for name, values in head_tracks(
        tracks.n_frames, opts.fps, opts.seed, opts.head_motion, opts.brows, speech.phonemes
    ).items():
        tracks.set(name, values)
    if opts.smile:
        tracks.set("smile", np.full(tracks.n_frames, opts.smile, np.float32))
    if opts.gaze:
        tracks.set("gaze", gaze_track(tracks.n_frames, opts.fps, opts.seed, opts.gaze))
    return tracks


def output_longest(avatar: Avatar, opts: RenderOptions) -> int:
    """The longest output side the engine renders at (0: the photo's own size).

    ``size = 0`` keeps the photo's size up to SOURCE_SIZE_CAP: a 4096 px still renders at
    1920 px unless a size is asked for (full-size 4K frames cost ~7x the work for detail a
    talking head rarely shows)."""
    if opts.size:
        return opts.size
    longest = max(avatar.image.shape[:2])
    return SOURCE_SIZE_CAP if longest > SOURCE_SIZE_CAP else 0


class RenderSession:
    """One render of ``avatar`` saying ``speech`` (see the module docstring)."""

    def __init__(
        self,
        avatar: Avatar,
        speech: Speech | Iterable[Speech],
        opts: RenderOptions = RenderOptions(),
        background: BackgroundOptions = BackgroundOptions(),
        *,
        progress: Progress = no_progress,
        cancel: CancelToken | None = None,
        tracks: Tracks | None = None,
        expected: float = 0.0,
    ) -> None:
        """``speech``: one Speech, or Speech parts in order (see the module docstring);
        ``expected``: the expected duration of streamed parts in seconds (progress only)."""
        from pipeline.engines import get_engine
        from pipeline.sources import person_matte, resized_avatar

        self._parts: Iterator[Speech] | None = None
        self.planner = None  # PartPlanner of a streamed session
        if isinstance(speech, Speech):
            self.speech: Speech | None = speech
        else:
            self.speech, self._parts = None, iter(speech)
        self.expected = expected
        self.progress = progress
        self.cancel = cancel or CancelToken()
        self.started = time.perf_counter()
        progress(0.0, "Preparing the avatar")
        self.engine = get_engine(opts.engine)
        longest = output_longest(avatar, opts)
        self.compositor = None
        self.matter = None  # per-frame matting, for engines that do not carry the matte
        if background.composites:
            from pipeline.matting import Compositor

            avatar = resized_avatar(avatar, longest)
            opts = dataclasses.replace(opts, size=0)
            progress(0.01, "Separating the person from the background")
            self.compositor = Compositor(background, avatar.size, opts.fps)
            if self.engine.info.carries_matte and avatar.kind == "photo":  # a clip's frames are matted one by one
                # the matte once per photo, carried through the engine's warps as alpha
                alpha = person_matte(avatar) if avatar.matte is None else avatar.matte
                still = self.compositor.prepare_still(avatar.image, alpha)
                avatar = dataclasses.replace(avatar, image=still, matte=alpha)
            else:  # frames come back RGB: matted one by one, with the matter's temporal state
                from pipeline.matting import create_matter

                rvm = background.matting == "rvm"  # a neural matter honours --random-weights
                self.matter = create_matter(background.matting, **({"random_weights": opts.random_weights} if rvm else {}))
        else:
            opts = dataclasses.replace(opts, size=longest)
        self.opts = opts
        self.avatar = avatar
        self.rig = self.engine.prepare(avatar, opts)
        self.fps = opts.fps
        self.tracks: Tracks | None = None
        self.n_frames: int | None = None  # a streamed session knows it once its last part came
        if self.speech is not None:
            self.tracks = tracks if tracks is not None else plan(self.speech, opts)
            self.n_frames = self.tracks.n_frames
            if self.n_frames == 0:
                self.close()
                raise PipelineError(self._too_short(self.speech.duration))
        else:
            from pipeline.parts import PartPlanner

            self.planner = PartPlanner(opts)
        self.size = self.compositor.out_size if self.compositor is not None else self.engine.output_size(self.rig)
        self.frames_made = 0

    # ------------------------------------------------------------------ frames

    def _too_short(self, duration: float) -> str:
        return f"The speech is {duration:.3f} s long: too short for one frame at {self.fps:g} fps."

    def _pieces(self) -> Iterator[tuple[Tracks, AudioClip]]:
        """(tracks, their audio) in order: the whole speech at once, or part by part."""
        if self.planner is None:
            assert self.tracks is not None and self.speech is not None
            yield self.tracks, self.speech.audio
            return
        assert self._parts is not None
        for part in self._parts:
            self.cancel.check()
            planned = self.planner.add(part)
            yield planned.tracks, planned.audio
        planned = self.planner.finish()
        self.n_frames = self.planner.frames
        self.speech = self.planner.speech()
        if self.n_frames == 0:
            raise PipelineError(self._too_short(self.planner.duration))
        yield planned.tracks, planned.audio

    @property
    def audio(self) -> AudioClip:
        """The speech's audio (of a streamed session: the parts so far)."""
        if self.speech is not None:
            return self.speech.audio
        assert self.planner is not None
        return self.planner.audio

    def _expected_frames(self) -> int:
        if self.n_frames is not None:
            return self.n_frames
        return max(1, timing.frame_count(self.expected, self.fps), self.planner.frames if self.planner else 0)

    def frames(self, on_piece: Callable[[], None] | None = None) -> Iterator[Frame]:
        """Every output frame in order, composited; progress reported, cancel checked.
        ``on_piece()`` is called when the next piece's audio is known, before its frames."""
        n = self._expected_frames()
        step = max(1, n // 50)
        self.progress(0.02, "Rendering")
        state = None
        i = 0
        try:
            for tracks, audio in self._pieces():
                if on_piece is not None:
                    on_piece()
                if tracks.n_frames == 0:
                    continue
                for frame in self.engine.render(self.rig, tracks, audio):
                    self.cancel.check()
                    if self.compositor is not None:
                        alpha = None  # carried in the frame's fourth channel
                        if self.matter is not None:
                            alpha, state = self.matter.matte(frame, state)
                        frame = self.compositor.apply(frame, alpha, i)
                    self.frames_made = i = i + 1
                    if self.n_frames is None:
                        n = self._expected_frames()
                    if (i - 1) % step == 0 or i == n:
                        self.progress(0.02 + 0.95 * min(1.0, i / n), f"Frame {i} of {n}")
                    yield frame
        finally:
            self.close()

    def sample_at(self, frame: int) -> int:
        """The audio sample where frame ``frame`` starts."""
        audio = self.audio
        return min(len(audio.samples), int(round(float(timing.frame_start(frame, self.fps)) * audio.rate)))

    def chunks(self, seconds: float = 1.0, first: float | None = None) -> Iterator[RenderChunk]:
        """Frames in groups of about ``seconds`` (the first ``first`` long), each with its audio.

        The last chunk's audio runs to the end of the speech. A streamed session hands a
        chunk out once its last frame is made; only a chunk that ends exactly where the
        parts so far end waits for the next part (or the end) to know whether it is the
        last. The first chunk never waits: if the whole speech ends exactly there, the
        < half a frame of audio after its last frame is left out."""
        fps = float(timing.fps_fraction(self.fps))
        sizes = [max(1, int(round((first if first is not None else seconds) * fps))), max(1, int(round(seconds * fps)))]
        frames = self.frames()
        start, index = 0, 0
        batch: list[Frame] = []
        ahead: Frame | None = None  # a frame made early to learn whether the stream goes on
        while True:
            frame, ahead = (ahead, None) if ahead is not None else (next(frames, None), None)
            if frame is None:
                break
            batch.append(frame)
            if len(batch) < sizes[min(index, 1)]:
                continue
            end = start + len(batch)
            last = self.n_frames is not None and end >= self.n_frames
            if self.n_frames is None and index > 0 and self.planner is not None and end >= self.planner.frames:
                ahead = next(frames, None)
                last = ahead is None
            yield self._chunk(index, start, batch, last)
            start, index, batch = end, index + 1, []
        if batch:
            yield self._chunk(index, start, batch, True)

    def _chunk(self, index: int, start: int, batch: list[Frame], last: bool) -> RenderChunk:
        audio = self.audio
        b = len(audio.samples) if last else self.sample_at(start + len(batch))
        return RenderChunk(index, start, batch, AudioClip(audio.samples[self.sample_at(start) : b], audio.rate), self.fps)

    # ------------------------------------------------------------------ files

    def write(self, out: str | Path, export: ExportOptions = ExportOptions(), title: str = "") -> RenderResult:
        """Encode every frame and the speech to ``out`` (atomically; nothing there on failure)."""
        from pipeline.export import open_writer
        from pipeline.export.quality import for_source
        from pipeline.export.threaded import ThreadedWriter

        export = for_source(export, clip=self.avatar.clip is not None)  # x264 preset "auto" made concrete
        if self.speech is None:
            return self._write_parts(Path(out), export, title)
        w, h = self.size
        try:
            writer = open_writer(Path(out), w, h, self.fps, self.speech.audio, export,
                                 title=title or self.avatar.name, speech=self.speech)
            with ThreadedWriter(writer) as threaded:
                for frame in self.frames():
                    threaded.write(frame)
                self.progress(0.98, "Finishing the file")
        finally:
            self.close()
        seconds = time.perf_counter() - self.started
        self.progress(1.0, "Done")
        return RenderResult(Path(out), self.n_frames, self.fps, self.speech.duration, seconds, (w, h))

    def _write_parts(self, out: Path, export: ExportOptions, title: str) -> RenderResult:
        """:meth:`write` for a session over speech parts: the writer opens with the first
        part's audio and each later part's audio is appended before its frames, so encoding
        starts while the rest is still being said (writers with ``extend_audio``; subtitles
        need the whole script, see :func:`streams_to_file`)."""
        from pipeline.export import open_writer
        from pipeline.export.threaded import ThreadedWriter

        if not streams_to_file(export):
            self.close()
            raise PipelineError(f"A {export.format} file with subtitles '{export.subtitles}' needs the whole speech.")
        w, h = self.size
        threaded: ThreadedWriter | None = None
        fed = 0  # audio samples handed to the writer so far

        def feed() -> None:
            nonlocal threaded, fed
            audio = self.audio
            if threaded is None:
                if not len(audio.samples):
                    return
                writer = open_writer(out, w, h, self.fps, audio, export, title=title or self.avatar.name)
                threaded = ThreadedWriter(writer)
            elif len(audio.samples) > fed:
                threaded.extend_audio(AudioClip(audio.samples[fed:], audio.rate))
            fed = len(audio.samples)

        try:
            for frame in self.frames(on_piece=feed):
                if threaded is None:
                    raise PipelineError("The speech has no audio.")
                threaded.write(frame)
            feed()  # the audio after the last frame
            assert threaded is not None
            self.progress(0.98, "Finishing the file")
            threaded.close()
        except BaseException:
            if threaded is not None:
                threaded.abort()
            raise
        finally:
            self.close()
        assert self.speech is not None and self.n_frames is not None
        self.progress(1.0, "Done")
        return RenderResult(out, self.n_frames, self.fps, self.speech.duration, time.perf_counter() - self.started,
                            (w, h))

    def close(self) -> None:
        """Release what the session holds (a background video reader); safe to call twice."""
        if self.compositor is not None:
            self.compositor.close()


def streams_to_file(export: ExportOptions) -> bool:
    """Whether a file in ``export``'s format can be written while the speech is still being
    made (its writer appends audio; subtitles need the whole script first)."""
    from pipeline.export import writer_class
    from pipeline.export.base import ContainerWriter

    cls = writer_class(export.format)
    return export.subtitles == "none" and issubclass(cls, ContainerWriter) and cls.has_video


SPOKEN_CHARS_PER_S = 15.0  # about what the bundled voice says per second at speed 1 (progress only)


def session_for(
    request, *, progress: Progress = no_progress, cancel: CancelToken | None = None, stream_speech: bool = False
) -> RenderSession:
    """Validate ``request`` (a :class:`~pipeline.request.RenderRequest`), make its avatar and
    speech, and open the render session for them.

    ``stream_speech``: a script not spoken before is spoken part by part on a thread while
    the frames of the parts already said are rendered and encoded (for :meth:`RenderSession.write`
    to a format that :func:`streams_to_file`; ``session.speech`` is then known once the
    render is done)."""
    from pipeline.sources import prepare_avatar, resolve, speech_cached

    request.validate()
    v = request.voice
    if (stream_speech and v.kind == "text" and streams_to_file(request.export_alpha)
            and not speech_cached(v.text, v.voice)):
        from pipeline.speech.stream import prefetched
        from pipeline.speech.voices import synthesize_parts

        parts = prefetched(synthesize_parts(v.text, v.voice), ahead=3, name="tts-parts")  # TTS starts now
        progress(0.0, "Finding the face")
        try:
            avatar = prepare_avatar(request.face.path or None, multi_face=request.face.multi_face,
                                    fps=request.render.fps)
        except BaseException:
            parts.close()
            raise
        expected = len(v.text) / (SPOKEN_CHARS_PER_S * v.voice.speed)
        return RenderSession(avatar, parts, request.render, request.background, progress=progress, cancel=cancel,
                             expected=expected)
    progress(0.0, "Finding the face")
    avatar, speech = resolve(request)
    return RenderSession(avatar, speech, request.render, request.background, progress=progress, cancel=cancel)


def render_request(
    request, out: str | Path, *, progress: Progress = no_progress, cancel: CancelToken | None = None
) -> RenderResult:
    """Render ``request`` to ``out`` (see :func:`session_for`; a script is spoken while it renders)."""
    return session_for(request, progress=progress, cancel=cancel, stream_speech=True).write(out, request.export_alpha)
