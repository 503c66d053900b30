"""The jobs workflow on DBOS Transact: a render step, then (when asked) a webhook step.

    render_job(job_id)
      1. render   (step)  run_render: the render to its final name, state in the job store
      2. webhook  (step)  a signed POST, retried by DBOS with backoff (only with a webhook_url)

DBOS records each finished step in its system database, so after a crash or a restart the
workflow resumes at the first unfinished step: a finished render is not rendered again, an
interrupted one is (idempotently, see :mod:`pipeline.jobs.runner`), and a webhook that was
not yet delivered is sent again with the same id.

The functions are registered with DBOS at import (DBOS keeps a process-wide registry), and
find the process's :class:`~pipeline.jobs.system.JobSystem` through :func:`system`.
"""

from __future__ import annotations

import logging
from typing import Any

from dbos import DBOS

from pipeline.jobs import webhooks

log = logging.getLogger(__name__)

APP_NAME = "avatar-studio"
# Pinned: DBOS only resumes workflows of the running application version, so a code upgrade
# must not change it while jobs may be in flight (raise it only for an incompatible workflow).
APP_VERSION = "avatar-studio-jobs-1"
QUEUE = "avatar-studio-renders"
WORKFLOW = "avatar_studio.render_job"

_SYSTEM: Any = None  # the JobSystem of this process


def bind(system: Any) -> None:
    global _SYSTEM
    _SYSTEM = system


def system() -> Any:
    if _SYSTEM is None:
        raise RuntimeError("no JobSystem is running in this process")
    return _SYSTEM


@DBOS.step(name="avatar_studio.render")
def render_step(job_id: str) -> str:
    from pipeline.jobs.runner import run_render

    return run_render(system(), job_id)


@DBOS.step(name="avatar_studio.webhook", retries_allowed=True, interval_seconds=webhooks.RETRY_FIRST_S,
           max_attempts=webhooks.MAX_ATTEMPTS, backoff_rate=webhooks.RETRY_BACKOFF)
def webhook_step(job_id: str, url: str, state: str) -> int:
    jobs = system()
    if jobs.stopping.is_set():  # shutting down between retries: leave the step to the next start
        from pipeline.jobs.runner import Interrupted

        raise Interrupted(job_id)
    return webhooks.deliver_once(jobs, job_id, url, state)


@DBOS.step(name="avatar_studio.webhook_gave_up")
def webhook_gave_up_step(job_id: str, error: str) -> None:
    webhooks.gave_up(system(), job_id, error)


@DBOS.workflow(name=WORKFLOW)
def render_job(job_id: str) -> str:
    from pipeline.jobs.runner import CANCELLED_QUEUED

    state = render_step(job_id)
    if state == CANCELLED_QUEUED:
        return "cancelled"  # its webhook went out from notify_job when it was cancelled
    _notify(job_id, state)
    return state


@DBOS.workflow(name="avatar_studio.notify_job")
def notify_job(job_id: str, state: str) -> None:
    """The webhook of a job settled outside its render workflow (cancelled while queued)."""
    _notify(job_id, state)


def _notify(job_id: str, state: str) -> None:
    """The webhook step (inside a workflow), when the job has a webhook_url."""
    job = system().store.get(job_id)
    if job is not None and job.webhook_url and state in webhooks.EVENTS:
        try:
            webhook_step(job_id, job.webhook_url, state)
        except Exception as exc:  # noqa: BLE001 - the render stands; the failed delivery is recorded
            webhook_gave_up_step(job_id, f"{type(exc).__name__}: {exc}")
