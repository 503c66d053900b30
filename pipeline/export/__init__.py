"""Writers that turn frames plus audio into files: ``open_writer`` picks one by format.

Every writer is a context manager with ``write(frame)``, ``close() -> Path`` (flush,
finish, atomic rename) and ``abort()``; a failure inside its ``with`` block leaves no
file behind. Writer classes are imported only when their format is asked for.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.options import ExportOptions
from pipeline.types import AudioClip

# format name -> "module:Class"; later formats (webm, mov, gif, png) register here.
WRITERS: dict[str, str] = {
    "mp4": "pipeline.export.mp4:Mp4Writer",
}


class VideoWriter(Protocol):
    """What every writer provides."""

    path: Path

    @property
    def frames_written(self) -> int: ...

    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> Path: ...

    def abort(self) -> None: ...

    def __enter__(self) -> "VideoWriter": ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_writer(
    path: str | Path,
    width: int,
    height: int,
    fps: float,
    audio: AudioClip | None = None,
    opts: ExportOptions = ExportOptions(),
    title: str = "",
) -> VideoWriter:
    """A writer for ``opts.format``; raises InvalidOption for a format with no writer."""
    target = WRITERS.get(opts.format)
    if target is None:
        known = ", ".join(sorted(WRITERS))
        raise InvalidOption(f"Export format '{opts.format}' is not available; choose one of: {known}.")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    writer: VideoWriter = cls(path, width, height, fps, audio, opts, title=title)
    return writer


def probe(path: str | Path) -> dict[str, Any]:
    """Describe a media file (see ``pipeline.export.mp4.probe``)."""
    from pipeline.export.mp4 import probe as _probe

    return _probe(path)


__all__ = ["WRITERS", "VideoWriter", "open_writer", "probe"]
