"""Writers that turn frames plus audio into files: ``open_writer`` picks one by format.

Every writer is a context manager with ``write(frame)``, ``close() -> Path`` (flush,
finish, atomic rename) and ``abort()``; a failure inside its ``with`` block leaves no
file behind. Writer classes are imported only when their format is asked for.

=======  =====================================  ==========================  ==============
format   video                                  audio                       alpha
=======  =====================================  ==========================  ==============
mp4      H.264 yuv420p, BT.709 tv range         AAC (clip rate, or 48 kHz)  no (refused)
webm     VP9 yuv420p / yuva420p, BT.709         Opus 48 kHz                 yes
mov      ProRes 4444 (XQ for archive), 10-bit   PCM s16le (or AAC)          yes
gif      255-colour palette, <= 30 fps          none (logged)               no (refused)
png      folder of frame_000001.png ...         audio.wav (PCM s16le)       yes
wav      none (frames counted, not stored)      PCM s16le                   no (refused)
=======  =====================================  ==========================  ==============

Alpha is kept when ``opts.alpha`` is set or when the first frame is RGBA (formats that
can carry it); formats that cannot drop the alpha of RGBA frames. Quality presets:
``pipeline.export.quality``. Subtitles (``opts.subtitles``): pass ``speech=`` to
``open_writer`` and it wraps the writer in ``subtitles.SubtitledWriter``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.options import ExportOptions
from pipeline.types import AudioClip, Speech

log = logging.getLogger(__name__)

# format name -> "module:Class", imported on first use
WRITERS: dict[str, str] = {
    "mp4": "pipeline.export.mp4:Mp4Writer",
    "webm": "pipeline.export.webm:WebmWriter",
    "mov": "pipeline.export.mov:MovWriter",
    "gif": "pipeline.export.gif:GifWriter",
    "png": "pipeline.export.png:PngSequenceWriter",
    "wav": "pipeline.export.wav:WavWriter",
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
    speech: Speech | None = None,
) -> VideoWriter:
    """A writer for ``opts.format``; raises InvalidOption for a format with no writer.

    With ``opts.subtitles`` other than "none", ``speech`` (its script and timing) is needed:
    the writer then burns the cues in, or writes ``<output>.srt`` / ``.vtt`` when it closes.
    A speech with no script and no word times gives no subtitles (a warning is logged).
    """
    target = WRITERS.get(opts.format)
    if target is None:
        known = ", ".join(sorted(WRITERS))
        raise InvalidOption(f"Export format '{opts.format}' is not available; choose one of: {known}.")
    cues = None
    if opts.subtitles != "none":
        if speech is None:
            raise InvalidOption("Subtitles need the script: this export was started without the speech.")
        from pipeline.export.subtitles import cues_from_speech

        cues = cues_from_speech(speech)
        if not cues:
            log.warning("%s: the speech has no script or word times; no subtitles", Path(path).name)
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    writer: VideoWriter = cls(path, width, height, fps, audio, opts, title=title)
    if cues:
        from pipeline.export.subtitles import SubtitledWriter

        writer = SubtitledWriter(writer, cues, opts.subtitles)  # type: ignore[assignment]
    return writer


def probe(path: str | Path) -> dict[str, Any]:
    """Describe a media file or PNG-sequence folder (see ``pipeline.export.readback.probe``)."""
    from pipeline.export.readback import probe as _probe

    return _probe(path)


def read_alpha(path: str | Path) -> np.ndarray:
    """The first frame's alpha plane, uint8 (H, W) (see ``pipeline.export.readback.read_alpha``)."""
    from pipeline.export.readback import read_alpha as _read_alpha

    return _read_alpha(path)


__all__ = ["WRITERS", "VideoWriter", "open_writer", "probe", "read_alpha"]
