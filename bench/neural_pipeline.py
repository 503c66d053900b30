"""Full-pipeline speed of the wav2lip engine with random weights, next to the warp engine and
x264 encode-only of the same frames, in the same run; plus the network alone per batch size.

    python bench/neural_pipeline.py [--device auto|cpu|cuda] [--model wav2lip|wav2lip_256]
                                    [--seconds 4] [--repeat 3] [--size 512] [--threads 0]

Full pipeline = RenderSession -> MP4 file: mel features, the face crop, batched network runs,
paste-back (colour match, detail transfer), blinks and head motion, H.264 + AAC encoding
(process start, TTS and face detection excluded; the first run also builds the network).
The speed does not depend on the weight values. Reports medians over --repeat runs as one
JSON line (and a readable summary on stderr). Runs unchanged on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

log = logging.getLogger("bench.neural_pipeline")


def network_speed(model: str, device: str, precision: str, batches: list[int], seconds: float = 2.0) -> dict:
    """Frames/s of the network alone (numpy in, numpy out, synchronised) per batch size."""
    from pipeline import models

    pred = models.predictor(model, device=device, precision=precision, random_weights=True)
    s = models.spec(model)
    size = int(models.parse_signature(s.inputs["face"])[0][-1])
    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for b in batches:
        mel = rng.uniform(-4, 4, (b, 1, 80, 16)).astype(np.float32)
        face = rng.uniform(0, 1, (b, 6, size, size)).astype(np.float32)
        pred.run({"mel": mel, "face": face})  # warm-up (cuDNN algorithm choice)
        n, t0 = 0, time.perf_counter()
        while True:
            pred.run({"mel": mel, "face": face})
            n += b
            if time.perf_counter() - t0 > seconds:
                break
        out[str(b)] = round(n / (time.perf_counter() - t0), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--model", default="wav2lip", help="catalog name: wav2lip (96 px) or wav2lip_256")
    ap.add_argument("--seconds", type=float, default=4.0, help="speech length per render")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--preset", default="veryfast", help="x264 preset")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--batches", default="", help="network-only batch sizes, e.g. 1,16,64,128 (default by device)")
    ap.add_argument("--skip-network", action="store_true", help="only the full pipeline")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pipeline.backends.base import pick_device

    device = pick_device(args.device)
    os.environ["AVATAR_DEVICE"] = device
    os.environ["AVATAR_WAV2LIP_MODEL"] = args.model

    import pipeline
    from bench.render_speed import encode_only_fps, speech_of
    from pipeline.options import ExportOptions, RenderOptions
    from skimage import data

    avatar = pipeline.prepare_avatar(data.astronaut())
    speech = speech_of(args.seconds)
    eopts = ExportOptions(preset=args.preset)
    tmp = Path(tempfile.mkdtemp())
    result: dict = {"device": device, "model": args.model, "size": args.size, "seconds": args.seconds,
                    "torch_threads": torch.get_num_threads(), "preset": args.preset}
    if device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)

    frames: list[np.ndarray] = []
    for engine in ("wav2lip", "warp"):
        ropts = RenderOptions(engine=engine, size=args.size, random_weights=True)
        runs, first_frame = [], []
        for r in range(args.repeat + 1):  # run 0: cold (network build, CUDA init)
            t = time.perf_counter()
            res = pipeline.render_to_file(avatar, speech, tmp / f"{engine}.mp4", ropts, eopts)
            runs.append(res.frames / (time.perf_counter() - t))
        # time to the first frame of a streamed session (network resident)
        from pipeline.render import RenderSession

        for _ in range(args.repeat):
            t = time.perf_counter()
            session = RenderSession(avatar, speech, ropts)
            it = session.frames()
            f0 = next(it)
            first_frame.append(time.perf_counter() - t)
            if engine == "wav2lip" and not frames:
                frames = [f0, *it]
            else:
                it.close()
        result[engine] = {
            "frames": res.frames,
            "cold_fps": round(runs[0], 1),
            "fps": round(statistics.median(runs[1:]), 1),
            "first_frame_ms": round(1000 * statistics.median(first_frame), 1),
        }
    # the engine alone (no encoder) and the encoder alone on the same frames
    from pipeline.engines import get_engine
    from pipeline.render import plan

    ropts = RenderOptions(engine="wav2lip", size=args.size, random_weights=True)
    engine = get_engine("wav2lip")
    rig = engine.prepare(avatar, ropts)
    tracks = plan(speech, ropts)
    eng_fps = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        n = sum(1 for _ in engine.render(rig, tracks, speech.audio))
        eng_fps.append(n / (time.perf_counter() - t))
    result["wav2lip"]["engine_only_fps"] = round(statistics.median(eng_fps), 1)
    enc = [encode_only_fps([f[..., :3] for f in frames], tmp / "enc.mp4", ropts.fps, speech.audio, eopts)
           for _ in range(args.repeat)]
    result["encode_only_fps"] = round(statistics.median(enc), 1)
    result["wav2lip"]["share_of_encode_only"] = round(result["wav2lip"]["fps"] / result["encode_only_fps"], 3)

    if not args.skip_network:
        batches = [int(b) for b in args.batches.split(",") if b] or ([1, 16, 64, 128, 256] if device == "cuda"
                                                                      else [1, 16])
        precisions = ["fp32", "fp16"] if device == "cuda" else ["fp32"]
        result["network_fps"] = {}
        for model in dict.fromkeys([args.model, "wav2lip", "wav2lip_256"]):
            for prec in precisions:
                bs = batches if model == args.model or device == "cuda" else batches[:1]
                result["network_fps"][f"{model}/{prec}"] = network_speed(model, device, prec, bs,
                                                                         seconds=2.0 if device == "cuda" else 3.0)
    print(json.dumps(result))
    w = result["wav2lip"]
    print(f"{device} {args.model} {args.size}px: wav2lip {w['fps']} fps (cold {w['cold_fps']}, engine alone "
          f"{w['engine_only_fps']}, first frame {w['first_frame_ms']} ms), warp {result['warp']['fps']} fps, "
          f"encode-only {result['encode_only_fps']} fps", file=sys.stderr)


if __name__ == "__main__":
    main()
