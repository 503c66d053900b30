"""The studio UI: ``build_ui(services) -> gr.Blocks`` and ``launch(host, port, share)``.

The page is a short intro and a row of tabs. Each tab is one function taking the
:class:`StudioContext` (handlers, per-session state, the raw inputs other tabs need); a new
tab (Background, Live, Batch, Jobs) is one more function appended to :data:`TABS`. Tabs
that read another tab's inputs come after it. Nothing heavy runs at import: models load
in the pipeline's process-wide cache on the first request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr

import pipeline
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions
from studio.controls import option_control, option_controls
from studio.handlers import VOICE_MODES, TEXT, Handlers, Services
from studio.jobs_tabs import batch_tab, jobs_tab
from studio.live import live_tab
from studio.models_tab import models_tab

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "ui"

# System fonts only: the page must not fetch anything from the internet.
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Consolas", "monospace"],
)

CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto !important; }
#intro h1 { margin-bottom: 0.2em; }
.status { min-height: 1.6em; }
"""


def asset(name: str) -> str:
    """UI prose from ``assets/ui`` (read when the UI is built, not at import)."""
    path = ASSETS / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        log.warning("UI text %s is missing", path)
        return ""


@dataclass
class StudioContext:
    """What the tab builders share."""

    handlers: Handlers
    avatar: gr.State  # Cached[Avatar] | None, per session
    speech: gr.State  # Cached[Speech] | None, per session
    inputs: dict[str, gr.components.Component] = field(default_factory=dict)  # raw inputs by name


# ---------------------------------------------------------------------------- tabs


def avatar_tab(ctx: StudioContext) -> None:
    with gr.Tab("Avatar", id="avatar"):
        gr.Markdown(asset("avatar.md"))
        with gr.Row(equal_height=False):
            with gr.Column():
                photo = gr.Image(
                    value=str(pipeline.sample_photo()),
                    label="Face photo",
                    sources=["upload", "webcam"],
                    type="filepath",
                    image_mode=None,
                    height=420,
                )
                clip = gr.Video(
                    label="…or a presenter clip (2–60 s: upload or record)", sources=["upload", "webcam"], height=200
                )
                detect = gr.Button("Detect face", variant="primary")
            with gr.Column():
                still = gr.Image(label="Detected face", interactive=False, format="png", height=420)
                status = gr.Markdown(label="Status", elem_classes="status")
    outputs = [still, ctx.avatar, status]
    detect.click(
        ctx.handlers.prepare_avatar, [photo, ctx.avatar], outputs, api_name="prepare_avatar", show_progress_on=[still]
    )
    photo.change(
        ctx.handlers.photo_changed, [photo, ctx.avatar], outputs, api_visibility="private", show_progress_on=[still]
    )
    # a clip becomes the session's avatar (renders use it until another photo is chosen)
    clip.change(
        ctx.handlers.clip_changed, [clip, photo, ctx.avatar], outputs, api_visibility="private",
        show_progress_on=[still],
    )
    ctx.inputs["photo"] = photo


def voice_tab(ctx: StudioContext) -> None:
    default_id = VoiceOptions().voice
    default_language = next((v.language for v in pipeline.voices() if v.id == default_id), "en-US")
    with gr.Tab("Voice", id="voice"):
        gr.Markdown(asset("voice.md"))
        with gr.Row(equal_height=False):
            with gr.Column():
                mode = gr.Radio(VOICE_MODES, value=TEXT, label="Voice source")
                language = gr.Dropdown(
                    [(name, tag) for tag, name in pipeline.voice_languages()],
                    value=default_language,
                    label="Language",
                    info="Of the text or the recording. Neural Piper voices where there is one; espeak-ng "
                    "speaks 100+ languages.",
                )
                with gr.Group(visible=True) as text_group:
                    with gr.Row():
                        voice = gr.Dropdown(
                            [(v.label, v.id) for v in pipeline.voices(default_language)],
                            value=default_id,
                            label="Voice",
                            allow_custom_value=True,  # the API may name any voice id, e.g. espeak:de or a .onnx path
                        )
                    download = gr.Button("Download this voice (once, needs internet)", size="sm", visible=False)
                    text = gr.Textbox(
                        label="Text",
                        lines=4,
                        max_lines=12,
                        placeholder="Hello there, my name is Avatar. [pause 500ms] Nice to meet you!",
                        max_length=VoiceOptions().max_chars,
                    )
                    speed = option_control(VoiceOptions, "speed")
                with gr.Group(visible=False) as audio_group:
                    audio = gr.Audio(label="Speech", sources=["microphone", "upload"], type="filepath")
                    transcript = gr.Textbox(
                        label="Transcript (optional)",
                        lines=2,
                        info="What is said, for exact lip timing (English). Without it the words are recognised.",
                    )
                preview = gr.Button("Preview voice", variant="primary")
            with gr.Column():
                heard = gr.Audio(label="Preview", interactive=False, type="numpy")
                status = gr.Markdown(label="Status", elem_classes="status")
    assert speed is not None
    mode.change(
        lambda m: (gr.update(visible=m == TEXT), gr.update(visible=m != TEXT)),
        mode,
        [text_group, audio_group],
        api_visibility="private",
        queue=False,
    )
    language.change(ctx.handlers.voice_choices, language, [voice, download], api_visibility="private", queue=False)
    voice.change(ctx.handlers.voice_selected, voice, download, api_visibility="private", queue=False)
    download.click(
        ctx.handlers.download_voice,
        [voice, language],
        [voice, download, status],
        api_name="download_voice",
        show_progress_on=[status],
    )
    preview.click(
        ctx.handlers.preview_voice,
        [mode, text, speed, audio, ctx.speech, voice],
        [heard, ctx.speech, status],
        inputs_kwargs={"transcript": transcript, "language": language},
        api_name="preview_voice",
        show_progress_on=[heard],
    )
    ctx.inputs.update(
        voice_mode=mode, text=text, speed=speed, audio=audio, voice=voice, language=language, transcript=transcript
    )


