"""The body of a job's render step: one RenderRequest rendered to its final name, idempotently.

A DBOS step runs again after a crash, so the render writes to a hidden temp name in the
output's own folder, fsyncs it and moves it into place with ``os.replace``: the final name
only ever holds a complete file, and a repeated step simply writes it again. A job is
marked done only after that rename. Cancel is polled from the job store (any process or
machine may ask) and handed to the render core's :class:`CancelToken`, so a running render
stops within a frame or two, not at the next step.

The avatar is prepared once per photo content (a small memo keyed by the file's hash), so
the 50 rows of a batch with one presenter photo find the face once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.media import file_digest
from pipeline.render import CancelToken, Cancelled, RenderSession
from pipeline.request import RenderRequest
from pipeline.sources import Memo, prepare_avatar, speech_for
from pipeline.types import Avatar

log = logging.getLogger(__name__)

_AVATARS: Memo[Avatar] = Memo(8)
CANCELLED_QUEUED = "cancelled-queued"  # the render step's answer for a job cancelled before it started
PROGRESS_EVERY_S = 0.5  # at most two progress writes a second per job
CANCEL_POLL_S = 0.3


def avatar_for(path: str, multi_face: str = "largest", name: str = "") -> Avatar:
    """The prepared avatar of a photo, found once per photo content and face policy."""
    key = (file_digest(path) if path else "sample", multi_face)
    avatar = _AVATARS.get(key, lambda: prepare_avatar(path or None, multi_face=multi_face))
    return dataclasses.replace(avatar, name=name) if name and name != avatar.name else avatar


def output_path(out_dir: str | Path, name: str, fmt: str) -> Path:
    from pipeline.export.formats import format_info

    return Path(out_dir) / format_info(fmt).output_name(name)


def temp_output(final: Path, job_id: str) -> Path:
    """The job's own hidden temp name beside ``final`` (same folder, so the rename is atomic)."""
    suffix = final.suffix if final.suffix else ""
    stem = final.name[: -len(suffix)] if suffix else final.name
    return final.with_name(f".{stem}.{job_id[:12]}.partial{suffix}")


def remove_stale(final: Path, job_id: str) -> None:
    """Remove what an interrupted earlier try of this job left (temp names only)."""
    from pipeline.export.base import remove_path

    # ours, and the writer's own temp names made from ours (".<our temp name>.<pid>-<id>.partial...")
    mark = temp_output(final, job_id).name.rsplit(".partial", 1)[0] + ".partial"
    if final.parent.is_dir():
        for p in final.parent.iterdir():
            if p.name.startswith(mark) or p.name.startswith("." + mark):
                remove_path(p)


def _fsync_path(path: Path) -> None:
    """Flush a file, or every file of a folder and the folder itself, to the disk."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                _fsync_path(p)
        _fsync_dir(path)
        return
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` and move it to ``final`` (a folder replaces an earlier folder there)."""
    from pipeline.export.base import commit_dir

    _fsync_path(tmp)
    if tmp.is_dir():
        commit_dir(tmp, final)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)


class Interrupted(BaseException):
    """The process is shutting down mid-render. A BaseException on purpose: DBOS records
    neither the step nor the workflow as failed, so the job resumes on the next start."""


