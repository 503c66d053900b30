"""The PyTorch backend: a ``torch.nn.Module`` behind :class:`~pipeline.backends.base.Predictor`.

The module's ``forward`` takes the inputs positionally in ``inputs`` order and returns one
tensor, a tuple/list in ``outputs`` order, or a dict keyed by output name. On CUDA with
``precision="fp16"`` the module is cast to half and floating inputs are sent as half; every
output comes back as float32 numpy. On CUDA convolutions run in channels-last memory layout
(``channels_last``, faster on tensor cores; same results) with cuDNN's autotuner on. :meth:`TorchPredictor.run_tensors` skips the numpy
round trip for callers that keep their batches on the device.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pipeline.backends.base import as_float32, check_precision
from pipeline.errors import InvalidOption

log = logging.getLogger(__name__)


class TorchPredictor:
    """A torch module on one device and precision, run under ``torch.inference_mode``."""

    backend = "torch"

    def __init__(self, module: torch.nn.Module, inputs: Sequence[str], outputs: Sequence[str], device: str = "cpu",
                 precision: str = "fp32", name: str = "", channels_last: bool | None = None) -> None:
        self.name = name or type(module).__name__
        self.device = device
        self.precision = check_precision(precision, device)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        module = module.eval().to(device)
        self.module = module.half() if precision == "fp16" else module.float()
        self._device = torch.device(device)
        self.channels_last = device == "cuda" if channels_last is None else channels_last
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        if device == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels once

    def _tensor(self, name: str, value: Any) -> torch.Tensor:
        t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        if t.is_floating_point() and t.dtype != self.dtype:
            t = t.to(self.dtype)
        t = t.to(self._device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last and t.ndim == 4 else t

    def run_tensors(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Run on tensors (or arrays); outputs stay tensors on the device, in the model's dtype."""
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise InvalidOption(f"{self.name}: missing input(s) {', '.join(missing)}; it takes {', '.join(self.inputs)}.")
        args = [self._tensor(n, inputs[n]) for n in self.inputs]
        with torch.inference_mode():
            result = self.module(*args)
        return self._named(result)

    def _named(self, result: Any) -> dict[str, torch.Tensor]:
        if isinstance(result, torch.Tensor):
            result = (result,)
        if isinstance(result, dict):
            missing = [n for n in self.outputs if n not in result]
            if missing:
                raise InvalidOption(f"{self.name}: the network returned no {', '.join(missing)}.")
            return {n: result[n] for n in self.outputs}
        result = tuple(result)
        if len(result) != len(self.outputs):
            raise InvalidOption(f"{self.name}: the network returned {len(result)} outputs, the catalog names "
                                f"{len(self.outputs)} ({', '.join(self.outputs)}).")
        return dict(zip(self.outputs, result))

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on a batch of numpy arrays; outputs are float32 numpy on the CPU."""
        out = self.run_tensors(inputs)
        return {n: as_float32(t.detach().float().cpu().numpy()) for n, t in out.items()}

    def __repr__(self) -> str:
        return f"TorchPredictor({self.name!r}, {self.device}, {self.precision})"


def _batched_axes(example: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, dict[int, str]]:
    """Axis 0 named ``B`` for every input of two or more dimensions and every output."""
    axes = {n: {0: "B"} for n, a in example.items() if np.ndim(a) >= 2}
    axes.update({n: {0: "B"} for n in outputs})
    return axes


def export_onnx(module: torch.nn.Module, example: dict[str, np.ndarray], outputs: list[str], path: str | Path,
                dynamic_batch: bool = True, dynamic_axes: dict[str, dict[int, str]] | None = None,
                opset: int = 17) -> Path:
    """Export ``module`` to ONNX at ``path`` with the legacy (TorchScript) exporter.

    ``example`` gives the inputs by name in the module's positional order. With
    ``dynamic_batch`` axis 0 of every input of 2+ dimensions and of every output is dynamic
    (``B``); ``dynamic_axes`` adds or overrides axes (e.g. ``{"src": {0: "B", 2: "H", 3: "W"}}``).
    The file is written to a temporary name and renamed when complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    args = []
    for a in example.values():
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
        args.append(t.to(dtype) if t.is_floating_point() else t)
    axes: dict[str, dict[int, str]] = _batched_axes(example, outputs) if dynamic_batch else {}
    for n, extra in (dynamic_axes or {}).items():
        axes[n] = {**axes.get(n, {}), **extra}
    tmp = path.with_name(path.name + ".partial")
    module = module.eval()
    try:
        with torch.inference_mode():
            torch.onnx.export(module, tuple(args), str(tmp), input_names=list(example), output_names=list(outputs),
                              dynamic_axes=axes or None, opset_version=opset, do_constant_folding=True, dynamo=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s", type(module).__name__, path)
    return path
