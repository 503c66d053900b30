"""Avatar Studio pipeline: the facade that the UI, CLI, API and batch runner call.

    request = RenderRequest(face=FaceSource("face.jpg"), voice=VoiceSource(text="Hello!"))
    result = render_request(request, "hello.mp4", progress=cb, cancel=token)

or step by step:

    avatar = prepare_avatar("face.jpg")      # None: the bundled sample photo
    speech = synthesize("Hello!")            # or load_speech("voice.m4a")
    session = RenderSession(avatar, speech)  # .frames(), .chunks(seconds), .write(out)

This module only routes: the work lives in ``pipeline.request`` (the request and its
validation), ``pipeline.sources`` (face and voice sources, caches), ``pipeline.render``
(the one render path) and the stage packages. Nothing here imports gradio; heavy modules
are imported on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline import hub as model_hub  # neural models: rows(), pull(), pull_local(), release() (light import)
from pipeline.errors import PipelineError
from pipeline.export.formats import format_info
from pipeline.live import LIMITER as LIVE_LIMITER
from pipeline.live import TooManySessions
from pipeline.live import hls as live_hls  # in-process versions of Gradio's per-chunk FFmpeg work
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions
from pipeline.render import (
    CancelToken,
    Cancelled,
    Progress,
    RenderChunk,
    RenderResult,
    RenderSession,
    no_progress,
    plan,
    render_request,
    session_for,
)
from pipeline.request import FaceSource, RenderRequest, VoiceSource, check_transparency, export_for
from pipeline.sources import load_speech, person_matte, prepare_avatar, resized_avatar, sample_photo, synthesize
from pipeline.types import Avatar, Frame, Speech, Tracks


def render(avatar: Avatar, speech: Speech, opts: RenderOptions = RenderOptions(), tracks: Tracks | None = None
           ) -> Iterator[Frame]:
    """Stream the engine frames of ``avatar`` saying ``speech`` (the first frame comes at once)."""
    return RenderSession(avatar, speech, opts, tracks=tracks).frames()


def render_to_file(
    avatar: Avatar,
    speech: Speech,
    out: str | Path,
    opts: RenderOptions = RenderOptions(),
    export_opts: ExportOptions = ExportOptions(),
    progress: Progress = no_progress,
    background: BackgroundOptions = BackgroundOptions(),
    cancel: CancelToken | None = None,
) -> RenderResult:
    """Render and encode to ``out`` (written atomically) through one :class:`RenderSession`."""
    check_transparency(background, export_opts)
    session = RenderSession(avatar, speech, opts, background, progress=progress, cancel=cancel)
    return session.write(out, export_opts)


def speech_segments(audio, text: str = "", timing: str = "auto", language: str = "en"):
    """The timed speech segments of a decoded recording (an AudioClip), each yielded as soon
    as it is timed (the first without analysing the rest): for streaming previews."""
    from pipeline.speech.segment_timing import iter_segments

    return iter_segments(audio, text, timing, language)


def live_text_parts(text: str, opts: VoiceOptions = VoiceOptions()):
    """A script as speech parts, sentence by sentence, for a streamed render (see pipeline.live.stream)."""
    from pipeline.live.stream import text_parts

    return text_parts(text, opts)


def live_recording_parts(path: str | Path, text: str = "", timing: str = "auto", language: str = "en"):
    """A recording as speech parts, segment by segment, for a streamed render."""
    from pipeline.live.stream import recording_parts

    return recording_parts(path, text, timing, language)


def stream_preview(avatar: Avatar, parts, folder: str | Path, opts: RenderOptions = RenderOptions(),
                   background: BackgroundOptions = BackgroundOptions(), **kwargs):
    """Render speech parts into playable chunk files as they come (pipeline.live.stream.StreamPreview)."""
    from pipeline.live.stream import stream_preview as preview

    return preview(avatar, parts, folder, opts, background, **kwargs)


def voices(language: str = ""):
    """The voice catalogue (``presets/voices.toml``): every voice, or those for one language
    (BCP-47 tag; a bare "en" gives every English region). Best offline choices first."""
    from pipeline.speech import voices as catalogue

    return list(catalogue.catalogue()) if not language else catalogue.voices_for(language)


def voice_languages() -> list[tuple[str, str]]:
    """(BCP-47 tag, name) of every language some voice speaks, sorted by name."""
    from pipeline.speech import voices as catalogue

    return catalogue.languages()


def download_voice(voice: str) -> None:
    """Download a Piper voice into the model cache (only when asked; needs the network)."""
    from pipeline.speech import voices as catalogue

    catalogue.download_piper_voice(voice)


def expression_presets() -> dict[str, dict]:
    """Named expression presets (presets/expressions.toml): RenderOptions values."""
    from pipeline import presets

    return presets.load("expressions")


def still(avatar: Avatar) -> np.ndarray:
    """The source image with the detected landmarks drawn on it (for previews)."""
    from pipeline.preview import landmarks_overlay

    return landmarks_overlay(avatar)


def mic_router():
    """The mic avatar's WebSocket routes (a FastAPI APIRouter for the studio's own port)."""
    from pipeline.live.transport import router

    return router()


def offer_mic_session(avatar: Avatar, owner: str = "", **opts) -> str:
    """Reserve a live slot for a mic-driven session of ``avatar`` (``opts``: MicOptions
    fields); returns the token the page's connection presents. TooManySessions past the limit."""
    from pipeline.live.mic import MicOptions, offer_session

    return offer_session(avatar, MicOptions(**opts), owner=owner)


def stop_mic_sessions(owner: str) -> int:
    """End the mic sessions (and offers) of ``owner``, a browser tab; returns how many."""
    from pipeline.live.mic import stop_owner

    return stop_owner(owner)


def api_router(host: str = "127.0.0.1", share: bool = False, extra: dict | None = None):
    """The HTTP API's routes (``/api/v1``, ``/metrics``): a FastAPI APIRouter for the studio's own port."""
    from pipeline.api import router

    return router(host=host, share=share, extra=extra)


def job_system():
    """The process's running JobSystem (``pipeline.jobs``: submit, list, cancel, output_path), or None."""
    from pipeline.jobs import current

    return current()


def plan_batch(csv_path: str | Path, avatar: str | Path | None, **kwargs):
    """A batch CSV checked row by row for the running job system; the plan submits, tabulates, zips."""
    from pipeline.jobs.batch import plan_in

    return plan_in(job_system(), csv_path, avatar, **kwargs)


def engine_names() -> list[str]:
    """The registered animator names."""
    from pipeline.engines import names

    return names()


__all__ = [
    "LIVE_LIMITER", "TooManySessions", "live_hls", "live_recording_parts", "live_text_parts", "stream_preview",
    "Avatar", "BackgroundOptions", "CancelToken", "Cancelled", "ExportOptions", "FaceSource", "PipelineError",
    "RenderChunk", "RenderOptions", "RenderRequest", "RenderResult", "RenderSession", "Speech", "VoiceOptions",
    "VoiceSource", "download_voice", "engine_names", "export_for", "expression_presets", "format_info",
    "load_speech", "person_matte", "plan", "prepare_avatar", "render", "render_request", "render_to_file",
    "resized_avatar", "sample_photo", "session_for", "speech_segments", "still", "synthesize", "voice_languages",
    "voices",
    "mic_router", "offer_mic_session", "stop_mic_sessions",  # the mic-driven live avatar
    "api_router",  # the HTTP API
    "job_system", "plan_batch", "model_hub",  # durable jobs and batches; the Models panel
]
