"""The Live tab: a streaming preview of a script or a recording, and the mic-driven avatar.

Speak (``live-speak``) streams the script in ``live-text`` into
``gr.Video(streaming=True, autoplay=True, elem_id="live-video")``: the pipeline speaks it
sentence by sentence and renders each sentence as it comes (``pipeline.stream_preview``),
so playback starts after the first sentence, whatever the script's length. "Preview the
recording" (``live-recording``) does the same with the Voice tab's recording or upload,
segment by segment. The face is the Avatar tab's (or the bundled sample), the voice and
background the Voice and Background tabs' settings. Stop (``live-stop``) ends this browser
session's stream between two frames; every stream holds one of the studio's live-session
slots (``pipeline.LIVE_LIMITER``, shared with the microphone avatar), and past the limit
Speak says so at once.

The microphone panel comes from ``studio.live_mic`` (``mic_panel(ctx)``) when that module
is present; without it the tab still works and a log line says the panel is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gradio as gr

import pipeline
from pipeline import CancelToken, Cancelled
from pipeline.errors import PipelineError
from pipeline.options import BackgroundOptions, RenderOptions, VoiceOptions
from studio.controls import options_from_values
from studio.handlers import Cached, Handlers, new_render_dir

if TYPE_CHECKING:
    from studio.app import StudioContext

log = logging.getLogger(__name__)

LIVE_ROOT = Path(tempfile.gettempdir()) / "avatar-studio" / "live"
SIZES = [256, 384, 512, 720]
DEFAULT_SIZE = 512
DEFAULT_TEXT = (
    "Hello! This is the live preview. I start talking as soon as the first sentence is ready, "
    "and the rest is rendered while you watch."
)
INTRO = (
    "## Live preview\n"
    "Type a script and press **Speak**: playback starts after the first sentence while the rest is still "
    "rendering. **Preview the recording** streams the Voice tab's recording or upload the same way. Uses the "
    "face from the Avatar tab (or the sample), the Voice tab's voice and the Background tab's settings."
)
NO_RECORDING = "Record or upload speech on the Voice tab first."


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


class LiveHandlers:
    """The Live tab's handlers; one running stream (and its cancel token) per browser session."""

    def __init__(self, handlers: Handlers, root: Path = LIVE_ROOT) -> None:
        self.handlers = handlers
        self.root = root
        self._running: dict[str, CancelToken] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ helpers

    def _start(self, request: gr.Request | None) -> CancelToken:
        token = CancelToken()
        with self._lock:
            old = self._running.get(_session(request))
            self._running[_session(request)] = token
        if old is not None:  # a new Speak replaces this session's running stream
            old.cancel()
        return token

    def _finish(self, request: gr.Request | None, token: CancelToken) -> None:
        with self._lock:
            if self._running.get(_session(request)) is token:
                del self._running[_session(request)]

    def stop(self, request: gr.Request = None):  # type: ignore[assignment]
        """Stop this session's stream (between two frames) and clear the player."""
        with self._lock:
            token = self._running.get(_session(request))
        if token is None:
            return "Nothing is streaming.", None
        token.cancel()
        return "Stopped.", None

    def unload(self, request: gr.Request) -> None:
        """The browser tab closed: stop its stream."""
        with self._lock:
            token = self._running.get(_session(request))
        if token is not None:
            token.cancel()

    @staticmethod
    def _background(values: dict[str, Any]) -> BackgroundOptions:
        try:
            background = options_from_values(BackgroundOptions, values)
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
        if background.mode == "transparent":  # an MP4 preview has no alpha: show it over the colour
            background = dataclasses.replace(background, mode="color")
        # the preview size is the output's longest side: a 720p / 1080p / 4K frame is previewed smaller
        return dataclasses.replace(background, resolution="source")

    @staticmethod
    def _render_opts(size: Any, background: BackgroundOptions) -> RenderOptions:
        """The preview's render options: the output's longest side is ``size`` (a 9:16 or
        16:9 frame holds the photo at 9/16 of it)."""
        longest = int(size or DEFAULT_SIZE)
        if background.composites and background.framing in ("portrait", "landscape"):
            longest = int(round(longest * 9 / 16))
        return RenderOptions(size=longest)

    def _stream(
        self,
        request: gr.Request | None,
        image: str | None,
        avatar_state: Cached | None,
        size: Any,
        bg: dict[str, Any],
        parts: Callable[[], Iterator[Any]],
        what: str,
    ):
        t0 = time.perf_counter()
        token = self._start(request)
        slot = None
        avatar = avatar_state
        try:
            try:
                slot = pipeline.LIVE_LIMITER.acquire("preview", _session(request))
                background = self._background(bg)
                avatar = self.handlers._avatar(image, avatar_state)
                opts = self._render_opts(size, background)
                folder = new_render_dir(self.root)
                preview = pipeline.stream_preview(
                    avatar.value, parts(), folder, opts, background, cancel=token, started=t0
                )
                st = preview.stats
                for path in preview:
                    yield str(path), (
                        f"**Streaming {what}**: {st.audio_s:.1f} s rendered · first chunk after "
                        f"{(st.first_chunk or 0) * 1000:.0f} ms · {st.speed:.1f}× real time"
                    ), avatar
                    path.unlink(missing_ok=True)  # Gradio has read it into its own stream by now
                yield gr.skip(), (
                    f"**Done**: {st.audio_s:.1f} s of {what} in {st.chunks} chunks · first chunk after "
                    f"{(st.first_chunk or 0) * 1000:.0f} ms · rendered at {st.speed:.1f}× real time"
                ), avatar
            except Cancelled:
                yield gr.skip(), "Stopped.", avatar
            except PipelineError as exc:
                log.info("%s: %s", type(exc).__name__, exc)
                raise gr.Error(str(exc), print_exception=False) from exc
        finally:
            if slot is not None:
                slot.release()
            self._finish(request, token)

    # ------------------------------------------------------------------ events

    def speak(self, text: str | None, image: str | None, avatar_state: Cached | None, voice: str | None,
              speed: float | None, size: Any, bg: dict[str, Any], request: gr.Request | None = None):
        """Stream the script: (video chunk, status, session avatar) per chunk."""
        text = (text or "").strip()
        if not text:
            raise gr.Error("Type what the avatar should say first.", print_exception=False)
        opts = VoiceOptions()
        if voice:
            opts = dataclasses.replace(opts, voice=str(voice))
        if speed is not None:
            opts = dataclasses.replace(opts, speed=float(speed))
        yield from self._stream(request, image, avatar_state, size, bg,
                                lambda: pipeline.live_text_parts(text, opts), "the script")

    def speak_recording(self, audio: str | None, transcript: str | None, language: str | None, image: str | None,
                        avatar_state: Cached | None, size: Any, bg: dict[str, Any],
                        request: gr.Request | None = None):
        """Stream the Voice tab's recording: (video chunk, status, session avatar) per chunk."""
        if not audio:
            raise gr.Error(NO_RECORDING, print_exception=False)
        text, lang = (transcript or "").strip(), (language or "en").strip() or "en"
        yield from self._stream(request, image, avatar_state, size, bg,
                                lambda: pipeline.live_recording_parts(audio, text, "auto", lang), "the recording")

    def warm(self, image: str | None, avatar_state: Cached | None, voice: str | None, size: Any,
             bg: dict[str, Any] | None = None):
        """When the tab opens: find the face and load the voice, engine, encoders and (for a
        new background) the person matte once, by a one-word stream into a scratch folder,
        so the first Speak starts at once."""
        try:
            avatar = self.handlers._avatar(image, avatar_state)
            opts = VoiceOptions(voice=str(voice)) if voice else VoiceOptions()
            background = self._background(bg or {})
            with tempfile.TemporaryDirectory() as scratch:
                for _ in pipeline.stream_preview(avatar.value, pipeline.live_text_parts("Hi.", opts), scratch,
                                                 self._render_opts(size, background), background):
                    pass
            return avatar
        except (PipelineError, gr.Error) as exc:  # Speak reports it
            log.info("Live warm-up: %s", exc)
            return avatar_state


