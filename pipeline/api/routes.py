"""The ``/api/v1`` routes and ``/metrics``: one ``APIRouter``, independent of Gradio.

    router = build_router(ApiSettings(api_key="K"), jobs=pipeline.jobs.current)
    app.include_router(router)          # any FastAPI app; the studio includes it into Gradio's

``jobs`` returns the running :class:`~pipeline.jobs.JobSystem` (or None, answered 503);
everything the routes raise is answered as ``{"error": {"code", "message"}}``
(:mod:`pipeline.api.errors`).
"""

from __future__ import annotations

import hmac
import math
import mimetypes
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask

from pipeline.api.errors import ApiError, ApiRoute
from pipeline.api.forms import render_form
from pipeline.api.metrics import Metrics
from pipeline.api.settings import ApiSettings
from pipeline.api.uploads import read_form
from pipeline.errors import PipelineError

PREFIX = "/api/v1"
JOB_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
TAGS = {"/renders": ["renders"], "/renders/{job_id}": ["renders"], "/renders/{job_id}/video": ["renders"],
        "/health": ["server"], "/voices": ["server"]}
State = Literal["queued", "running", "done", "failed", "cancelled"]
_bearer = HTTPBearer(auto_error=False, description="the server's --api-key (or AVATAR_STUDIO_API_KEY)")


def job_view(job: Any) -> dict[str, Any]:
    """What the API shows of a job: the job's own dict, its status and its links."""
    data = dict(job.to_dict())
    data["id"] = job.id
    data["status"] = job.state
    data["links"] = {"self": f"{PREFIX}/renders/{job.id}", "video": f"{PREFIX}/renders/{job.id}/video"}
    return data


def _route_class(metrics: Metrics) -> type[ApiRoute]:
    class CountedRoute(ApiRoute):
        def get_route_handler(self):  # type: ignore[no-untyped-def]
            handler = super().get_route_handler()
            route = self.path

            async def counted(request: Request) -> Response:
                response = await handler(request)
                metrics.requests.labels(request.method, route, str(response.status_code)).inc()
                return response

            return counted

    return CountedRoute


