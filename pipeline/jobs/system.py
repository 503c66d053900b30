"""JobSystem: submit, list, cancel and resume render jobs on DBOS Transact.

One process runs one JobSystem (DBOS is a process-wide singleton). ``start()`` launches
DBOS with its system database (SQLite in the data directory, or PostgreSQL), registers the
render queue with this process's worker concurrency, and resumes what was queued or
running: DBOS recovers this executor's unfinished workflows, and jobs whose workflow was
never enqueued (a crash between the two writes of ``submit``) are enqueued again under
their own id (an enqueue with an existing id is a no-op in DBOS).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.errors import InvalidOption, PipelineError
from pipeline.jobs import workflow
from pipeline.jobs.store import ACTIVE, STATES, Job, JobStore, store_url
from pipeline.request import RenderRequest

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0  # how long stop() waits for running renders to unwind
NAME_RE = re.compile(r"\w[\w .+=@,()-]{0,119}")  # letters of any script, digits, a few marks; no path parts


class QueueFull(PipelineError):
    """queued + running jobs reached the queue limit; try again after ``retry_after`` seconds."""

    code = "queue_full"

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = float(retry_after)


class JobNotFound(PipelineError):
    code = "not_found"


def check_name(name: str, what: str = "name") -> str:
    """A safe output stem: letters, digits, spaces and ._+=@,()- ; no path parts, no leading dot."""
    name = (name or "").strip()
    if name.lower().endswith(tuple(_suffixes())):
        name = name.rsplit(".", 1)[0]
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidOption(
            f"{what} {name!r} is not a safe file name: use up to 120 letters, digits, spaces or _.+=@,()- "
            "(no folders, no leading dot)."
        )
    return name


def _suffixes() -> list[str]:
    from pipeline.export.formats import format_info, format_names

    return [s for n in format_names() for s in format_info(n).suffixes if s]


def default_executor_id(role: str, shared: bool = False) -> str:
    """Stable across restarts (so DBOS resumes this executor's own interrupted work): the role
    alone on a local SQLite database (a container's hostname may change on restart), the role
    and the hostname on a shared PostgreSQL database."""
    return os.environ.get("AVATAR_STUDIO_EXECUTOR_ID") or (f"{role}-{socket.gethostname()}" if shared else role)


# Request fields that name input files, and the roles under which ``submit(files=...)`` may name them.
_FILE_FIELDS = {
    "face": ("face", "path"), "avatar": ("face", "path"), "face.path": ("face", "path"),
    "audio": ("voice", "audio"), "voice.audio": ("voice", "audio"),
    "bg_image": ("background", "image"), "background.image": ("background", "image"),
    "bg_video": ("background", "video"), "background.video": ("background", "video"),
}


class JobSystem:
    """Durable render jobs (see the module docstring and :mod:`pipeline.jobs`)."""

    def __init__(self, data_dir: Path, *, database_url: str | None = None, workers: int = 1,
                 executor_id: str | None = None, queue_limit: int | None = None,
                 webhook_secret: str | None = None, role: str = "studio") -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database_url = database_url or None
        self.workers = max(0, int(workers))
        self.executor_id = executor_id or default_executor_id(role, shared=bool(database_url))
        self.queue_limit = queue_limit if queue_limit and queue_limit > 0 else None
        self._secret = webhook_secret
        self.webhook_secret = ""
        self.store: JobStore | None = None  # type: ignore[assignment]
        self._queue: Any = None
        self._lock = threading.Lock()
        self.started = False
        self.stopping = threading.Event()  # set by stop(): running renders unwind and resume next start
        self.rendering: set[str] = set()  # job ids rendering in this process now
        self.max_csv_rows: int | None = None  # --max-csv-rows, for batches submitted in this process

    # ------------------------------------------------------------------ lifecycle

    @property
    def system_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'dbos.sqlite'}"

    def start(self) -> None:
        """Launch DBOS, register the queue, resume queued and running jobs."""
        from dbos import DBOS

        from pipeline.jobs import webhooks

        if self.started:
            return
        if workflow._SYSTEM is not None:
            raise RuntimeError("another JobSystem runs in this process (DBOS is one per process); stop it first")
        self.stopping.clear()
        (self.data_dir / "jobs").mkdir(parents=True, exist_ok=True)
        self.webhook_secret = webhooks.load_secret(self.data_dir, self._secret)
        self.store = JobStore(store_url(self.data_dir, self.database_url))
        workflow.bind(self)
        config: dict[str, Any] = {
            "name": workflow.APP_NAME, "system_database_url": self.system_database_url,
            "application_version": workflow.APP_VERSION, "executor_id": self.executor_id,
            "log_level": os.environ.get("AVATAR_STUDIO_DBOS_LOG", "WARNING"),
        }
        DBOS(config=config)  # type: ignore[arg-type]
        if self.workers == 0:
            DBOS.listen_queues([])  # submit and watch only: other executors render
        DBOS.launch()
        self._queue = DBOS.register_queue(
            workflow.QUEUE, worker_concurrency=max(1, self.workers), polling_interval_sec=0.5,
            on_conflict="always_update" if self.workers else "never_update",
        )
        self.started = True
        _set_current(self)
        self._reconcile()
        log.info("jobs: data in %s, executor %s, %d worker(s), database %s", self.data_dir, self.executor_id,
                 self.workers, "PostgreSQL" if self.database_url and "postgres" in self.database_url else "SQLite")

    def stop(self) -> None:
        """Shut DBOS down; unfinished jobs stay queued/running and resume on the next start."""
        from dbos import DBOS

        if not self.started:
            return
        self.stopping.set()
        deadline = time.monotonic() + STOP_WAIT_S
        while self.rendering and time.monotonic() < deadline:  # renders stop within a frame (not mid-TTS)
            time.sleep(0.05)
        if self.rendering:
            log.warning("jobs: %d render(s) still busy at shutdown; they resume on the next start", len(self.rendering))
        self.started = False
        _set_current(None)
        try:
            DBOS.destroy(workflow_completion_timeout_sec=0)
        finally:
            workflow.bind(None)
            if self.store is not None:
                self.store.close()

    def _reconcile(self) -> None:
        """Enqueue active jobs that DBOS does not know (the process died right after the insert),
        and settle active jobs whose workflow ended without settling them."""
        from dbos import DBOS

        for job in self.store.active():
            status = DBOS.get_workflow_status(job.id)
            if status is None:
                log.info("jobs: enqueueing job %s again", job.id)
                self._enqueue(job.id)
            elif status.status in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
                self.store.update(job.id, only_states=ACTIVE, state="failed", finished_at=time.time(),
                                  error={"code": "internal_error",
                                         "message": f"The job's workflow ended as {status.status}."})

    def _enqueue(self, job_id: str) -> None:
        from dbos import SetWorkflowID

        with SetWorkflowID(job_id):
            self._queue.enqueue(workflow.render_job, job_id)

    def _require(self) -> JobStore:
        if self.store is None or not self.started:
            raise PipelineError("The job system is not running.")
        return self.store

    # ------------------------------------------------------------------ submit

    def submit(self, request: RenderRequest, *, files: dict[str, Path] | None = None, name: str = "",
               webhook_url: str | None = None, batch: str | None = None, out_dir: str | Path | None = None,
               row_key: str | None = None, line: int | None = None) -> Job:
        """Validate, copy the inputs into the job's folder, store the job and enqueue it."""
        from pipeline.jobs import webhooks

        store = self._require()
        if not isinstance(request, RenderRequest):
            raise InvalidOption("submit needs a RenderRequest.")
        name = check_name(name or "render")
        if webhook_url:
            webhook_url = webhooks.check_url(webhook_url)
        request = _with_files(request, files or {})
        request.validate(check_files=True)
        with self._lock:
            if self.queue_limit is not None:
                counts = store.counts()
                active = counts["queued"] + counts["running"]
                if active >= self.queue_limit:
                    raise QueueFull(f"{active} jobs are queued or running (the limit is {self.queue_limit}); "
                                    "try again later.", retry_after=self.retry_after())
            job_id = uuid.uuid4().hex
            folder = self.job_folder(job_id)
            try:
                request = _copy_inputs(request, folder / "inputs")
                job = Job(
                    id=job_id, name=name, state="queued", progress=0.0, message="Queued", created_at=time.time(),
                    started_at=None, finished_at=None, timings={}, outputs=[], error=None,
                    request=request.to_dict(), webhook_url=webhook_url or None, batch=batch, line=line,
                    out_dir=str(Path(out_dir).resolve() if out_dir else folder / "output"), row_key=row_key,
                )
                store.insert(job)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        self._enqueue(job_id)
        return job

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: a typical job's length over the workers."""
        recent = self.store.recent_seconds() if self.store else []
        typical = statistics.median(recent) if recent else 5.0
        return round(min(max(typical / max(1, self.workers), 1.0), 600.0), 1)

    def job_folder(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    # ------------------------------------------------------------------ reads and cancel

    def get(self, job_id: str) -> Job | None:
        if not isinstance(job_id, str) or not re.fullmatch(r"[0-9a-f]{32}", job_id):
            return None
        return self._require().get(job_id)

    def list(self, *, offset: int = 0, limit: int = 50, state: str | None = None, batch: str | None = None
             ) -> tuple[list[Job], int]:
        if state is not None and state not in STATES:
            raise InvalidOption(f"state must be one of {', '.join(STATES)}, not {state!r}.")
        return self._require().list(offset=offset, limit=min(max(0, limit), 1000), state=state, batch=batch)

    def counts(self) -> dict[str, int]:
        return self._require().counts()

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop: a queued job is cancelled at once, a running one within a frame or
        two (its render polls the request); a finished job is left as it is."""
        store = self._require()
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"There is no job {job_id!r}.")
        if job.finished:
            return job
        store.update(job_id, cancel_requested=True)
        settled = store.update(job_id, only_states=("queued",), state="cancelled", finished_at=time.time(),
                               message="Cancelled", error={"code": "cancelled", "message": "Cancelled before it started."})
        if settled and job.webhook_url:  # now, not when the queue reaches the job
            from dbos import DBOS, SetWorkflowID

            with SetWorkflowID(f"{job_id}-cancelled"):
                DBOS.start_workflow(workflow.notify_job, job_id, "cancelled")
        return self.get(job_id) or job

    def output_path(self, job_id: str) -> Path | None:
        """The job's main output when it is done and still there."""
        job = self.get(job_id)
        if job is None or job.state != "done" or not job.outputs:
            return None
        path = Path(job.outputs[0])
        return path if path.exists() else None

    def wait(self, job_ids: list[str], timeout: float | None = None, poll: float = 0.5) -> list[Job]:
        """Block until every job is finished (or ``timeout``); returns them."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = [self._require().get(j) for j in job_ids]
            if all(j is None or j.finished for j in jobs) or (deadline and time.monotonic() > deadline):
                return [j for j in jobs if j is not None]
            time.sleep(poll)


def _with_files(request: RenderRequest, files: dict[str, Path]) -> RenderRequest:
    """The request with the named ``files`` in their fields."""
    import dataclasses

    for role, path in files.items():
        field = _FILE_FIELDS.get(role)
        if field is None:
            raise InvalidOption(f"Unknown input file role {role!r}; known: {', '.join(sorted(_FILE_FIELDS))}.")
        group, attr = field
        section = getattr(request, group)
        request = dataclasses.replace(request, **{group: dataclasses.replace(section, **{attr: str(path)})})
    return request


def _copy_inputs(request: RenderRequest, folder: Path) -> RenderRequest:
    """Copy every input file of ``request`` into ``folder`` under its role's name; paths rewritten."""
    import dataclasses

    folder.mkdir(parents=True, exist_ok=True)
    for role, (group, attr) in (("avatar", ("face", "path")), ("audio", ("voice", "audio")),
                                ("bg_image", ("background", "image")), ("bg_video", ("background", "video"))):
        section = getattr(request, group)
        src = getattr(section, attr)
        if not src or (group == "background" and request.background.mode != attr):
            continue  # a background file only counts in its own mode
        suffix = re.sub(r"[^A-Za-z0-9.]", "", Path(src).suffix)[:10].lower()
        dst = folder / f"{role}{suffix}"
        shutil.copyfile(src, dst)
        request = dataclasses.replace(request, **{group: dataclasses.replace(section, **{attr: str(dst)})})
    return request


_CURRENT: JobSystem | None = None


def _set_current(system: JobSystem | None) -> None:
    global _CURRENT
    _CURRENT = system


def current() -> JobSystem | None:
    """The process's running JobSystem (set by ``start()``)."""
    return _CURRENT
