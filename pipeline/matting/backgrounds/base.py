"""The interface of a background source: what shows behind the person on the canvas."""

from __future__ import annotations

from typing import ClassVar

import numpy as np


class Background:
    """One background of one render, prepared for its canvas.

    :meth:`plate` gives the background for a frame as a uint8 RGB canvas (None: nothing,
    transparent output). It returns the *same array object* while the background does
    not change: the compositor keeps its caches for as long as the plate is the same
    object, so a still background costs nothing per frame.
    """

    mode: ClassVar[str] = ""  # BackgroundOptions.mode it implements
    timed: ClassVar[bool] = False  # the plate follows the output time only (a video): fetched every frame
    from_source: ClassVar[bool] = False  # the plate is made from the source frame (blur): watched for changes
    colour_match: ClassVar[bool] = False  # the person's colours may be pulled towards it
    light_wrap: ClassVar[bool] = False  # its light may wrap over the person's edges

    def plate(self, t: float, rgb: np.ndarray | None = None, a: np.ndarray | None = None) -> np.ndarray | None:
        """The background at output time ``t`` seconds, for source frame ``rgb`` (uint8
        HxWx3) with person alpha ``a`` (float32 HxW), which only sources made from the
        frame need."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files or decoders the source holds."""


__all__ = ["Background"]
