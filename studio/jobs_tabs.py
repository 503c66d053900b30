"""The Batch and Jobs tabs: durable jobs of the process's JobSystem (``pipeline.job_system()``).

Both read the job store, never per-session memory, so a page refresh (or a restart of the
studio) shows the same jobs. Their handlers are light (one query each) and run outside the
render queue's concurrency limit, so they answer while renders run; the renders themselves
run on DBOS's worker threads, not on Gradio's queue.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

import pipeline
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

DOWNLOADS = Path(tempfile.gettempdir()) / "avatar-studio" / "downloads"
STATE_FILTERS = ["all", "queued", "running", "done", "failed", "cancelled"]
JOB_COLUMNS = ["id", "name", "state", "progress", "message", "created", "seconds", "batch", "error"]
BATCH_COLUMNS = ["line", "name", "state", "progress", "reason", "output"]
MAX_UI_ROWS = 500  # CSV rows one Batch-tab upload may hold, unless --max-csv-rows says otherwise
REFRESH_S = 2.0


def _system():
    system = pipeline.job_system()
    if system is None:
        raise gr.Error("The job system is not running in this studio process (start it with `python launch.py`).",
                       print_exception=False)
    return system


def _downloadable(path: str | Path) -> str:
    """A copy (hard link when possible) of ``path`` where Gradio serves files from."""
    src = Path(path)
    folder = DOWNLOADS / f"{time.time_ns()}"
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return str(dst)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


# ---------------------------------------------------------------------------- Jobs tab


def job_rows(state: str = "all", limit: int = 200) -> list[list[Any]]:
    system = pipeline.job_system()
    if system is None:
        return []
    jobs, _ = system.list(limit=limit, state=None if state in ("", "all") else state)
    return [[j.id, j.name, j.state, f"{j.progress:.0%}", j.message, _when(j.created_at),
             j.timings.get("total", ""), j.batch or "", (j.error or {}).get("message", "")] for j in jobs]


def jobs_summary() -> str:
    system = pipeline.job_system()
    if system is None:
        return "The job system is not running in this process."
    counts = system.counts()
    return " · ".join(f"**{n}** {s}" for s, n in counts.items()) + f" · data in `{system.data_dir}`"


def jobs_tab(ctx: Any) -> None:
    with gr.Tab("Jobs", id="jobs"):
        gr.Markdown("Every render job of this studio, from this run and earlier ones (kept in the data folder). "
                    "Queued and running jobs resume after a restart. Click a row to pick a job.")
        with gr.Row():
            state = gr.Dropdown(STATE_FILTERS, value="all", label="Show", scale=1)
            summary = gr.Markdown(jobs_summary, elem_classes="status")  # callables: read on every page load
        table = gr.Dataframe(job_rows, headers=JOB_COLUMNS, interactive=False, wrap=True, label="Jobs")
        with gr.Row():
            job_id = gr.Textbox(label="Job id", scale=3)
            download = gr.Button("Download", scale=1)
            cancel = gr.Button("Cancel", variant="stop", scale=1)
        output = gr.File(label="Output", interactive=False, height=90)
        status = gr.Markdown(elem_classes="status")
        timer = gr.Timer(REFRESH_S)  # inside the tab: a component between tabs confuses the tab bar
    light = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}
    refresh_args = ((lambda s: (job_rows(s), jobs_summary())), state, [table, summary])
    timer.tick(*refresh_args, **light)
    state.change(*refresh_args, **light)
    table.select(_pick_job, table, job_id, **light)
    download.click(_download_job, job_id, [output, status], **light)
    cancel.click(_cancel_job, [job_id, state], [status, table], **light)
    ctx.inputs["jobs_table"] = table


def _pick_job(rows: Any, evt: gr.SelectData) -> str:
    try:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        values = rows.values.tolist() if hasattr(rows, "values") else rows
        return str(values[row][0])
    except (IndexError, TypeError, KeyError):
        return ""


def _download_job(job_id: str):
    system = _system()
    job = system.get((job_id or "").strip())
    if job is None:
        raise gr.Error("Pick a job first (click its row), or paste its id.", print_exception=False)
    path = system.output_path(job.id)
    if path is None:
        return None, f"Job **{job.name}** is {job.state}: no output to download" + (
            f" ({job.error['message']})" if job.error else ".")
    if path.is_dir():  # a PNG sequence: zip it
        path = Path(shutil.make_archive(str(DOWNLOADS / f"{job.name}-{job.id[:8]}"), "zip", path))
    return _downloadable(path), f"Job **{job.name}**: {path.name}"


def _cancel_job(job_id: str, state: str):
    system = _system()
    try:
        job = system.cancel((job_id or "").strip())
    except PipelineError as exc:
        raise gr.Error(exc.message, print_exception=False) from exc
    word = "cancelled" if job.state == "cancelled" else ("stopping" if not job.finished else f"already {job.state}")
    return f"Job **{job.name}**: {word}.", job_rows(state)


# ---------------------------------------------------------------------------- Batch tab


def batch_tab(ctx: Any) -> None:
    with gr.Tab("Batch", id="batch"):
        gr.Markdown(
            "Render one video per CSV row with one presenter photo. Columns: `name`, `text` or `audio`, "
            "`transcript`, `voice`, `language`, and any option under its command-line name (`fps`, `size`, "
            "`format`, `subtitles`, `bg_mode`, ...). Every row is checked first: bad rows are listed as "
            "`line N: reason` (the header is line 1) and the good rows still render. Uploading the same CSV and "
            "photo again picks the batch up where it was (rows already done are not rendered again)."
        )
        with gr.Row(equal_height=False):
            with gr.Column():
                csv_file = gr.File(label="Scripts (CSV)", file_types=[".csv"], type="filepath")
                photo = gr.Image(value=str(pipeline.sample_photo()), label="Presenter photo", type="filepath",
                                 sources=["upload"], height=240)
                media = gr.File(label="Audio or background files the CSV names (optional)", file_count="multiple",
                                type="filepath")
                start = gr.Button("Check and render", variant="primary")
            with gr.Column():
                status = gr.Markdown(elem_classes="status")
                table = gr.Dataframe(headers=BATCH_COLUMNS, value=[], interactive=False, wrap=True, label="Rows")
                results = gr.Button("Zip of the results")
                archive = gr.File(label="Results", interactive=False, height=90)
        plan_state = gr.State(None)  # (BatchPlan, {line: (Job, reused)})
        timer = gr.Timer(REFRESH_S)
    light = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}
    start.click(_start_batch, [csv_file, photo, media], [plan_state, status, table], api_visibility="private",
                concurrency_limit=None)
    timer.tick(_batch_status, plan_state, [status, table], **light)
    results.click(_batch_zip, plan_state, [archive, status], **light)


def _start_batch(csv_path: str | None, photo: str | None, media: list[str] | None):
    if not csv_path:
        raise gr.Error("Upload the CSV of scripts first.", print_exception=False)
    system = _system()
    files = {Path(p).name: Path(p) for p in (media or [])}
    try:
        rows = getattr(system, "max_csv_rows", None) or MAX_UI_ROWS
        plan = pipeline.plan_batch(csv_path, photo or None, max_rows=rows, audio_files=files)
        jobs = plan.submit(system)
    except PipelineError as exc:
        raise gr.Error(exc.message, print_exception=False) from exc
    state = (plan, jobs)
    text, rows = _batch_view(state)
    return state, text, rows


def _batch_view(state: Any) -> tuple[str, list[list[Any]]]:
    plan, jobs = state
    system = pipeline.job_system()
    if system is None:
        return "The job system is not running.", []
    rows = plan.table(system, jobs)
    progress = {}
    for line, (job, _) in jobs.items():
        fresh = system.get(job.id)
        progress[line] = f"{fresh.progress:.0%}" if fresh else ""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    errors = "\n".join(f"- {_plain(e)}" for e in plan.errors)
    text = f"Batch `{plan.batch_id}`: " + ", ".join(f"**{n}** {s}" for s, n in sorted(counts.items()))
    if errors:
        text += "\n\nRows that cannot render:\n" + errors
    table = [[r["line"], r["name"], r["state"], progress.get(r["line"], ""), r["reason"], Path(r["output"]).name
              if r["output"] else ""] for r in rows]
    return text, table


def _plain(text: str) -> str:
    """Text shown in Markdown as written (an error may quote ``espeak:<tag>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("_", "\\_")


def _batch_status(state: Any):
    if not state:
        return gr.update(), gr.update()
    return _batch_view(state)


def _batch_zip(state: Any):
    if not state:
        raise gr.Error("Start a batch first.", print_exception=False)
    plan, jobs = state
    path = plan.results(_system(), jobs)
    text, _ = _batch_view(state)
    return _downloadable(path), text
