"""One server, one port: the studio UI, and beside it the routes that are not Gradio's.

``python launch.py`` serves the Gradio app; the HTTP API (``/api/v1``, ``/metrics``) and
the live transport (the mic-driven avatar) are FastAPI routers added to the same app, so
one port carries all of them and a Hugging Face Space (one exposed port) gets them too.

A feature that needs routes appends a :data:`Mount` to :data:`MOUNTS`: a function that
takes the :class:`ServerConfig` and returns an ``APIRouter`` (or ``None`` to stay off, e.g.
when a feature's dependency is missing). The routers' routes go into Gradio's app as it
is built (:func:`app_kwargs`), and :data:`SHUTDOWN` runs when it stops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import APIRouter

log = logging.getLogger(__name__)


@dataclass
class ServerConfig:
    """What the routers need to know about the server they run in."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # feature settings (API key, data dir, ...)


Mount = Callable[[ServerConfig], "APIRouter | None"]
MOUNTS: list[Mount] = []
# Called with no arguments when the server stops (a router's background workers, sessions).
SHUTDOWN: list[Callable[[], None]] = []


def routers(config: ServerConfig) -> list[APIRouter]:
    """Every enabled router, in :data:`MOUNTS` order."""
    out = []
    for mount in MOUNTS:
        router = mount(config)
        if router is not None:
            out.append(router)
    return out


def app_kwargs(config: ServerConfig) -> dict[str, Any]:
    """Keyword arguments for Gradio's FastAPI app (``demo.launch(app_kwargs=...)``) that
    put every router's routes in it from the start, ahead of Gradio's own: no request
    can arrive before they are there (adding them after ``launch`` left a gap of ~1 s in
    which ``/api/v1`` answered Gradio's 404)."""
    return {"routes": [route for router in routers(config) for route in router.routes]}


def shutdown() -> None:
    for stop in reversed(SHUTDOWN):
        try:
            stop()
        except Exception:  # noqa: BLE001 - one failing stop must not keep the others from running
            log.exception("shutdown hook %r failed", stop)


def _live_mic(config: ServerConfig) -> APIRouter | None:
    """The mic-driven live avatar's WebSocket (``/live/mic/ws/{token}``)."""
    import pipeline

    return pipeline.mic_router()


MOUNTS.append(_live_mic)


def _http_api(config: ServerConfig) -> APIRouter | None:
    """The HTTP API (``/api/v1``, ``/metrics``): key, bind rule and limits from ``config``."""
    import pipeline

    return pipeline.api_router(host=config.host, share=config.share, extra=config.extra)


MOUNTS.append(_http_api)
