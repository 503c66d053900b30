"""Webhooks per the Standard Webhooks convention (the ``standardwebhooks`` package).

When a job with a ``webhook_url`` ends, the jobs workflow runs a durable DBOS step that
POSTs ``{"type": "render.done" | "render.failed" | "render.cancelled", "data": job}`` with
the headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (HMAC-SHA256,
``v1,<base64>``). A failed attempt (no answer, or not 2xx) raises, and DBOS retries the
step with exponential backoff: 1, 2, 4, 8, 16 s, six attempts in all; the step survives a
restart (an unfinished step runs again on recovery). The ``webhook-id`` is derived from
the job and the event, so every attempt, and any repeat after a crash, carries the same id
and a receiver can drop duplicates.

The secret is ``--webhook-secret`` / ``AVATAR_STUDIO_WEBHOOK_SECRET``: a ``whsec_<base64>``
secret as Standard Webhooks define it; any other text is used as its UTF-8 bytes (verify
with ``Webhook(secret.encode())``). Without one, a secret is generated once per data
directory (``<data dir>/webhook-secret``) and logged at start.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.errors import InvalidOption

log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0  # first retry after 1 s, then doubling
RETRY_BACKOFF = 2.0
MAX_ATTEMPTS = 6
TIMEOUT_S = 10.0
EVENTS = {"done": "render.done", "failed": "render.failed", "cancelled": "render.cancelled"}


class DeliveryFailed(Exception):
    """One delivery attempt failed (retried by the durable step)."""


def check_url(url: str) -> str:
    """An http(s) URL with a host, or InvalidOption."""
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidOption(f"webhook_url must be an http:// or https:// URL, not {url!r}.")
    return url.strip()


def signer(secret: str | bytes):
    """A ``standardwebhooks.Webhook`` for ``secret`` (whsec_/base64, else the raw bytes)."""
    from standardwebhooks import Webhook

    if isinstance(secret, str):
        try:
            return Webhook(secret)
        except Exception:  # noqa: BLE001 - not base64: the text itself is the key
            return Webhook(secret.encode("utf-8"))
    return Webhook(secret)


def load_secret(data_dir: Path, explicit: str | None) -> str:
    """The configured secret, else one generated and kept in the data directory."""
    secret = explicit or os.environ.get("AVATAR_STUDIO_WEBHOOK_SECRET", "")
    if secret:
        return secret
    path = Path(data_dir) / "webhook-secret"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        pass
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secret + "\n")
        log.warning("No --webhook-secret given: generated one for webhooks in %s", path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    return secret


def message_id(job_id: str, state: str) -> str:
    """The same id on every attempt of one job's event."""
    return f"msg_{job_id}_{state}"


def payload(system: Any, job_id: str, state: str) -> dict:
    job = system.get(job_id)
    return {"type": EVENTS[state], "data": job.to_dict() if job else {"id": job_id, "state": state}}


def deliver_once(system: Any, job_id: str, url: str, state: str) -> int:
    """One signed POST; returns the HTTP status, raises DeliveryFailed unless 2xx."""
    msg_id = message_id(job_id, state)
    info = _status(system, job_id)
    attempts = int(info.get("attempts", 0)) + 1
    body = json.dumps(payload(system, job_id, state), ensure_ascii=False, sort_keys=True)
    now = datetime.now(tz=timezone.utc)
    signature = signer(system.webhook_secret).sign(msg_id, now, body)
    request = urllib.request.Request(
        url, data=body.encode("utf-8"), method="POST",
        headers={"content-type": "application/json", "webhook-id": msg_id,
                 "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature,
                 "user-agent": "avatar-studio-webhooks"},
    )
    record = {"id": msg_id, "type": EVENTS[state], "attempts": attempts, "last_attempt": time.time()}
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:  # noqa: S310 - http(s) checked at submit
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        _record(system, job_id, {**record, "status": "retrying", "error": str(getattr(exc, "reason", exc))})
        raise DeliveryFailed(f"webhook {url}: {exc}") from exc
    if not 200 <= status < 300:
        _record(system, job_id, {**record, "status": "retrying", "error": f"HTTP {status}"})
        raise DeliveryFailed(f"webhook {url}: HTTP {status}")
    _record(system, job_id, {**record, "status": "delivered", "http_status": status})
    return status


def gave_up(system: Any, job_id: str, error: str) -> None:
    info = _status(system, job_id)
    _record(system, job_id, {**info, "status": "failed", "error": error})
    log.warning("webhook for job %s not delivered after %s attempts: %s", job_id, info.get("attempts"), error)


def _status(system: Any, job_id: str) -> dict:
    job = system.store.get(job_id)
    return dict(job.webhook or {}) if job else {}


def _record(system: Any, job_id: str, info: dict) -> None:
    system.store.update(job_id, webhook=info)
