"""End-to-end render speed at 512x512, 25 fps, next to x264 encode-only speed of the same
frames in the same run, plus peak memory.

    python bench/render_speed.py [--seconds 10] [--repeat 3] [--preset veryfast]

Reports medians over --repeat runs. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.export import open_writer  # noqa: E402
from pipeline.options import ExportOptions, RenderOptions  # noqa: E402
from pipeline.types import AudioClip, Speech  # noqa: E402

TEXT = (
    "Welcome to Avatar Studio. Type a script, pick a face, and in a few seconds you get a "
    "talking video that you can drop into any editor. Peter bought a bamboo map."
)


def speech_of(seconds: float) -> Speech:
    s = pipeline.synthesize(TEXT)
    reps = int(np.ceil(seconds / s.duration))
    rate = s.audio.rate
    audio = np.tile(s.audio.samples, reps)[: int(seconds * rate)]
    phones = []
    for r in range(reps):
        off = r * s.duration
        phones += [type(p)(p.symbol, p.start + off, p.end + off, p.stress) for p in s.phonemes if p.start + off < seconds]
    return Speech(AudioClip(audio, rate), tuple(phones), text=TEXT, source="piper")


def encode_only_fps(frames: list[np.ndarray], out: Path, fps: float, audio: AudioClip, eopts: ExportOptions) -> float:
    """Frames per second of the writer alone on ``frames`` (the reference for a render's speed)."""
    h, w = frames[0].shape[:2]
    t = time.perf_counter()
    with open_writer(out, w, h, fps, audio, eopts) as wr:
        for f in frames:
            wr.write(f)
    return len(frames) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--preset", default="veryfast")
    args = ap.parse_args()
    from skimage import data

    avatar = pipeline.prepare_avatar(data.astronaut())
    t0 = time.perf_counter()
    speech = speech_of(args.seconds)
    tts_s = time.perf_counter() - t0
    ropts = RenderOptions(size=args.size)
    eopts = ExportOptions(preset=args.preset)
    tmp = Path(tempfile.mkdtemp())
    e2e, engine_only, encode_only, first_frame = [], [], [], []
    frames: list[np.ndarray] = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        res = pipeline.render_to_file(avatar, speech, tmp / "e2e.mp4", ropts, eopts)
        e2e.append(res.frames / (time.perf_counter() - t))
        t = time.perf_counter()
        it = pipeline.RenderSession(avatar, speech, ropts).frames()
        frames = [next(it)]
        first_frame.append(time.perf_counter() - t)
        frames += list(it)
        engine_only.append(len(frames) / (time.perf_counter() - t))
        encode_only.append(encode_only_fps(frames, tmp / "enc.mp4", ropts.fps, speech.audio, eopts))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "clip_seconds": args.seconds,
        "frames": len(frames),
        "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "x264_preset": args.preset,
        "tts_seconds": round(tts_s, 2),
        "end_to_end_fps_median": round(statistics.median(e2e), 1),
        "engine_only_fps_median": round(statistics.median(engine_only), 1),
        "encode_only_fps_median": round(statistics.median(encode_only), 1),
        "end_to_end_vs_encode_only": round(statistics.median(e2e) / statistics.median(encode_only), 2),
        "first_frame_ms_median": round(1000 * statistics.median(first_frame), 1),
        "peak_rss_mb": round(peak_mb),
        "runs": args.repeat,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
