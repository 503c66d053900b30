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

from pipeline.jobs.store import FINISHED, STATES, Job, JobState
from pipeline.jobs.system import JobNotFound, JobSystem, QueueFull, current
from pipeline.paths import data_dir  # where jobs live (moved to a leaf module for the model registry)


__all__ = ["FINISHED", "STATES", "Job", "JobNotFound", "JobState", "JobSystem", "QueueFull", "current", "data_dir"]
