"""Runtime backends: PyTorch and ONNX Runtime behind one predictor interface.

    p = TorchPredictor(module, ("mel", "face"), ("out",), device=pick_device(), precision="fp16")
    p.run({"mel": mel, "face": faces})["out"]          # float32 numpy, batch first

    export_onnx(module, {"mel": mel, "face": faces}, ["out"], "net.onnx")
    OrtPredictor("net.onnx", device="cuda").run({...})  # the same names in, the same names out

Models normally come from :func:`pipeline.models.predictor`, which builds, loads, exports
and caches them. Importing this package imports neither torch nor onnxruntime: the two
backends load on first use of :class:`TorchPredictor`, :func:`export_onnx` or
:class:`OrtPredictor`.
"""

from __future__ import annotations

from typing import Any

from pipeline.backends.base import BACKENDS, DEVICES, PRECISIONS, Predictor, check_precision, cuda_available, pick_device


def __getattr__(name: str) -> Any:
    if name == "TorchPredictor" or name == "export_onnx":
        from pipeline.backends import torch_backend

        return getattr(torch_backend, name)
    if name == "OrtPredictor":
        from pipeline.backends import onnx_backend

        return onnx_backend.OrtPredictor
    raise AttributeError(f"module 'pipeline.backends' has no attribute {name!r}")


__all__ = ["BACKENDS", "DEVICES", "PRECISIONS", "OrtPredictor", "Predictor", "TorchPredictor", "check_precision",
           "cuda_available", "export_onnx", "pick_device"]
