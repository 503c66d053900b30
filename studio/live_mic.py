"""The Live tab's microphone panel: the avatar speaks when you do.

``mic_panel(ctx)`` adds a Start / Stop pair, the ``<video id="live-mic-video">`` the frames
play in and the ``live-mic-stats`` line (latency and frame rate). Start reserves a session
on the server for this browser tab (the Avatar tab's face, or the bundled sample), then the
page client (``assets/ui/live_mic.js``) streams the microphone over a WebSocket on the
studio's own port and draws the frames that come back. Stop, or closing the tab, ends it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gradio as gr

import pipeline
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from studio.app import StudioContext

log = logging.getLogger(__name__)

VIEW = """
<div id="live-mic-view" style="display:flex;flex-direction:column;gap:6px;align-items:flex-start">
  <video id="live-mic-video" autoplay muted playsinline
         style="width:100%;max-width:512px;aspect-ratio:1/1;background:#111;border-radius:8px"></video>
  <canvas id="live-mic-canvas" width="512" height="512" style="display:none"></canvas>
  <div id="live-mic-stats" data-state="idle" style="font-variant-numeric:tabular-nums;min-height:1.4em">
    microphone off</div>
</div>
"""

INTRO = (
    "### Microphone avatar\n"
    "Press **Start microphone** and speak: the avatar's mouth follows your voice (sound only, any language, "
    "50 ms look-ahead). Your microphone is never played back. Uses the face from the Avatar tab, or the sample."
)

OPEN_JS = "(...args) => { window.avatarLiveMic && window.avatarLiveMic.open(); return args; }"
CONNECT_JS = "(token) => { if (window.avatarLiveMic) window.avatarLiveMic.connect(token); return []; }"
STOP_JS = "() => { if (window.avatarLiveMic) window.avatarLiveMic.stop(); return []; }"


def client_js() -> str:
    from studio.app import ASSETS

    return (ASSETS / "live_mic.js").read_text(encoding="utf-8")


def _owner(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def mic_panel(ctx: StudioContext) -> None:
    """The microphone half of the Live tab (see the module docstring)."""
    photo = ctx.inputs.get("photo")
    with gr.Group():
        gr.Markdown(INTRO)
        with gr.Row():
            start = gr.Button("Start microphone", elem_id="live-mic-start", variant="primary")
            stop = gr.Button("Stop microphone", elem_id="live-mic-stop", variant="stop")
        gr.HTML(VIEW, js_on_load=client_js(), elem_id="live-mic-panel")
        token = gr.Textbox(visible=False, elem_id="live-mic-token")
        status = gr.Markdown(elem_classes="status", elem_id="live-mic-status")

    def begin(image: str | None, cached: Any, request: gr.Request):
        owner = _owner(request)
        try:
            found = ctx.handlers._avatar(image, cached)
            ticket = pipeline.offer_mic_session(found.value, owner=owner)
        except PipelineError as exc:
            log.info("mic start refused: %s", exc)
            gr.Warning(str(exc))
            return "", cached, f"⚠️ {exc}"
        return ticket, found, "**Microphone on**: speak, and the avatar speaks with you. Stop ends it."

    def end(request: gr.Request):
        n = pipeline.stop_mic_sessions(_owner(request))
        return "Microphone stopped." if n else "The microphone was not on."

    inputs = [photo, ctx.avatar] if photo is not None else [gr.State(None), ctx.avatar]
    start.click(begin, inputs, [token, ctx.avatar, status], js=OPEN_JS, api_visibility="private",
                show_progress_on=[status]).then(None, token, None, js=CONNECT_JS)
    stop.click(end, None, status, js=STOP_JS, api_visibility="private", queue=False)