def build_router(settings: ApiSettings, jobs: Callable[[], Any]) -> APIRouter:
    """``/api/v1/...`` and ``/metrics`` for a server with ``settings``."""
    metrics = Metrics(jobs, lambda: settings.queue_limit)
    route_class = _route_class(metrics)

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        reason = settings.disabled_reason
        if reason:
            raise ApiError(403, "api_disabled", reason)
        if not settings.api_key:
            return
        given = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else ""
        if not given or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(401, "unauthorized",
                           "This API needs 'Authorization: Bearer KEY' with the server's API key"
                           + (" (the key given is wrong)." if given else "."),
                           {"WWW-Authenticate": 'Bearer realm="avatar-studio"'})

    # One flat router (no nested include): every path written in full, the key checked on /api/v1.
    api = APIRouter(route_class=route_class)
    auth = [Depends(authorize)]

    def v1(path: str) -> dict[str, Any]:
        return {"dependencies": auth, "tags": TAGS[path]}

    def system() -> Any:
        found = jobs()
        if found is None:
            raise ApiError(503, "jobs_unavailable", "The job system is not running in this server process.",
                           {"Retry-After": "5"})
        return found

    def job_or_404(job_id: str) -> Any:
        job = system().get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"No render with id {job_id!r}.")
        return job

    @api.post(PREFIX + "/renders", **v1("/renders"), status_code=202, summary="Queue a render (multipart form)",
              openapi_extra={"requestBody": _render_body()}, responses=_responses(400, 401, 413, 415, 422, 429))
    async def create_render(request: Request) -> JSONResponse:
        jobsys = system()
        field_bytes = max(1 << 20, settings.max_text_chars * 4 + 4096)
        try:
            await run_in_threadpool(_room_in_queue, jobsys, settings)  # before reading a large upload
            form = await read_form(request, settings.max_upload_bytes, field_bytes)
        except ApiError as exc:
            metrics.rejected.labels(exc.code).inc()
            raise
        try:
            staging = _staging_root(jobsys)
            with tempfile.TemporaryDirectory(prefix="upload-", dir=staging) as tmp:
                parsed = await run_in_threadpool(render_form, form, Path(tmp), settings)
                job = await run_in_threadpool(
                    lambda: jobsys.submit(parsed.request, name=parsed.name, webhook_url=parsed.webhook_url))
        except (ApiError, PipelineError) as exc:
            metrics.rejected.labels(exc.code).inc()
            raise
        finally:
            await form.close()
        return JSONResponse(job_view(job), status_code=202, headers={"Location": f"{PREFIX}/renders/{job.id}"})

    @api.get(PREFIX + "/renders", **v1("/renders"), summary="List renders, newest first (paged)")
    def list_renders(offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200),
                     state: State | None = Query(None)) -> dict[str, Any]:
        items, total = system().list(offset=offset, limit=limit, state=state)
        return {"items": [job_view(j) for j in items], "total": total, "offset": offset, "limit": limit}

    @api.get(PREFIX + "/renders/{job_id}", **v1("/renders/{job_id}"),
             summary="A render's status, progress, timings and error", responses=_responses(404))
    def get_render(job_id: str = PathParam(..., pattern=JOB_ID)) -> dict[str, Any]:
        return job_view(job_or_404(job_id))

    @api.get(PREFIX + "/renders/{job_id}/video", **v1("/renders/{job_id}/video"),
             summary="The rendered file, once the render is done", response_class=FileResponse, responses=_responses(404, 409))
    def get_video(job_id: str = PathParam(..., pattern=JOB_ID)) -> Response:
        job = job_or_404(job_id)
        if job.state != "done":
            raise ApiError(409, "not_ready", f"The render is {job.state}; its video is there once it is done.",
                           state=job.state)
        path = system().output_path(job_id)
        if path is None or not Path(path).exists():
            raise ApiError(404, "not_found", "The render is done but its output is no longer on this server.")
        return _file_response(Path(path), job.name or job.id)

    @api.delete(PREFIX + "/renders/{job_id}", **v1("/renders/{job_id}"),
                summary="Cancel a render (no-op once it has finished)", responses=_responses(404))
    def cancel_render(job_id: str = PathParam(..., pattern=JOB_ID)) -> dict[str, Any]:
        return job_view(system().cancel(job_id))

    @api.get(PREFIX + "/health", **v1("/health"), summary="Whether the server and its job system run")
    def health() -> JSONResponse:
        found = jobs()
        body: dict[str, Any] = {"status": "ok" if found is not None else "unavailable", "version": _version(),
                                "time": time.time(), "queue_limit": settings.queue_limit,
                                "max_upload_mb": settings.max_upload_mb, "max_text_chars": settings.max_text_chars,
                                "auth": bool(settings.api_key)}
        if found is not None:
            body["jobs"] = found.counts()
        return JSONResponse(body, status_code=200 if found is not None else 503)

    @api.get(PREFIX + "/voices", **v1("/voices"), summary="The TTS voices (id, language, engine, installed)")
    def list_voices(language: str = Query("", max_length=40, pattern=r"^[A-Za-z0-9_-]*$")) -> dict[str, Any]:
        import pipeline

        voices = [{"id": v.id, "language": v.language, "language_name": v.language_name, "name": v.name,
                   "engine": v.engine, "sample_rate": v.sample_rate, "installed": v.installed}
                  for v in pipeline.voices(language)]
        langs = [{"tag": tag, "name": name} for tag, name in pipeline.voice_languages()]
        return {"voices": voices, "languages": langs}

    from pipeline.api.docs import add_docs

    add_docs(api, PREFIX, auth, _version())

    @api.get("/metrics", summary="Prometheus metrics (text format)", tags=["server"],
              response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    known = list(api.routes)

    @api.api_route(PREFIX + "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   dependencies=auth, include_in_schema=False)
    def unknown_route(request: Request, rest: str) -> Response:
        """Anything else under /api/v1: the API's own error shape (not the UI's 404 page)."""
        allowed = sorted({m for r in known if r.path_regex.match(request.url.path) for m in r.methods})
        if allowed:
            raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}; "
                           f"use {', '.join(allowed)}.", {"Allow": ", ".join(allowed)})
        raise ApiError(404, "not_found", f"There is no API route {request.url.path}; see {PREFIX}/docs.")

    return api


def _room_in_queue(jobsys: Any, settings: ApiSettings) -> None:
    """429 at once when the queue is already full (the job system checks again, atomically, on submit)."""
    limit = getattr(jobsys, "queue_limit", None) or settings.queue_limit
    if not limit:
        return
    counts = jobsys.counts()
    active = counts.get("queued", 0) + counts.get("running", 0)
    if active >= limit:
        retry = float(jobsys.retry_after()) if hasattr(jobsys, "retry_after") else 5.0
        raise ApiError(429, "queue_full", f"{active} jobs are queued or running (the limit is {limit}); "
                       "try again after Retry-After seconds.", {"Retry-After": str(max(1, math.ceil(retry)))},
                       retry_after=retry)


def _staging_root(jobsys: Any) -> str | None:
    base = getattr(jobsys, "data_dir", None)
    if base is None:
        return None
    folder = Path(base) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _file_response(path: Path, stem: str) -> Response:
    if path.is_dir():  # a PNG sequence: zipped on the way out
        tmp = Path(tempfile.mkdtemp(prefix="video-zip-"))
        archive = shutil.make_archive(str(tmp / stem), "zip", path)
        return FileResponse(archive, media_type="application/zip", filename=f"{stem}.zip",
                            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, filename=f"{stem}{path.suffix}")


def _version() -> str:
    import tomllib

    try:
        with (Path(__file__).resolve().parents[2] / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    from pipeline.api.docs import ERROR_SCHEMA

    text = {400: "malformed request", 401: "missing or wrong API key", 404: "unknown render", 409: "not done yet",
            413: "upload over the size limit", 415: "not multipart/form-data", 422: "bad input",
            429: "queue full: retry after Retry-After seconds"}
    return {c: {"description": text[c], "content": {"application/json": {"schema": ERROR_SCHEMA}}} for c in codes}


def _render_body() -> dict[str, Any]:
    from pipeline.api.docs import render_form_schema

    return {"required": True, "content": {"multipart/form-data": {"schema": render_form_schema()}}}
