"""The HTTP API: FastAPI routes for ``/api/v1`` (renders, health, voices, OpenAPI and docs)
and ``/metrics`` (Prometheus), served on the studio's own port.

    from pipeline.api import router
    app.include_router(router(host="0.0.0.0", extra={"api_key": "K", "queue_limit": 3}))

The routes run on the durable jobs (``pipeline.jobs``): a POST validates the form, probes
its uploads and submits a job; the job system's ``QueueFull`` is answered 429 with
Retry-After. Modules: ``settings`` (key, bind rule, limits), ``errors`` (error shape and
status codes), ``uploads`` (size-limited multipart, file names, probes), ``forms`` (form ->
RenderRequest), ``metrics``, ``docs``, ``routes``. Nothing here imports gradio.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pipeline.api.settings import ApiSettings, is_loopback


def _current_jobs() -> Any:
    try:
        from pipeline import jobs
    except ImportError:  # the job system is not part of this build
        return None
    return jobs.current()


def router(host: str = "127.0.0.1", share: bool = False, extra: Mapping[str, Any] | None = None,
           jobs: Callable[[], Any] | None = None):
    """The API's ``APIRouter`` for a server bound to ``host`` with the ``extra`` settings
    (``api_key``, ``allow_open_api``, ``queue_limit``, ``max_upload_mb``, ``max_text_chars``).
    ``jobs`` returns the JobSystem to use (default: the process's running one)."""
    from pipeline.api.routes import build_router

    return build_router(ApiSettings.from_extra(host, share, extra), jobs or _current_jobs)


__all__ = ["ApiSettings", "is_loopback", "router"]
