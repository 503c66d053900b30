"""What the HTTP API is allowed to do on this server: key, bind rule, limits.

Built once from the server's address and its ``extra`` settings (``launch.py`` top-level
options, see ``studio.server.ServerConfig``). Defaults never read files; the environment
fallbacks (``AVATAR_STUDIO_API_KEY``) are read by ``launch.py``, not here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.options import VoiceOptions

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_TEXT_CHARS = VoiceOptions().max_chars


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what the server binds to) is reachable from this machine only."""
    name = (host or "").strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiSettings:
    api_key: str = ""  # Bearer key every /api/v1 request must carry; empty: none needed
    host: str = "127.0.0.1"  # address the server binds to
    share: bool = False  # a Gradio share link also exposes the server to the internet
    allow_open_api: bool = False  # serve /api/v1 without a key on a non-loopback address
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB  # whole request body (all files); over it: 413
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # longest script one render accepts
    url_inputs: bool = False  # inputs given as URLs; off (and not implemented: always refused)
    queue_limit: int | None = None  # queued + running jobs accepted (the JobSystem enforces it)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def exposed(self) -> bool:
        """Reachable from other machines (a non-loopback bind, or a share link)."""
        return self.share or not is_loopback(self.host)

    @property
    def disabled_reason(self) -> str:
        """Why /api/v1 is off on this server ("" when it is on)."""
        if self.api_key or self.allow_open_api or not self.exposed:
            return ""
        where = "through a public share link" if self.share else f"on {self.host}"
        return (
            f"The HTTP API is off: this server is reachable {where} and has no API key. "
            "Start it with --api-key KEY (or set the environment variable AVATAR_STUDIO_API_KEY, "
            "e.g. as a Hugging Face Space secret) and send 'Authorization: Bearer KEY', "
            "or pass --allow-open-api to serve the API without a key."
        )

    @classmethod
    def from_extra(cls, host: str = "127.0.0.1", share: bool = False, extra: Mapping[str, Any] | None = None
                   ) -> "ApiSettings":
        extra = dict(extra or {})
        mb = extra.get("max_upload_mb")
        chars = extra.get("max_text_chars")
        limit = extra.get("queue_limit")
        return cls(
            api_key=str(extra.get("api_key") or ""),
            host=host,
            share=bool(share),
            allow_open_api=bool(extra.get("allow_open_api")),
            max_upload_mb=float(mb) if mb not in (None, "") else DEFAULT_MAX_UPLOAD_MB,
            max_text_chars=int(chars) if chars not in (None, "") else DEFAULT_MAX_TEXT_CHARS,
            queue_limit=int(limit) if limit not in (None, "", 0) else None,
        )
