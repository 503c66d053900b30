"""Durable render jobs on DBOS Transact: the job store, batch CSVs and webhooks.

    system = JobSystem(data_dir(), workers=2)
    system.start()                                   # launches DBOS, resumes queued/running jobs
    job = system.submit(request, name="intro", webhook_url="https://example.com/hook")
    system.get(job.id).state                         # queued, running, done, failed, cancelled

- :mod:`pipeline.jobs.system`: JobSystem (submit, list, cancel, resume), QueueFull, JobNotFound.
- :mod:`pipeline.jobs.workflow`: the DBOS workflow (render step, webhook step).
- :mod:`pipeline.jobs.runner`: the render step's body (idempotent write, cancel polling).
- :mod:`pipeline.jobs.store`: the job table (SQLite in the data dir, or PostgreSQL).
- :mod:`pipeline.jobs.webhooks`: Standard Webhooks delivery.
- :mod:`pipeline.jobs.batch`: batch CSV parsing, validation, running and summary.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.jobs.store import FINISHED, STATES, Job, JobState
from pipeline.jobs.system import JobNotFound, JobSystem, QueueFull, current


def data_dir(explicit: str | Path | None = None) -> Path:
    """Where jobs live: ``explicit`` (--data-dir) > $AVATAR_STUDIO_HOME > /data when it exists
    (a Hugging Face Space's persistent storage) > the user data folder."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("AVATAR_STUDIO_HOME", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    space = Path("/data")
    if space.is_dir() and os.access(space, os.W_OK):
        return space / "avatar-studio"
    base = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA", base)
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    return Path(base).expanduser().resolve() / "avatar-studio"


__all__ = ["FINISHED", "STATES", "Job", "JobNotFound", "JobState", "JobSystem", "QueueFull", "current", "data_dir"]