IN_PROCESS_ENV = "AVATAR_STUDIO_LIVE_GRADIO_FFMPEG"  # "1": leave the chunks to Gradio's own FFmpeg commands


def in_process_chunks(video: gr.Video, root: Path = LIVE_ROOT) -> bool:
    """Let the streaming ``video`` turn our chunks into HLS segments in-process.

    Gradio 6.31 runs ffprobe, an ffmpeg audio decode and an ffmpeg re-mux for every
    streamed chunk (~0.2 s each under load; see ``pipeline.live.hls``). The probe and the
    mux are this component's own methods (instance attributes shadow them); the decode is a
    module function, wrapped once so that only files under ``root`` are decoded in-process.
    Gradio's AAC encoder class for streamed video is replaced once by one that hands each
    chunk's frames out with their chunk (:func:`_encoder_that_keeps_up`). Other video codecs, and everything when Gradio's internals are not where 6.31 has them
    (or ``AVATAR_STUDIO_LIVE_GRADIO_FFMPEG=1``), stay with Gradio's commands."""
    import os

    from gradio.components import video as gv

    hls = pipeline.live_hls
    if os.environ.get(IN_PROCESS_ENV) == "1":
        return False
    stock_mux = getattr(gr.Video, "mux_segment", None)
    decode = getattr(gv, "decode_file_to_pcm", None)
    base = getattr(gv, "STREAM_PTS_BASE", None)
    if not (callable(stock_mux) and callable(decode) and callable(getattr(gr.Video, "probe_chunk", None))
            and isinstance(base, float)):
        log.warning("Live: Gradio's streaming internals have moved; chunks stay with its FFmpeg commands")
        return False

    def mux(path, video_codec, adts, video_time, audio_time, video_start=0.0, counters=None):
        if path is not None and video_codec not in (None, "h264"):
            return stock_mux(path, video_codec, adts, video_time, audio_time, video_start, counters)
        return hls.mux_segment(path, video_codec, adts, video_time, audio_time, video_start, counters,
                               pts_base=base)

    video.probe_chunk = hls.probe_chunk  # type: ignore[method-assign]
    video.mux_segment = mux  # type: ignore[method-assign]
    roots: list[Path] | None = getattr(decode, "in_process_roots", None)
    if roots is None:  # wrapped once per process; each Live tab adds its folder
        stock_decode, roots = decode, []

        def decode_file_to_pcm(path: str, sample_rate: int, channels: int) -> bytes:
            if any(Path(path).is_relative_to(r) for r in roots):
                return hls.decode_pcm(path, sample_rate, channels)
            return stock_decode(path, sample_rate, channels)

        decode_file_to_pcm.in_process_roots = roots  # type: ignore[attr-defined]
        gv.decode_file_to_pcm = decode_file_to_pcm
    if Path(root) not in roots:
        roots.append(Path(root))
    if not getattr(gv.AacStreamEncoder, "waits_for_its_frames", False):
        gv.AacStreamEncoder = _encoder_that_keeps_up(gv.AacStreamEncoder)
    return True


