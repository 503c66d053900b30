"""What every runtime backend shares: the :class:`Predictor` protocol and device choice.

Nothing here imports torch or onnxruntime at module level; :func:`pick_device` imports them
only when asked.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.errors import InvalidOption

log = logging.getLogger(__name__)

DEVICES = ("cuda", "cpu")
PRECISIONS = ("fp32", "fp16")
BACKENDS = ("torch", "onnx")


@runtime_checkable
class Predictor(Protocol):
    """A loaded network: named float arrays in, named float32 arrays out."""

    name: str  # the model's catalog name
    backend: str  # "torch" | "onnx"
    device: str  # "cuda" | "cpu"
    precision: str  # "fp32" | "fp16"
    inputs: tuple[str, ...]  # input names, in the network's order
    outputs: tuple[str, ...]  # output names, in the network's order

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on a batch; every output comes back as float32 numpy."""
        ...


def cuda_available() -> bool:
    """Whether torch (else ONNX Runtime with a GPU build) sees a CUDA device."""
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is not None:
        return bool(torch.cuda.is_available())
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def pick_device(prefer: str | None = None) -> str:
    """``"cuda"`` when torch/ORT sees one, else ``"cpu"``.

    ``prefer="cpu"`` always gives the CPU; ``prefer="cuda"`` on a machine without CUDA is
    an :class:`InvalidOption` (asked for explicitly, so it must not fall back silently);
    ``None`` or ``"auto"`` picks.
    """
    if prefer in (None, "", "auto"):
        return "cuda" if cuda_available() else "cpu"
    if prefer not in DEVICES:
        raise InvalidOption(f"Unknown device {prefer!r}; choose one of: auto, {', '.join(DEVICES)}.")
    if prefer == "cuda" and not cuda_available():
        raise InvalidOption("CUDA was asked for, but no CUDA device is visible to torch or ONNX Runtime "
                            "(see requirements-gpu.txt for the GPU install).")
    return prefer


def check_precision(precision: str, device: str) -> str:
    """``precision`` when it is possible on ``device`` (fp16 runs on CUDA only)."""
    if precision not in PRECISIONS:
        raise InvalidOption(f"Unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device != "cuda":
        raise InvalidOption("fp16 runs on CUDA only; use fp32 on the CPU.")
    return precision


def as_float32(array: np.ndarray) -> np.ndarray:
    """``array`` as float32 numpy (outputs of every backend)."""
    out = np.asarray(array)
    return out if out.dtype == np.float32 else out.astype(np.float32)
