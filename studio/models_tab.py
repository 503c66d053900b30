"""The Models tab: the neural-model catalog, Pull (download) with progress, a local path, Release.

Handlers are thin: the table, downloads, checks and the resident predictors live in
``pipeline.model_hub`` (:mod:`pipeline.hub`). A download runs only when the user presses
Pull; a model whose licence restricts use (non-commercial, GPL) needs the box ticked first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

import pipeline
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

COLUMNS = ["name", "what it is", "present", "size", "licence", "where"]
PROSE = Path(__file__).resolve().parents[1] / "assets" / "ui" / "models.md"


def model_rows() -> list[list[Any]]:
    """The catalog as table rows (read from disk on every call, never from the network)."""
    hub = pipeline.model_hub
    return [[r.name, r.title, "yes" if r.present else "no", hub.human_size(r.size), r.licence,
             r.where or (f"{r.source}: {r.repo}" if r.repo else r.source)] for r in hub.rows()]


def model_names() -> list[str]:
    return [r.name for r in pipeline.model_hub.rows()]


def licence_view(name: str | None):
    """The licence of ``name`` (shown before downloading) and the consent box for restricted ones."""
    if not name:
        return "Pick a model.", gr.update(visible=False, value=False)
    try:
        spec = pipeline.model_hub.models.spec(name)
    except PipelineError as exc:
        return exc.message, gr.update(visible=False, value=False)
    text = (f"**{spec.title}**  \nCode: {spec.code_licence}  \nWeights: {spec.weights_licence}  \n"
            f"{spec.licence_note}  \nDownload: {pipeline.model_hub.human_size(spec.size)} from "
            f"`{spec.repo_id or 'no public checkpoint'}`")
    return text, gr.update(visible=spec.restricted, value=False,
                           label="I accept this licence (non-commercial / GPL terms above)")


def pull_model(name: str | None, accepted: bool, progress: gr.Progress = gr.Progress()):
    """Download ``name`` into the Hugging Face cache, with a progress bar; the new table and a status line."""
    if not name:
        raise gr.Error("Pick a model first.", print_exception=False)
    hub = pipeline.model_hub
    try:
        if hub.models.spec(name).restricted and not accepted:
            raise gr.Error("Tick the licence box first: this model's licence restricts its use.",
                           print_exception=False)
        progress(0.0, desc=f"{name}: starting")
        path = hub.pull(name, progress=lambda f, m: progress(f, desc=m))
    except PipelineError as exc:
        raise gr.Error(exc.message, print_exception=False) from exc
    return model_rows(), f"**{name}** is ready: `{path}`"


def use_local(name: str | None, path: str):
    """Use a file or folder already on this machine for ``name`` (checked, then remembered)."""
    if not name or not (path or "").strip():
        raise gr.Error("Pick a model and type the path of its file or folder on this machine.", print_exception=False)
    try:
        found = pipeline.model_hub.pull_local(name, path.strip())
    except PipelineError as exc:
        raise gr.Error(exc.message, print_exception=False) from exc
    return model_rows(), f"**{name}** uses `{found}`"


def release_models():
    """Free every resident model (GPU memory included)."""
    held = pipeline.model_hub.resident()
    pipeline.model_hub.release()
    return f"Released {len(held)} model(s)" + (": " + ", ".join(held) if held else ".")


def resident_view() -> str:
    held = pipeline.model_hub.resident()
    return "Resident now: " + (", ".join(held) if held else "none")


def models_tab(ctx: Any) -> None:
    prose = PROSE.read_text(encoding="utf-8").strip() if PROSE.is_file() else ""
    with gr.Tab("Models", id="models"):
        gr.Markdown(prose)
        table = gr.Dataframe(model_rows, headers=COLUMNS, interactive=False, wrap=True, label="Neural models")
        with gr.Row(equal_height=False):
            with gr.Column():
                name = gr.Dropdown(model_names(), value=None, label="Model", elem_id="models-name")
                licence = gr.Markdown("Pick a model to see its licence.", elem_classes="status")
                accept = gr.Checkbox(value=False, visible=False, label="I accept this licence")
                pull = gr.Button("Pull (download from Hugging Face)", variant="primary", elem_id="models-pull")
            with gr.Column():
                local = gr.Textbox(label="…or a file/folder already on this machine", placeholder="/path/to/wav2lip.pth")
                use = gr.Button("Use this local file")
                release = gr.Button("Release resident models", variant="stop", elem_id="models-release")
                resident = gr.Markdown(resident_view, elem_classes="status")
                status = gr.Markdown(elem_classes="status")
    private = {"api_visibility": "private"}
    name.change(licence_view, name, [licence, accept], queue=False, **private)
    pull.click(pull_model, [name, accept], [table, status], concurrency_limit=1, show_progress_on=[status], **private)
    use.click(use_local, [name, local], [table, status], **private)
    release.click(release_models, None, status, queue=False, **private).then(resident_view, None, resident, **private)
    ctx.inputs["models_table"] = table
