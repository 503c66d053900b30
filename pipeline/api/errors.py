"""Errors as the HTTP API answers them: ``{"error": {"code", "message"}}`` with a 4xx status.

A :class:`~pipeline.errors.PipelineError` keeps its stable code; :data:`STATUS` says which
HTTP status each code gets (bad input is 4xx, never 500). :class:`ApiError` is raised by
the routes for what only HTTP knows (auth, sizes, malformed multipart). :class:`ApiRoute`
turns every exception a route raises into that JSON shape, so the router needs no
app-level exception handlers and works in any FastAPI app (the studio's Gradio app).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

from fastapi import Request, Response
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# HTTP status of each pipeline error code; codes not listed are bad input (422).
STATUS: dict[str, int] = {
    "invalid_option": 422,
    "invalid_text": 422,
    "unsupported_media": 422,
    "silent_audio": 422,
    "no_face": 422,
    "multiple_faces": 422,
    "face_too_small": 422,
    "face_turned_away": 422,
    "model_unavailable": 422,
    "model_missing": 422,  # a neural engine whose weights are not pulled (the message names models pull)
    "not_found": 404,
    "queue_full": 429,
    "cancelled": 409,
}

# Codes the API adds for what only HTTP knows.
API_CODES = {
    "bad_request": "the request is malformed (multipart body, form field types, a file name)",
    "unauthorized": "no or wrong 'Authorization: Bearer KEY'",
    "api_disabled": "the API is off: a non-loopback server without an API key",
    "payload_too_large": "the upload is over the size limit (--max-upload-mb)",
    "unsupported_content_type": "the body is not multipart/form-data",
    "url_inputs_off": "inputs given as URLs are not accepted; upload the file",
    "method_not_allowed": "the route exists, with other methods (see the Allow header)",
    "not_ready": "the render has no output (yet): see its state",
    "jobs_unavailable": "the job system is not running in this process",
    "internal": "a bug: the server failed on a request it should have handled",
}


class ApiError(Exception):
    """An HTTP-level failure with its status, stable code and message for the client."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.headers, **self.extra)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers)


def from_pipeline(exc: PipelineError) -> JSONResponse:
    """The response for a pipeline error (its code; Retry-After for a full queue)."""
    status = STATUS.get(exc.code, 422)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if exc.code == "queue_full":
        retry = float(getattr(exc, "retry_after", 0.0) or 0.0)
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
        extra["retry_after"] = retry
    return error_response(status, exc.code, exc.message, headers, **extra)


def from_validation(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's parameter checks (query types and ranges) in the API's error shape."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return error_response(422, "invalid_option", "; ".join(parts) or "Invalid request parameters.")


class ApiRoute(APIRoute):
    """A route whose every failure is answered as ``{"error": {"code", "message"}}``."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except PipelineError as exc:
                return from_pipeline(exc)
            except RequestValidationError as exc:
                return from_validation(exc)
            except HTTPException as exc:
                return error_response(exc.status_code, "bad_request" if exc.status_code < 500 else "internal",
                                      str(exc.detail), dict(exc.headers or {}))
            except Exception:  # noqa: BLE001 - a bug, answered honestly as 500 and logged
                log.exception("API %s %s failed", request.method, request.url.path)
                return error_response(500, "internal", "The server failed on this request; see its log.")

        return handle
