"""The API's OpenAPI schema (``/api/v1/openapi.json``) and its docs pages.

``/api/v1/docs`` is a reference page rendered on the server from the schema, with no
scripts or assets from elsewhere (the studio works offline); ``/api/v1/docs/swagger`` and
``/api/v1/redoc`` are FastAPI's interactive pages, which load their scripts from a CDN
when the browser is online. The render form's fields and every option are documented
from the same option rules the CLI and the checks use.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from pipeline.api.errors import API_CODES, STATUS

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "stable code: a pipeline error code or one of the API's"},
        "message": {"type": "string", "description": "what went wrong and what to do about it"}}}},
}

DESCRIPTION = """Render talking-avatar videos over HTTP: POST a multipart form, poll the render, fetch its video.

Every `/api/v1` request needs `Authorization: Bearer KEY` when the server has a key (`--api-key`,
`AVATAR_STUDIO_API_KEY`). A server bound to a non-loopback address without a key answers 403
unless it was started with `--allow-open-api`. Past `--queue-limit` (queued + running jobs) a
POST is answered 429 with `Retry-After`. Errors are `{"error": {"code", "message"}}`.
"""


def render_form_schema() -> dict[str, Any]:
    """The multipart fields of ``POST /api/v1/renders`` with the ``options`` object's schema."""
    from pipeline.api.forms import SERVER_ONLY, option_table
    props: dict[str, Any] = {}
    for name, (_, spec) in sorted(option_table().items()):
        if name in SERVER_ONLY:
            continue
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}[spec.kind]
        prop: dict[str, Any] = {"type": kind, "default": spec.default, "description": spec.help}
        if spec.choices is not None:
            prop["enum"] = list(spec.choices)
        if spec.range is not None and not spec.special:
            prop.update(minimum=spec.range[0], maximum=spec.range[1])
        props[name] = prop
    props["expression"] = {"type": "string", "description": "expression preset (presets/expressions.toml)"}
    options = {"type": "object", "properties": props, "additionalProperties": False}
    return {
        "type": "object",
        "properties": {
            "avatar": {"type": "string", "format": "binary", "description": "face photo; absent: the bundled sample"},
            "text": {"type": "string", "description": "what the avatar says (or upload 'audio')"},
            "audio": {"type": "string", "format": "binary", "description": "a speech recording instead of text"},
            "transcript": {"type": "string", "description": "with audio: what is said, for exact timing"},
            "voice": {"type": "string", "description": "TTS voice id (GET /api/v1/voices)"},
            "language": {"type": "string", "description": "language tag; with text and no voice picks its voice"},
            "name": {"type": "string", "description": "output file stem (no folders)"},
            "webhook_url": {"type": "string", "format": "uri",
                            "description": "POSTed render.done / render.failed / render.cancelled (Standard Webhooks)"},
            "background": {"type": "string", "format": "binary", "description": "background image or video"},
            "options": {"type": "string", "contentMediaType": "application/json",
                        "description": "JSON object of options by their CLI names: " + ", ".join(sorted(props)),
                        "x-options-schema": options},
        },
    }


def add_docs(api: APIRouter, prefix: str, dependencies: list[Any], version: str) -> None:
    """Add ``<prefix>/openapi.json``, ``/docs``, ``/docs/swagger`` and ``/redoc`` to ``api``
    (the schema describes the routes of ``api``)."""
    cache: dict[str, Any] = {}

    def schema() -> dict[str, Any]:
        if "schema" not in cache:
            doc = get_openapi(title="Avatar Studio API", version=version, description=DESCRIPTION,
                              routes=api.routes)
            doc.setdefault("components", {})["schemas"] = {**doc.get("components", {}).get("schemas", {}),
                                                           "Error": ERROR_SCHEMA}
            doc["x-error-codes"] = {**{c: f"pipeline error (HTTP {s})" for c, s in STATUS.items()}, **API_CODES}
            cache["schema"] = doc
        return cache["schema"]

    openapi_url = prefix + "/openapi.json"
    hidden: dict[str, Any] = {"include_in_schema": False, "dependencies": dependencies}

    @api.get(openapi_url, **hidden)
    def openapi() -> JSONResponse:
        return JSONResponse(schema())

    @api.get(prefix + "/docs", **hidden)
    def docs() -> HTMLResponse:
        return HTMLResponse(reference_page(schema()))

    @api.get(prefix + "/docs/swagger", **hidden)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title="Avatar Studio API")

    @api.get(prefix + "/redoc", **hidden)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title="Avatar Studio API")


def reference_page(doc: dict[str, Any]) -> str:
    """A plain HTML reference of ``doc`` (no scripts, no external assets)."""
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['info']['title'])}</title>",
           "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
           "code,pre{background:#f3f4f6;padding:.1rem .3rem}h3{margin-top:2rem}td{padding:.2rem .6rem;"
           "vertical-align:top}</style></head><body>",
           f"<h1>{e(doc['info']['title'])} {e(doc['info']['version'])}</h1>",
           f"<pre>{e(doc['info'].get('description', ''))}</pre>",
           "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>; interactive (needs internet): "
           "<a href='docs/swagger'>Swagger UI</a>, <a href='redoc'>ReDoc</a>.</p>"]
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            out.append(f"<h3><code>{e(method.upper())} {e(path)}</code></h3><p>{e(op.get('summary', ''))}</p>")
            params = op.get("parameters", [])
            if params:
                out.append("<table>" + "".join(
                    f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                    f"<td>{e(json.dumps(p.get('schema', {})))}</td></tr>" for p in params) + "</table>")
            body = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if body:
                fields = body["schema"]["properties"]
                out.append("<p>multipart/form-data fields:</p><table>" + "".join(
                    f"<tr><td><code>{e(k)}</code></td><td>{e(v.get('description', ''))}</td></tr>"
                    for k, v in fields.items()) + "</table>")
                opts = fields["options"]["x-options-schema"]["properties"]
                out.append("<p><code>options</code> (JSON object):</p><table>" + "".join(
                    f"<tr><td><code>{e(k)}</code></td><td>{e(v['type'])}</td><td>{e(v['description'])}"
                    f"{' (' + e(', '.join(map(str, v['enum']))) + ')' if 'enum' in v else ''}</td></tr>"
                    for k, v in opts.items()) + "</table>")
            codes = ", ".join(f"{k}" for k in op.get("responses", {}))
            out.append(f"<p>Responses: {e(codes)}</p>")
    out.append("<h3>Error codes</h3><table>" + "".join(
        f"<tr><td><code>{e(k)}</code></td><td>{e(v)}</td></tr>" for k, v in doc.get("x-error-codes", {}).items())
        + "</table></body></html>")
    return "".join(out)
