"""The process-wide model cache.

Every model (FaceMesh, Piper voices, segmenters, neural engines) is loaded through
:func:`get`: lazily on first use, once per process, never at import. Loading is
serialised per key so two requests that need the same model wait for one load.

Some runtimes (MediaPipe graphs) are not safe to call from two threads at once;
:func:`get` returns the model and a lock that callers hold while running it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass
class Entry:
    model: Any
    lock: threading.Lock  # hold while calling a model that is not thread-safe


_entries: dict[str, Entry] = {}
_key_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def get(key: str, loader: Callable[[], Any]) -> Entry:
    """The cached entry for ``key``, loading it with ``loader()`` the first time."""
    entry = _entries.get(key)
    if entry is not None:
        return entry
    with _guard:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        entry = _entries.get(key)
        if entry is None:
            log.info("loading model %s", key)
            entry = Entry(loader(), threading.Lock())
            _entries[key] = entry
    return entry


def loaded() -> list[str]:
    """Keys of the models loaded so far (for diagnostics and tests)."""
    return sorted(_entries)


def clear() -> None:
    """Drop every cached model (tests)."""
    with _guard:
        _entries.clear()
