"""The matting engine interface and its registry.

A matter turns an RGB frame into a person alpha matte. State is explicit, in the style of
RobustVideoMatting's recurrent ``rec`` list: the caller passes the state returned for the
previous frame of the same clip (``None`` for the first frame or a still image) and keeps
the new one; a matter never hides per-clip state in itself, so one instance (and the
model behind it, loaded once through :mod:`pipeline.models`) can serve many clips and
threads.

A neural matter (Robust Video Matting class) plugs in by adding one module with a class
that loads its network in ``__init__`` through ``models.get(key, loader)``, runs it under
the entry's lock, returns its recurrent tensors as the state, and one line in
:data:`MATTERS`.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pipeline.errors import InvalidOption, ModelUnavailable

MatteState = Any
"""Whatever a matter carries from one frame of a clip to the next (``None`` to start)."""


@runtime_checkable
class Matter(Protocol):
    """Person segmentation / matting engine."""

    name: str

    def matte(self, frame_rgb: np.ndarray, state: MatteState = None) -> tuple[np.ndarray, MatteState]:
        """Alpha of the person in ``frame_rgb`` (uint8 RGB HxWx3).

        Returns ``(alpha, state)``: alpha is float32 HxW in [0, 1] at the frame's size;
        pass ``state`` back in with the next frame of the same clip.
        """
        ...


MATTERS: dict[str, str] = {
    "selfie": "pipeline.matting.selfie:SelfieMatter",  # MediaPipe selfie segmentation + guided refinement
    "rvm": "pipeline.matting.rvm:RvmMatter",  # Robust Video Matting (recurrent; weights via models pull)
}


def matter_class(name: str) -> type:
    """The class registered as ``name``, imported on first use."""
    try:
        target = MATTERS[name]
    except KeyError:
        raise InvalidOption(f"Unknown matting engine {name!r}; available: {', '.join(sorted(MATTERS))}.") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelUnavailable(f"Matting engine {name!r} is not installed ({exc}).") from exc
    return getattr(module, attr)


def create_matter(name: str = "selfie", **kwargs: Any) -> Matter:
    """A ready matter; ``kwargs`` go to its constructor."""
    return matter_class(name)(**kwargs)


def available() -> list[str]:
    return sorted(MATTERS)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` as contiguous uint8 RGB, or InvalidOption with what is wrong."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", None)
        raise InvalidOption(f"Matting needs a uint8 RGB frame of shape (H, W, 3); got {shape} {dtype}.")
    if frame.shape[2] == 4:
        import cv2

        return cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)  # faster than copying a numpy slice
    return np.ascontiguousarray(frame)