def background_tab(ctx: StudioContext) -> None:
    with gr.Tab("Background", id="background"):
        gr.Markdown(asset("background.md"))
        with gr.Row(equal_height=False):
            with gr.Column():
                mode = option_control(BackgroundOptions, "mode")
                blur = option_control(BackgroundOptions, "blur")
                color = gr.ColorPicker(value=BackgroundOptions().color, label="Colour", info="Solid colour for mode color")
                image = gr.Image(label="Background image", type="filepath", sources=["upload"], height=180)
                video = gr.Video(label="Background video", sources=["upload"], height=180)
            with gr.Column():
                framing = option_controls(
                    BackgroundOptions, skip=("mode", "blur", "color", "image", "video")
                )
    ctx.inputs.update(
        bg_mode=mode, bg_blur=blur, bg_color=color, bg_image=image, bg_video=video,
        **{f"bg_{k}": c for k, c in framing.items()},
    )


def render_tab(ctx: StudioContext) -> None:
    with gr.Tab("Render", id="render"):
        gr.Markdown(asset("render.md"))
        examples_row = gr.Row()
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                with gr.Row():
                    fps = option_control(RenderOptions, "fps")
                    size = option_control(RenderOptions, "size")
                looks = pipeline.expression_presets()
                expression = gr.Dropdown(
                    ["custom", *looks],
                    value="custom",
                    label="Expression preset",
                    info="Fills the motion and expression sliders below; adjust them freely.",
                )
                others = option_controls(RenderOptions, skip=("fps", "size", "random_weights"))  # random weights: CLI/bench only
                with gr.Accordion("Export", open=False):
                    export = option_controls(ExportOptions, skip=("crf", "preset", "alpha", "mov_audio"))
                with gr.Row():
                    go = gr.Button("Render", variant="primary", size="lg", scale=3)
                    stop = gr.Button("Stop", variant="stop", size="lg", scale=1)
            with gr.Column(scale=3):
                video = gr.Video(label="Talking video", interactive=False, height=420)
                download = gr.File(label="Download", interactive=False, height=90)
                status = gr.Markdown(label="Status", elem_classes="status")
    controls = {"fps": fps, "size": size, **others}
    preset_fields = sorted({k for values in looks.values() for k in values if others.get(k) is not None})

    def apply_preset(name: str):
        values = looks.get(name, {})
        return [gr.update(value=values[k]) if k in values else gr.update() for k in preset_fields]

    expression.change(
        apply_preset, expression, [others[k] for k in preset_fields], api_visibility="private", queue=False
    )
    i = ctx.inputs
    outputs = [video, download, status, ctx.avatar, ctx.speech]
    with examples_row:
        gr.Examples(
            examples=[[str(pipeline.sample_photo()), line] for line in EXAMPLE_LINES],
            inputs=[i["photo"], i["text"]],
            outputs=outputs,
            fn=ctx.handlers.render_example,
            run_on_click=True,
            cache_examples=False,
            label="One-click first video: the sample face says a line",
            api_visibility="private",
        )
    go.click(
        ctx.handlers.render,
        [i["photo"], i["voice_mode"], i["text"], i["speed"], i["audio"], ctx.avatar, ctx.speech],
        outputs,
        inputs_kwargs={
            "voice": i["voice"],
            "transcript": i["transcript"],
            "language": i["language"],
            **{name: c for name, c in controls.items() if c is not None},
            **{f"export_{name}": c for name, c in export.items()},
            **{name: c for name, c in i.items() if name.startswith("bg_") and c is not None},
        },
        api_name="render",
        show_progress_on=[video],
    )
    # runs outside the queue, next to the render it stops
    stop.click(ctx.handlers.stop, None, status, api_name="stop", queue=False)


EXAMPLE_LINES = (
    "Hello! I'm your avatar. Type any text and I'll say it, with my lips in time.",
    "Peter picked a bunch of bright purple plums, and maybe a mango for Mom.",
)

TabBuilder = Callable[[StudioContext], None]
TABS: tuple[TabBuilder, ...] = (avatar_tab, voice_tab, background_tab, render_tab, live_tab, batch_tab, jobs_tab,
                                models_tab)


# ---------------------------------------------------------------------------- app


def build_ui(services: Services | None = None) -> gr.Blocks:
    """The studio as a Blocks app; ``services`` defaults to the ``pipeline`` facade."""
    handlers = Handlers(services)
    with gr.Blocks(title="Avatar Studio", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
        ctx = StudioContext(handlers, avatar=gr.State(None), speech=gr.State(None))
        gr.Markdown(asset("intro.md"), elem_id="intro")
        with gr.Tabs():
            for tab in TABS:
                tab(ctx)
    return demo


def internet_available(host: str = "api.gradio.app", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` (name lookup included)."""
    return pipeline.model_hub.reachable(f"https://{host}:{port}", timeout)


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, extra: dict | None = None) -> None:
    """Serve the studio and the routers of :mod:`studio.server` on one port (blocks until interrupted)."""
    from studio import server

    if share and not internet_available():
        log.warning("No internet connection: serving locally only, without a public share link.")
        share = False
    config = server.ServerConfig(host=host, port=port, share=share, extra=dict(extra or {}))
    demo = build_ui()
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        show_error=True,
        theme=THEME,
        css=CSS,
        footer_links=["api", "settings"],
        prevent_thread_lock=True,
        app_kwargs=server.app_kwargs(config),  # the routers' routes exist from the first request on
    )
    try:
        demo.block_thread()
    finally:
        server.shutdown()
