"""Where the studio keeps its own data (a leaf module: jobs, the model registry and others read it).

The data folder holds the job database, job inputs and outputs, the remembered local model
paths (``models.json``) and ONNX exports of torch-built models.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data folder: ``explicit`` (--data-dir) > $AVATAR_STUDIO_HOME > /data when it exists
    (a Hugging Face Space's persistent storage) > the user data folder."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("AVATAR_STUDIO_HOME", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    space = Path("/data")
    if space.is_dir() and os.access(space, os.W_OK):
        return space / "avatar-studio"
    base = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA", base)
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    return Path(base).expanduser().resolve() / "avatar-studio"
