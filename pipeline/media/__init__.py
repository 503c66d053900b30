"""Reading and conditioning media: audio decoding, resampling and loudness (``audio``),
images (``image``), the one video reader (``video``), presenter clips (``clip_frames``,
``clip_audio``); and :func:`file_digest`, the content hash that keys caches and jobs."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