def _encoder_that_keeps_up(base: type) -> type:
    """Gradio's streamed-video AAC encoder, taking a chunk's frames with its chunk.

    After feeding a chunk's audio Gradio takes the encoded frames until a take finds none
    within 5 ms. On a loaded machine the encoder process often has not run by then, and the
    rest of the chunk's audio goes out with the next segment: measured at load 9, 19 of 80
    segments carried audio starting 0.3-0.9 s before their video, so hls.js held audio up
    to ~0.9 s behind the picture and playback near the live edge stalled on it. This one
    waits (up to 0.3 s) until the frames due for what was fed have come: all but the one
    frame the encoder always holds back (two of margin; four before its first frame)."""

    class KeepsUp(base):  # type: ignore[misc, valid-type]
        waits_for_its_frames = True
        CAP_S = 0.3
        STEP_S = 0.02

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._fed = 0  # samples fed
            self._taken = 0  # frames handed out

        def feed(self, pcm: bytes) -> None:
            super().feed(pcm)
            self._fed += len(pcm) // (2 * self.channels)

        def take(self, timeout: float | None = None) -> list[bytes]:
            frames = super().take(timeout)
            if timeout is None:
                held = 4 if self._taken == 0 else 2  # the first chunk: the encoder is still filling up
                due = self._fed * self.output_rate // self.sample_rate // 1024 - held
                deadline = time.monotonic() + self.CAP_S
                while self._taken + len(frames) < due and (left := deadline - time.monotonic()) > 0:
                    frames += super().take(timeout=min(left, self.STEP_S))
            self._taken += len(frames)
            return frames

    KeepsUp.__name__ = KeepsUp.__qualname__ = f"KeepsUp{base.__name__}"
    return KeepsUp


