"""Live sessions: the streaming preview (:mod:`pipeline.live.stream`) and the mic-driven
avatar (``pipeline.live.mic*``, ``pipeline.live.transport*``).

Both kinds share one limit on concurrent live sessions, :data:`LIMITER` (a
:class:`LiveLimiter`). Whoever starts a live session holds a slot for its whole life::

    from pipeline.live import LIMITER

    with LIMITER.slot("preview", owner=session_hash):   # raises TooManySessions past the limit
        ...  # stream

or ``slot = LIMITER.acquire(kind, owner)`` ... ``slot.release()`` (safe to call twice)
where a context manager does not fit (a WebRTC peer that lives across requests). The
limit is ``AVATAR_STUDIO_LIVE_SESSIONS`` (default 4) at import, or
``LIMITER.limit = n`` at run time. Past it the caller gets :class:`TooManySessions`, a
PipelineError with a message for the user, at once (never a wait).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from pipeline.errors import PipelineError

LIMIT_ENV = "AVATAR_STUDIO_LIVE_SESSIONS"
DEFAULT_LIMIT = 4


class TooManySessions(PipelineError):
    """Every live session slot is taken."""

    code = "too_many_live_sessions"


def _env_limit() -> int:
    try:
        return max(1, int(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT)))
    except ValueError:
        return DEFAULT_LIMIT


@dataclass
class Slot:
    """One held live session; ``release()`` gives it back (idempotent)."""

    limiter: "LiveLimiter"
    kind: str  # "preview", "mic", ...
    owner: str  # who holds it (a browser session id), for messages and logs
    started: float = field(default_factory=time.monotonic)
    released: bool = False

    def release(self) -> None:
        self.limiter._release(self)

    def __enter__(self) -> "Slot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LiveLimiter:
    """At most ``limit`` live sessions (of every kind together) at once in this process."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit if limit is not None else _env_limit()
        self._held: list[Slot] = []
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._held)

    def acquire(self, kind: str, owner: str = "") -> Slot:
        with self._lock:
            if len(self._held) >= self.limit:
                raise TooManySessions(
                    f"The studio is already running {len(self._held)} live session(s), its limit "
                    f"({LIMIT_ENV}={self.limit}). Stop another live preview or microphone session, "
                    "or try again in a moment."
                )
            slot = Slot(self, kind, owner)
            self._held.append(slot)
            return slot

    @contextmanager
    def slot(self, kind: str, owner: str = "") -> Iterator[Slot]:
        held = self.acquire(kind, owner)
        try:
            yield held
        finally:
            held.release()

    def _release(self, slot: Slot) -> None:
        with self._lock:
            if not slot.released:
                slot.released = True
                self._held.remove(slot)


LIMITER = LiveLimiter()

__all__ = ["LIMITER", "LIMIT_ENV", "LiveLimiter", "Slot", "TooManySessions"]