class _Watcher:
    """Polls the store for a cancel request (and the process for a shutdown) and sets the
    render's token."""

    def __init__(self, system: Any, job_id: str, token: CancelToken) -> None:
        self._stop = threading.Event()
        self.interrupted = False
        self._thread = threading.Thread(target=self._run, args=(system, job_id, token), daemon=True,
                                        name=f"cancel-{job_id[:8]}")
        self._thread.start()

    def _run(self, system: Any, job_id: str, token: CancelToken) -> None:
        while not self._stop.wait(CANCEL_POLL_S):
            if system.stopping.is_set():
                self.interrupted = True
                token.cancel()
                return
            try:
                if system.store.cancel_requested(job_id):
                    token.cancel()
                    return
            except Exception:  # noqa: BLE001 - a store hiccup must not kill the render
                log.debug("cancel poll failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()


def _progress_writer(system: Any, job_id: str):
    last = [0.0, ""]

    def progress(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and message[:6] == last[1][:6] and fraction < 1.0:
            return
        last[0], last[1] = now, message
        try:
            system.store.update(job_id, only_states=("running",), progress=float(min(max(fraction, 0.0), 1.0)),
                                message=message)
        except Exception:  # noqa: BLE001 - progress is best effort
            log.debug("progress write failed", exc_info=True)

    return progress


def run_render(system: Any, job_id: str) -> str:
    """Render one job; returns its final state. Failures are recorded, not raised."""
    store = system.store
    job = store.get(job_id)
    if job is None:
        log.error("job %s is not in the store; nothing to render", job_id)
        return "failed"
    if job.finished:
        if job.state == "cancelled" and job.started_at is None:
            return CANCELLED_QUEUED  # cancelled while queued: cancel() sent its webhook
        return job.state  # a repeated step after the job was settled
    if job.cancel_requested:
        _finish(system, job_id, "cancelled", error={"code": "cancelled", "message": "Cancelled before it started."})
        return "cancelled"
    if not store.start_run(job_id, system.executor_id):
        return (store.get(job_id) or job).state
    t0 = time.perf_counter()
    token = CancelToken()
    watcher = _Watcher(system, job_id, token)
    system.rendering.add(job_id)
    progress = _progress_writer(system, job_id)
    final: Path | None = None
    tmp: Path | None = None
    try:
        request = RenderRequest.from_dict(job.request).validate()
        final = output_path(job.out_dir, job.name, request.export.format)
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(final, job_id)
        tmp = temp_output(final, job_id)
        progress(0.0, "Finding the face")
        avatar = avatar_for(request.face.path, request.face.multi_face, name=job.name)
        token.check()
        progress(0.0, "Making the speech")
        speech = speech_for(request)
        token.check()
        session = RenderSession(avatar, speech, request.render, request.background, progress=progress, cancel=token)
        t_prepared = time.perf_counter()
        result = session.write(tmp, request.export_alpha, title=job.name)
        t_rendered = time.perf_counter()
        outputs = _commit_all(tmp, final, request)
        total = time.perf_counter() - t0
        render_s = t_rendered - t_prepared
        timings = {"prepare": round(t_prepared - t0, 3), "render": round(render_s, 3), "total": round(total, 3),
                   "fps": round(result.frames / max(render_s, 1e-6), 1), "frames": result.frames,
                   "duration": round(result.duration, 3)}
        _finish(system, job_id, "done", outputs=outputs, timings=timings, message="Done", progress=1.0)
        return "done"
    except Cancelled:
        if watcher.interrupted:
            store.update(job_id, only_states=("running",), message="Interrupted by a shutdown; resumes on the next start")
            raise Interrupted(job_id) from None
        _finish(system, job_id, "cancelled", error={"code": "cancelled", "message": "The render was cancelled; "
                                                    "nothing was written."}, timings=_elapsed(t0))
        return "cancelled"
    except PipelineError as exc:
        _finish(system, job_id, "failed", error={"code": exc.code, "message": exc.message}, timings=_elapsed(t0))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any failure is the job's, with its reason kept
        log.exception("job %s failed", job_id)
        _finish(system, job_id, "failed", error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"},
                timings=_elapsed(t0))
        return "failed"
    finally:
        watcher.close()
        system.rendering.discard(job_id)
        if tmp is not None and final is not None:
            remove_stale(final, job_id)


def _commit_all(tmp: Path, final: Path, request: RenderRequest) -> list[str]:
    """Move the sidecar subtitles first, then the video: the video at its final name means done."""
    outputs = []
    if request.export.subtitles in ("srt", "vtt"):
        from pipeline.export.subtitles import sidecar_path

        side_tmp, side_final = sidecar_path(tmp, request.export.subtitles), sidecar_path(final, request.export.subtitles)
        if side_tmp.exists():
            commit(side_tmp, side_final)
            outputs.append(str(side_final))
    commit(tmp, final)
    return [str(final), *outputs]


def _elapsed(t0: float) -> dict[str, float]:
    return {"total": round(time.perf_counter() - t0, 3)}


def _finish(system: Any, job_id: str, state: str, **values: Any) -> None:
    values.setdefault("message", {"done": "Done", "failed": "Failed", "cancelled": "Cancelled"}[state])
    system.store.update(job_id, only_states=("queued", "running"), state=state, finished_at=time.time(), **values)
