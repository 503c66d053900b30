"""Network-only speed of every catalog model with random weights (speed does not depend on the values).

    python bench/neural_engines.py --device cuda --json neural.json          # a GPU machine: everything
    python bench/neural_engines.py --device cpu --models wav2lip --batches 1,4 --seconds 0.5 --frame 128

For each model (``presets/models.toml``; a second entry that builds the same network, e.g.
wav2lip_gan, is skipped), each backend (torch, onnx) and each precision (fp32; fp16 on CUDA only, on the
CPU the table says "fp16: CUDA only"), frames per second at batch 1 and at its best batch
size: the batch is doubled from 1 while frames/s still grows by 5 % or more (and memory
lasts), up to the largest of ``--batches``.

What is timed: torch with its inputs already on the device (``TorchPredictor.run_tensors``,
``torch.cuda.synchronize`` after each run): the network alone; ONNX Runtime with numpy
inputs and outputs (``OrtPredictor.run``): the network plus the host/device copies. A
frame is one batch item. ``--frame N`` sets the H and W of models with dynamic frame size
(RVM; default 512, its ``downsample_ratio`` 0.5 there by the model's example).

Not a test: it prints a table (and JSON with ``--json``). Medians of ``--repeat`` timed windows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights: nothing to download

from pipeline import models  # noqa: E402
from pipeline.backends import pick_device  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402

log = logging.getLogger("bench.neural_engines")


@dataclass
class Result:
    model: str
    backend: str
    device: str
    precision: str
    batch1_fps: float | None = None  # frames/s at batch 1
    best_batch: int | None = None
    best_fps: float | None = None  # frames/s at best_batch
    by_batch: dict[int, float] = field(default_factory=dict)  # every batch tried -> frames/s
    note: str = ""


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _runner(pred: Any, inputs: dict[str, Any], device: str):
    """A no-argument call that runs ``pred`` once on ``inputs`` (device tensors for torch)."""
    if getattr(pred, "backend", "") == "torch":
        import torch

        placed = {n: pred._tensor(n, torch.from_numpy(a)) for n, a in inputs.items()}

        def run_torch() -> None:
            pred.run_tensors(placed)
            _sync(device)

        return run_torch
    return lambda: pred.run(inputs)


def frames_per_second(pred: Any, inputs: dict[str, Any], batch: int, device: str, seconds: float,
                      repeat: int) -> float:
    """Median frames/s of ``repeat`` windows of at least ``seconds`` each (after 3 warm-up runs)."""
    run = _runner(pred, inputs, device)
    for _ in range(3):
        run()
    rates = []
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            run()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds and n >= 3:
                break
        rates.append(n * batch / elapsed)
    return statistics.median(rates)


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate" in text or type(exc).__name__ == "OutOfMemoryError"


def _inputs(spec: models.ModelSpec, batch: int, frame: int) -> dict[str, Any]:
    dims = {}
    symbols = {d for sig in spec.inputs.values() for d in models.parse_signature(sig)[0] if isinstance(d, str)}
    hook: dict[str, Any] = {}
    if {"H", "W"} & symbols:
        dims = {"H": frame, "W": frame}
        hook = {"height": frame, "width": frame}
    return models.example_inputs(spec, batch=batch, dims=dims, **(hook if spec.options.get("example") else {}))


def bench_one(name: str, backend: str, device: str, precision: str, batches: list[int], frame: int,
              seconds: float, repeat: int) -> Result:
    res = Result(name, backend, device, precision)
    spec = models.spec(name)
    try:
        pred = models.predictor(name, backend=backend, device=device, precision=precision, random_weights=True)
    except (PipelineError, ImportError, RuntimeError, ValueError, TypeError) as exc:
        res.note = f"not built: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return res
    best = 0.0
    gains_small = 0
    for b in batches:
        try:
            fps = frames_per_second(pred, _inputs(spec, b, frame), b, device, seconds, repeat)
        except Exception as exc:  # noqa: BLE001 - out of memory, a graph that refuses a shape
            res.note = f"batch {b}: {'out of memory' if _is_oom(exc) else str(exc).splitlines()[0][:160]}"
            if device == "cuda":
                import torch

                torch.cuda.empty_cache()
            break
        res.by_batch[b] = round(fps, 1)
        log.info("%s %s %s %s batch %d: %.1f frames/s", name, backend, device, precision, b, fps)
        if b == 1:
            res.batch1_fps = round(fps, 1)
        if fps > best:
            gains_small = gains_small + 1 if fps < best * 1.05 else 0
            best, res.best_batch, res.best_fps = fps, b, round(fps, 1)
        else:
            gains_small += 1
        if gains_small >= 2:
            break
    models.release(name)
    return res


def unique_models(names: list[str] | None) -> list[tuple[str, str]]:
    """(name, note) for the models to run; a second entry building the same network (same builder and
    input/output signature: wav2lip_gan is wav2lip with other weights) is skipped unless named."""
    seen: dict[str, str] = {}
    out = []
    for name, spec in models.catalog().items():
        if spec.kind == "test" or (names and name not in names):
            continue
        key = json.dumps([spec.options.get("torch_build") or spec.build, spec.inputs, spec.outputs], sort_keys=True)
        if key in seen and not names:
            log.info("%s: the same network as %s (skipped)", name, seen[key])
            continue
        seen.setdefault(key, name)
        out.append((name, ""))
    return out


def environment(device: str) -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers(),
                            "cpu_threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def table(results: list[Result]) -> str:
    head = f"{'model':22} {'backend':7} {'device':6} {'prec':5} {'batch 1 f/s':>12} {'best batch':>10} {'best f/s':>10}  note"
    lines = [head]
    for r in results:
        b1 = f"{r.batch1_fps:.1f}" if r.batch1_fps is not None else "-"
        bb = str(r.best_batch) if r.best_batch is not None else "-"
        bf = f"{r.best_fps:.1f}" if r.best_fps is not None else "-"
        lines.append(f"{r.model:22} {r.backend:7} {r.device:6} {r.precision:5} {b1:>12} {bb:>10} {bf:>10}  {r.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when there is one")
    p.add_argument("--models", default="", help="comma-separated catalog names (default: every model)")
    p.add_argument("--backends", default="torch,onnx")
    p.add_argument("--batches", default="", help="batch sizes to try, e.g. 1,8,32 (default: 1..256 doubling on "
                   "CUDA, 1,2,4 on the CPU)")
    p.add_argument("--frame", type=int, default=512, help="H and W of models with a dynamic frame size (RVM)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of one timed window")
    p.add_argument("--repeat", type=int, default=3, help="timed windows per point (median)")
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = pick_device(args.device)
    if args.batches:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    else:
        batches = [1, 2, 4, 8, 16, 32, 64, 128, 256] if device == "cuda" else [1, 2, 4]
    names = [n.strip() for n in args.models.split(",") if n.strip()] or None
    for n in names or []:
        models.spec(n)  # an unknown name fails before any work
    precisions = ["fp32", "fp16"] if device == "cuda" else ["fp32"]
    results: list[Result] = []
    t0 = time.perf_counter()
    for name, _ in unique_models(names):
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            for precision in precisions:
                results.append(bench_one(name, backend, device, precision, batches, args.frame, args.seconds,
                                         args.repeat))
                print(table(results[-1:]).splitlines()[1], flush=True)
            if device != "cuda":
                results.append(Result(name, backend, device, "fp16", note="fp16: CUDA only"))
    print(table(results))
    out = {"device": device, "frame": args.frame, "batches": batches, "seconds": args.seconds, "repeat": args.repeat,
           "environment": environment(device), "wall_s": round(time.perf_counter() - t0, 1),
           "results": [asdict(r) for r in results]}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
