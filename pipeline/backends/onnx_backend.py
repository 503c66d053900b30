"""The ONNX Runtime backend: an ``InferenceSession`` behind :class:`~pipeline.backends.base.Predictor`.

CUDAExecutionProvider when ``device == "cuda"`` and the installed onnxruntime has it (the
``onnxruntime-gpu`` wheel, see requirements-gpu.txt), else the CPU provider. Inputs and
outputs are read from the session; inputs are cast to the dtype the graph declares (a
float16 graph takes half), outputs come back as float32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.backends.base import as_float32
from pipeline.errors import InvalidOption, ModelUnavailable

log = logging.getLogger(__name__)

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(uint8)": np.uint8,
}


def providers_for(device: str) -> list[str]:
    """The execution providers for ``device`` that this onnxruntime build has."""
    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            log.warning("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu): running on the CPU")
            return ["CPUExecutionProvider"]
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtPredictor:
    """An ONNX model file (or its bytes) in an ONNX Runtime session."""

    backend = "onnx"

    def __init__(self, path_or_bytes: str | Path | bytes, device: str = "cpu", name: str = "",
                 threads: int | None = None) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        model = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=providers_for(device))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            where = "the given bytes" if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
            raise ModelUnavailable(f"ONNX Runtime could not load {where}: {exc}") from exc
        self.name = name or (Path(path_or_bytes).stem if not isinstance(path_or_bytes, bytes) else "onnx")
        used = self.session.get_providers()
        self.device = "cuda" if used and used[0] == "CUDAExecutionProvider" else "cpu"
        ins = self.session.get_inputs()
        self.inputs = tuple(i.name for i in ins)
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        self._dtypes = {i.name: _DTYPES.get(i.type, np.float32) for i in ins}
        self.precision = "fp16" if any(d == np.float16 for d in self._dtypes.values()) else "fp32"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on a batch; every output comes back as float32 numpy."""
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise InvalidOption(f"{self.name}: missing input(s) {', '.join(missing)}; it takes {', '.join(self.inputs)}.")
        feed = {n: np.ascontiguousarray(inputs[n], dtype=self._dtypes[n]) for n in self.inputs}
        result = self.session.run(list(self.outputs), feed)
        return {n: as_float32(a) for n, a in zip(self.outputs, result)}

    def __repr__(self) -> str:
        return f"OrtPredictor({self.name!r}, {self.device}, {self.precision})"
