"""Writers that turn frames plus audio into files: ``open_writer`` picks one by format.

Every writer is a context manager with ``write(frame)``, ``close() -> Path`` (flush,
finish, atomic rename) and ``abort()``; a failure inside its ``with`` block leaves no
file behind. Writer classes are imported only when their format is asked for; the facts
about each format (suffix, alpha, audio) live on the writer class (``pipeline.export.formats``).

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

import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.export.formats import (
    WRITERS,
    FormatInfo,
    alpha_formats,
    format_for_path,
    format_info,
    format_names,
    writer_class,
)
from pipeline.types import AudioClip, Speech

if TYPE_CHECKING:
    from pipeline.options import ExportOptions

log = logging.getLogger(__name__)


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
    opts: ExportOptions | None = None,
    title: str = "",
    speech: Speech | None = None,
) -> VideoWriter:
    """A writer for ``opts.format``; raises InvalidOption for a format with no writer.

    With ``opts.subtitles`` other than "none", ``speech`` (its script and timing) is needed:
    the writer then burns the cues in, or writes ``<output>.srt`` / ``.vtt`` when it closes.
    A speech with no script and no word times gives no subtitles (a warning is logged).
    """
    if opts is None:
        from pipeline.options import ExportOptions

        opts = ExportOptions()
    cls = writer_class(opts.format)
    cues = None
    if opts.subtitles != "none":
        if speech is None:
            raise InvalidOption("Subtitles need the script: this export was started without the speech.")
        from pipeline.export.subtitles import cues_from_speech

        cues = cues_from_speech(speech)
        if not cues:
            log.warning("%s: the speech has no script or word times; no subtitles", Path(path).name)
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


__all__ = [
    "WRITERS", "FormatInfo", "VideoWriter", "alpha_formats", "format_for_path", "format_info", "format_names",
    "open_writer", "probe", "read_alpha", "writer_class",
]
