"""Background mode "video": a video file, looped, sampled by timestamp at the output
frame rate, each source frame fitted to the canvas once.

Decoding is :class:`pipeline.media.video.VideoReader`'s: the plate at output time ``t`` is
the source frame on screen at ``t`` modulo the clip's length (its last frame's time plus
that frame's duration); it streams forward and seeks back when the loop starts over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import UnsupportedMedia
from pipeline.matting.backgrounds.base import Background
from pipeline.matting.framing import fit_image
from pipeline.media.video import VideoReader


class BackgroundVideo(Background):
    """Frames of a video file fitted to the canvas, looped, chosen by timestamp.

    ``frame_at(t)`` is the frame on screen at ``t`` seconds of the looped video: the last
    frame whose presentation time is <= ``t`` modulo the loop length. Only the current
    source frame is kept, fitted once.
    """

    mode = "video"
    timed = True
    colour_match = True
    light_wrap = True

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fit: str = "fill",
        anchor: tuple[float, float] = (0.5, 0.5),
        fill: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UnsupportedMedia(f"Background video not found: {self.path}")
        self.size, self.fit, self.anchor, self.fill = size, fit, anchor, fill
        try:
            self._reader = VideoReader(self.path)
        except UnsupportedMedia as exc:
            raise UnsupportedMedia(f"Cannot use {self.path.name} as a background video: {exc}") from exc
        self._plate: np.ndarray | None = None
        self._plate_time: float | None = None
        self.index = -1  # index of the current source frame in the file (for tests and logs)

    @property
    def period(self) -> float:
        """Loop length in seconds."""
        return self._reader.duration

    def frame_at(self, t: float) -> np.ndarray:
        """The fitted RGB plate (uint8, canvas size) on screen at ``t`` seconds."""
        frame = self._reader.frame_at(t, loop=True)
        self.index = frame.index
        if self._plate is None or self._plate_time != frame.time:
            self._plate = fit_image(frame.image, self.size, self.fit, self.anchor, self.fill)
            self._plate_time = frame.time
        return self._plate

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> np.ndarray:
        return self.frame_at(t)

    def close(self) -> None:
        self._reader.close()


__all__ = ["BackgroundVideo"]
