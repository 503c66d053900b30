"""Event handlers: thin adapters between Gradio values and the pipeline facade.

Each handler checks that its inputs are there, calls the facade, and formats the result
for the components. ``PipelineError`` becomes ``gr.Error`` with the pipeline's own message.
Per-session results (the prepared Avatar, the chosen Speech) travel in ``gr.State`` as
:class:`Cached` values keyed by the raw inputs that made them, so a render reuses them when
the inputs are unchanged and recomputes them on demand otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar

import gradio as gr
import numpy as np

from pipeline import CancelToken, export_for, format_info
from pipeline.errors import PipelineError
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions
from studio.controls import options_from_values

if TYPE_CHECKING:
    from pipeline import RenderResult
    from pipeline.types import Avatar, Speech

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Voice sources offered on the Voice tab: (label, value). The value is what the API takes.
TEXT = "text"
AUDIO = "audio"
VOICE_MODES: list[tuple[str, str]] = [("Text (TTS)", TEXT), ("Microphone or file", AUDIO)]

NO_PHOTO = "No photo: renders use the bundled sample face until you upload one or take one with the webcam."
NO_AUDIO = "Record or upload the speech first (Voice tab), or switch the voice to Text (TTS)."

RENDER_ROOT = Path(tempfile.gettempdir()) / "avatar-studio" / "renders"
KEEP_RENDERS_S = 24 * 3600  # render folders older than this are removed when a new render starts


class Services(Protocol):
    """The part of the pipeline facade the studio uses (the ``pipeline`` module fits)."""

    def prepare_avatar(self, source: Any, *, name: str = ...) -> Avatar: ...

    def synthesize(self, text: str, opts: VoiceOptions = ...) -> Speech: ...

    def load_speech(self, path: str | Path, *, text: str = ..., language: str = ...) -> Speech: ...

    def render_to_file(
        self,
        avatar: Avatar,
        speech: Speech,
        out: str | Path,
        opts: RenderOptions = ...,
        export_opts: ExportOptions = ...,
        progress: Callable[[float, str], None] = ...,
        background: BackgroundOptions = ...,
        cancel: CancelToken | None = ...,
    ) -> RenderResult: ...

    def still(self, avatar: Avatar) -> np.ndarray: ...

    def sample_photo(self) -> Path: ...

    def voices(self, language: str = ...) -> list[Any]: ...

    def download_voice(self, voice: str) -> None: ...


def default_services() -> Services:
    import pipeline

    return pipeline  # type: ignore[return-value]


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A session result and the inputs it was made from."""

    key: tuple[Any, ...]
    value: T