def _mic_panel(ctx: StudioContext) -> None:
    try:
        from studio.live_mic import mic_panel
    except ImportError as exc:
        log.info("Live tab: no microphone panel (studio.live_mic not importable: %s)", exc)
        return
    mic_panel(ctx)


def live_tab(ctx: StudioContext) -> None:
    live = LiveHandlers(ctx.handlers)
    i = ctx.inputs
    with gr.Tab("Live", id="live") as tab:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                text = gr.Textbox(value=DEFAULT_TEXT, label="Script", lines=5, max_lines=20, elem_id="live-text",
                                  max_length=VoiceOptions().max_chars)
                size = gr.Dropdown(SIZES, value=DEFAULT_SIZE, label="Preview size (longest side, px)")
                with gr.Row():
                    speak = gr.Button("Speak", variant="primary", elem_id="live-speak", scale=2)
                    recording = gr.Button("Preview the recording", elem_id="live-recording", scale=2)
                    stop = gr.Button("Stop", variant="stop", elem_id="live-stop", scale=1)
                status = gr.Markdown(elem_classes="status", elem_id="live-status")
            with gr.Column(scale=3):
                video = gr.Video(label="Live preview", streaming=True, autoplay=True, interactive=False,
                                 elem_id="live-video", height=420)
                in_process_chunks(video, live.root)
        _mic_panel(ctx)
    bg = {name[3:]: c for name, c in i.items() if name.startswith("bg_") and c is not None}

    def bg_values(data: dict) -> dict[str, Any]:
        return {name: data[c] for name, c in bg.items()}

    def on_speak(data: dict, request: gr.Request):
        yield from live.speak(data[text], data[i["photo"]], data[ctx.avatar], data[i["voice"]], data[i["speed"]],
                              data[size], bg_values(data), request)

    def on_recording(data: dict, request: gr.Request):
        yield from live.speak_recording(data[i["audio"]], data[i["transcript"]], data[i["language"]],
                                        data[i["photo"]], data[ctx.avatar], data[size], bg_values(data), request)

    # a set of inputs: the handler gets one {component: value} dict
    common = {i["photo"], ctx.avatar, size, *bg.values()}
    outputs = [video, status, ctx.avatar]
    speak.click(on_speak, {text, i["voice"], i["speed"], *common}, outputs, api_name="live_speak",
                concurrency_limit=None, show_progress="hidden")
    recording.click(on_recording, {i["audio"], i["transcript"], i["language"], *common}, outputs,
                    api_name="live_recording", concurrency_limit=None, show_progress="hidden")
    stop.click(live.stop, None, [status, video], api_name="live_stop", queue=False)
    root = gr.context.Context.root_block  # the Blocks being built: stop a closed tab's stream
    if root is not None:
        root.unload(live.unload)

    def on_open(data: dict):
        return live.warm(data[i["photo"]], data[ctx.avatar], data[i["voice"]], data[size], bg_values(data))

    tab.select(on_open, {i["voice"], *common}, ctx.avatar, api_visibility="private", concurrency_limit=None,
               show_progress="hidden")