def user_errors(fn: F) -> F:
    """Show a PipelineError to the user as a gr.Error with the pipeline's message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            log.info("%s: %s", type(exc).__name__, exc)
            raise gr.Error(str(exc), print_exception=False) from exc

    return wrapper  # type: ignore[return-value]


def new_render_dir(root: Path = RENDER_ROOT, keep_s: float = KEEP_RENDERS_S) -> Path:
    """A fresh folder for one render; old render folders under ``root`` are removed."""
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - keep_s
    for old in root.iterdir():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))


def _pcm16(speech: Speech) -> tuple[int, np.ndarray]:
    """(rate, int16 samples): what gr.Audio plays without a conversion warning."""
    samples = np.clip(np.asarray(speech.audio.samples, dtype=np.float32), -1.0, 1.0)
    return int(speech.audio.rate), np.round(samples * 32767.0).astype(np.int16)


def _session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


def _name_of(path: str) -> str:
    stem = Path(path).stem
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-_")
    return safe[:60] or "avatar"


def avatar_summary(avatar: Avatar) -> str:
    w, h = avatar.size
    face_w = int(round(avatar.face.width))
    lines = [f"**Face found**: {len(avatar.face.landmarks)} landmarks, face {face_w} px wide in a {w}×{h} photo."]
    if avatar.clip is not None:
        clip = avatar.clip
        lines = [f"**Presenter clip**: face tracked on {clip.n_frames} frames ({clip.n_frames / clip.fps:.1f} s at "
                 f"{clip.fps:g} fps), face {face_w} px wide in {w}×{h}; the preview shows its reference frame.",
                 "Clip renders are encoded with x264 *ultrafast* (same quality, files ~2-3× larger than *veryfast*, "
                 "which cannot keep up with a 720p clip on two cores)."]
    lines += [f"⚠️ {warning}" for warning in avatar.warnings]
    return "\n\n".join(lines)


def speech_summary(speech: Speech) -> str:
    if speech.phonemes:
        timing = f"{len(speech.phonemes)} phonemes timed by {speech.source}"
    else:
        timing = "the mouth follows the sound itself"
    return f"**Voice ready**: {speech.duration:.2f} s of speech; {timing}."


def render_summary(result: RenderResult, total_s: float) -> str:
    w, h = result.size
    return (
        f"**Done**: {result.frames} frames at {result.fps:g} fps · {w}×{h} px · "
        f"{result.duration:.2f} s of video · took {total_s:.1f} s "
        f"(rendering and encoding at {result.speed:.0f} frames/s)"
    )


class Handlers:
    """The studio's event handlers, bound to a set of pipeline services."""

    def __init__(self, services: Services | None = None, render_root: Path = RENDER_ROOT) -> None:
        self.services = services if services is not None else default_services()
        self.render_root = render_root
        self._running: dict[str, CancelToken] = {}  # browser session -> its render's cancel token
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ avatar

    def _avatar(self, image: str | None, cached: Cached[Avatar] | None) -> Cached[Avatar]:
        """The session's avatar for ``image``; no photo means the bundled sample."""
        if not image:
            image = str(self.services.sample_photo())
        key = (image,)
        if cached is not None and (cached.key == key or (cached.value.clip is not None and cached.key[1:] == key)):
            return cached  # the same photo, or a clip chosen over this photo
        avatar = self.services.prepare_avatar(image, name=_name_of(image))
        return Cached(key, avatar)

    @user_errors
    def prepare_avatar(self, image: str | None = None, cached: Cached[Avatar] | None = None):
        """Find the face in the photo: (landmarks preview, session avatar, status)."""
        found = self._avatar(image, cached)
        for warning in found.value.warnings:
            gr.Warning(warning)
        return self.services.still(found.value), found, avatar_summary(found.value)

    def photo_changed(self, image: str | None, cached: Cached[Avatar] | None = None):
        """Like prepare_avatar, but a cleared photo just clears the preview."""
        if not image:
            return None, None, NO_PHOTO
        return self.prepare_avatar(image, cached)

    def clip_changed(self, clip: str | None, photo: str | None, cached: Cached[Avatar] | None = None):
        """A presenter clip uploaded or recorded (prepared once, cached on disk) becomes the
        session's avatar until another photo is chosen: (preview, session avatar, status); a
        cleared clip goes back to the photo."""
        if not clip:
            return self.photo_changed(photo, None)
        still, found, status = self.prepare_avatar(clip, cached)
        return still, Cached((clip, photo or str(self.services.sample_photo())), found.value), status

    # ------------------------------------------------------------------ voice

    def _speech(
        self,
        mode: str,
        text: str | None,
        speed: float | None,
        audio: str | None,
        cached: Cached[Speech] | None,
        voice: str | None = None,
        transcript: str | None = None,
        language: str | None = None,
    ) -> Cached[Speech]:
        if mode == TEXT:
            opts = VoiceOptions()
            if speed is not None:
                opts = dataclasses.replace(opts, speed=float(speed))
            if voice:
                opts = dataclasses.replace(opts, voice=str(voice))
            key: tuple[Any, ...] = (TEXT, text, opts)
            if cached is not None and cached.key == key:
                return cached
            return Cached(key, self.services.synthesize(text or "", opts))
        if mode == AUDIO:
            if not audio:
                raise gr.Error(NO_AUDIO, print_exception=False)
            transcript = (transcript or "").strip()
            lang = (language or "en").strip() or "en"
            key = (AUDIO, audio, transcript, lang)
            if cached is not None and cached.key == key:
                return cached
            return Cached(key, self.services.load_speech(audio, text=transcript, language=lang))
        choices = ", ".join(f"'{value}' ({label})" for label, value in VOICE_MODES)
        raise gr.Error(f"Choose where the voice comes from: {choices}.", print_exception=False)

    @user_errors
    def preview_voice(
        self,
        voice_mode: str = TEXT,
        text: str | None = None,
        speed: float | None = None,
        audio: str | None = None,
        cached: Cached[Speech] | None = None,
        voice: str | None = None,
        transcript: str | None = None,
        language: str | None = None,
    ):
        """Make the speech that a render would use: (audio to listen to, session speech, status).

        ``voice``: a voice id (Voice tab menu, ``pipeline.speech.voices``); empty means the default.
        """
        speech = self._speech(voice_mode, text, speed, audio, cached, voice, transcript, language)
        return _pcm16(speech.value), speech, speech_summary(speech.value)

    def voice_choices(self, language: str | None):
        """The voice menu for a language: (voice menu update, download button update)."""
        found = self.services.voices(language or "") if language else []
        first = found[0] if found else None
        return (
            gr.update(choices=[(v.label, v.id) for v in found], value=first.id if first else None),
            gr.update(visible=first is not None and not first.installed),
        )

    def voice_selected(self, voice: str | None):
        """Show the download button only for a catalogue voice that is not on this machine yet."""
        chosen = next((v for v in self.services.voices() if v.id == voice), None)
        return gr.update(visible=chosen is not None and not chosen.installed)

    def download_voice(self, voice: str | None, language: str | None = None):
        """Fetch a Piper voice from Hugging Face (only on this click): (voice menu, button, status).

        A failed download (offline, say) is reported in the status, and the button stays.
        """
        if not voice:
            return gr.update(), gr.update(), "Choose a voice to download first."
        try:
            self.services.download_voice(voice)
        except PipelineError as exc:
            log.info("%s: %s", type(exc).__name__, exc)
            return gr.update(), gr.update(), f"⚠️ {exc}"
        menu = self.services.voices(language or "") if language else []
        name = next((v.name for v in self.services.voices() if v.id == voice), voice)
        return (
            gr.update(choices=[(v.label, v.id) for v in menu], value=voice) if menu else gr.update(),
            gr.update(visible=False),
            f"**{name}** is downloaded and works offline from now on.",
        )

    # ------------------------------------------------------------------ stop

    def _start(self, request: gr.Request | None) -> CancelToken:
        """A cancel token for this browser session's render (Stop sets it)."""
        token = CancelToken()
        with self._lock:
            self._running[_session_of(request)] = token
        return token

    def _finish(self, request: gr.Request | None, token: CancelToken) -> None:
        with self._lock:
            if self._running.get(_session_of(request)) is token:
                del self._running[_session_of(request)]

    def stop(self, request: gr.Request = None):  # type: ignore[assignment]
        """Stop this session's render between two frames; nothing half-written is kept."""
        with self._lock:
            token = self._running.get(_session_of(request))
        if token is None:
            return "Nothing is rendering."
        token.cancel()
        return "Stopping…"

    # ------------------------------------------------------------------ render

    def render_example(self, image: str | None, text: str | None, progress: gr.Progress = gr.Progress()):
        """One click on an example: render its photo and text with every default option."""
        return self.render(image, TEXT, text, None, None, None, None, progress)

    @user_errors
    def render(
        self,
        image: str | None = None,
        voice_mode: str = TEXT,
        text: str | None = None,
        speed: float | None = None,
        audio: str | None = None,
        avatar_state: Cached[Avatar] | None = None,
        speech_state: Cached[Speech] | None = None,
        progress: gr.Progress = gr.Progress(),
        voice: str | None = None,
        transcript: str | None = None,
        language: str | None = None,
        bg_image: str | None = None,
        bg_video: str | None = None,
        request: gr.Request = None,  # type: ignore[assignment]  # injected by Gradio: whose render this is
        **options: Any,
    ):
        """Render the talking video: (video, download, status, session avatar, session speech).

        ``voice``: the TTS voice id for text (Voice tab); empty means the default voice.
        """
        t0 = time.perf_counter()
        groups: dict[str, dict[str, Any]] = {"render": {}, "export": {}, "bg": {"image": bg_image, "video": bg_video}}
        for name, value in options.items():
            head, _, rest = name.partition("_")
            if head in ("export", "bg") and rest:
                groups[head][rest] = value
            else:
                groups["render"][name] = value
        try:
            opts = options_from_values(RenderOptions, groups["render"])
            export_opts = options_from_values(ExportOptions, groups["export"])
            background = options_from_values(BackgroundOptions, groups["bg"])
            export_opts = export_for(background, export_opts)
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
        progress(0.0, desc="Finding the face")
        avatar = self._avatar(image, avatar_state)
        progress(0.0, desc="Preparing the voice")
        speech = self._speech(voice_mode, text, speed, audio, speech_state, voice, transcript, language)
        fmt = format_info(export_opts.format)
        folder = new_render_dir(self.render_root)
        out = folder / fmt.output_name(avatar.value.name)

        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        token = self._start(request)
        try:
            result = self.services.render_to_file(
                avatar.value, speech.value, out, opts, export_opts, progress=report, background=background,
                cancel=token,
            )
        finally:
            self._finish(request, token)
        path = str(result.path)
        download: str | list[str] = path
        if fmt.folder:  # a folder of frames: offer it as one zip
            download = shutil.make_archive(str(folder / avatar.value.name), "zip", root_dir=result.path)
        extras = sorted(str(p) for p in folder.glob("*.srt")) + sorted(str(p) for p in folder.glob("*.vtt"))
        if extras:
            download = [download, *extras] if isinstance(download, str) else download
        # formats a browser plays are previewed; the others are offered for download only
        preview = path if fmt.browser_playable else None
        notes = [f"⚠️ {warning}" for warning in avatar.value.warnings]
        status = "\n\n".join([render_summary(result, time.perf_counter() - t0), *notes])
        return preview, download, status, avatar, speech
