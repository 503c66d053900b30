"""Matting and compositing speed.

    python bench/matting_speed.py [--frames 250] [--repeat 3] [--no-render]

Prints JSON with medians over --repeat runs:
- ``matting_720p``: selfie matter on a 1280x720 synthetic video (the astronaut photo
  moving a little over a backdrop), temporal state threaded, frames per second;
- ``composite_ms``: milliseconds per frame of ``Compositor.apply`` for blur / color /
  image / transparent at 512x512 and 1920x1080, with a still matte (photo avatar: same
  matte every frame, the mouth changes) and with a moving matte (video source);
- ``photo_avatar_render``: the warp engine's frame loop at 512x512 (default head motion)
  with a prepared still (``Compositor.prepare_still``, the matte carried through the
  warps as a fourth channel) against the same render without background work, engine
  only and end to end with the H.264 writer.

Not a test: it prints numbers. Run it on an otherwise idle machine; shared virtual CPUs
make single runs noisy, hence the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GLOG_minloglevel", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.matting import BackgroundOptions, Compositor, create_matter, matte_photo  # noqa: E402


def video_frames(n: int, size: tuple[int, int] = (1280, 720)) -> list[np.ndarray]:
    """``n`` frames of the astronaut drifting and swaying over a flat-ish backdrop; the
    list holds 50 distinct frames, played back and forth."""
    from skimage import data

    w, h = size
    person = cv2.resize(data.astronaut(), (h, h), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    backdrop = np.dstack([200 - 30 * yy / h, 195 - 20 * xx / w, 190 + 0 * xx]).astype(np.uint8)
    distinct = []
    for i in range(50):
        frame = backdrop.copy()
        dx = int(round((w - h) / 2 + 12 * np.sin(i / 8)))
        frame[:, dx : dx + h] = person
        distinct.append(frame)
    cycle = distinct + distinct[-2:0:-1]
    return [cycle[i % len(cycle)] for i in range(n)]


def median_fps(fn, n: int, repeat: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(n / (time.perf_counter() - t))
    return statistics.median(runs), [round(r, 1) for r in runs]


def bench_matting(frames: list[np.ndarray], repeat: int) -> dict:
    matter = create_matter("selfie")
    state = None
    for f in frames[:5]:  # load the model, warm up
        _, state = matter.matte(f, state)

    def run() -> None:
        st = None
        for f in frames:
            _, st = matter.matte(f, st)

    fps, runs = median_fps(run, len(frames), repeat)
    return {"size": "1280x720", "frames": len(frames), "fps_median": round(fps, 1), "fps_runs": runs}


def bench_composite(size: tuple[int, int], bg_image: str, repeat: int, n: int = 40) -> dict:
    from skimage import data

    w, h = size
    base = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA) if w == h else video_frames(1, size)[0]
    still_alpha = matte_photo(base)
    # "talking": the mouth region changes every frame
    talking = []
    for i in range(n):
        f = base.copy()
        y0, x0 = int(0.37 * h), int((w - h) / 2 + 0.38 * h)  # the mouth of the astronaut
        f[y0 : y0 + h // 20, x0 : x0 + h // 10] = (i * 37) % 255
        talking.append(f)
    # a moving source: mattes follow the person
    matter = create_matter("selfie")
    moving, st = [], None
    for i in range(n):
        shift = int(round(6 * np.sin(i / 5)))
        f = np.ascontiguousarray(np.roll(base, shift, axis=1))
        a, st = matter.matte(f, st)
        moving.append((f, a))
    out: dict = {}
    for mode in ("blur", "color", "image", "transparent"):
        opts = BackgroundOptions(mode=mode, image=bg_image if mode == "image" else "", color="#2d6cdf")
        comp = Compositor(opts, (w, h), 25.0)
        comp.apply(base, still_alpha, 0)

        def still() -> None:
            for i, f in enumerate(talking):
                comp.apply(f, still_alpha, i + 1)

        fps_s, _ = median_fps(still, n, repeat)
        comp_m = Compositor(opts, (w, h), 25.0)
        comp_m.apply(*moving[0], 0)

        def move() -> None:
            for i, (f, a) in enumerate(moving):
                comp_m.apply(f, a, i + 1)

        fps_m, _ = median_fps(move, n, repeat)
        out[mode] = {"still_matte_ms": round(1000 / fps_s, 2), "moving_matte_ms": round(1000 / fps_m, 2)}
    return out


def bench_render(bg_image: str, repeat: int) -> dict:
    """The photo-avatar render loop at 512x512 with the default head motion, done the
    intended way: the matte is computed once, ``Compositor.prepare_still`` treats the
    photo once, the engine animates it with the matte as a fourth channel, and the
    compositor blends each frame where it changed. Compared with the same render without
    background work (no matte, no compositor), engine only and end to end."""
    import dataclasses

    import pipeline
    from pipeline.options import RenderOptions
    from pipeline.types import Avatar
    from skimage import data

    avatar = pipeline.prepare_avatar(data.astronaut())
    speech = pipeline.synthesize("Welcome to Avatar Studio. Peter bought a bamboo map for Bob.")
    ropts = RenderOptions(size=512)
    tracks = pipeline.plan(speech, ropts)
    plain = pipeline.prepare_engine(avatar, ropts)
    frame0 = next(iter(pipeline.render(plain, speech, ropts, tracks)))
    h, w = frame0.shape[:2]
    n = tracks.n_frames
    out: dict = {"size": f"{w}x{h}", "frames": n, "head_motion": getattr(ropts, "head_motion", None)}
    if "matte" not in Avatar.__dataclass_fields__:
        out["error"] = "Avatar has no matte field: the engine cannot carry the matte"
        return out
    matte = matte_photo(avatar.image)
    modes = ["transparent", "color", "image", "blur"]
    setups = {}
    for mode in modes:
        comp = Compositor(BackgroundOptions(mode=mode, image=bg_image if mode == "image" else ""), (w, h), ropts.fps)
        still = comp.prepare_still(avatar.image, matte)
        setups[mode] = (comp, pipeline.prepare_engine(dataclasses.replace(avatar, image=still, matte=matte), ropts))

    def engine(mode: str | None) -> None:
        if mode is None:
            for _ in pipeline.render(plain, speech, ropts, tracks):
                pass
            return
        comp, prepared = setups[mode]
        for i, frame in enumerate(pipeline.render(prepared, speech, ropts, tracks)):
            comp.apply(frame, None, i)

    runs = interleaved(engine, [None, *modes], n, max(5, repeat))
    base = statistics.median(runs[None])
    out["engine_only_fps"] = round(base, 1)
    for mode in modes:
        fps = statistics.median(runs[mode])
        out[f"engine_{mode}_fps"] = round(fps, 1)
        out[f"{mode}_added_ms_per_frame"] = round(1000 / fps - 1000 / base, 2)
    # end to end with the H.264 writer (replaced backgrounds; transparent needs an alpha codec)
    try:
        from pipeline.export import open_writer
        from pipeline.options import ExportOptions

        tmp = Path(tempfile.mkdtemp())

        def encode(mode: str | None) -> None:
            with open_writer(tmp / "e2e.mp4", w, h, ropts.fps, speech.audio, ExportOptions()) as writer:
                if mode is None:
                    for frame in pipeline.render(plain, speech, ropts, tracks):
                        writer.write(frame)
                    return
                comp, prepared = setups[mode]
                for i, frame in enumerate(pipeline.render(prepared, speech, ropts, tracks)):
                    writer.write(comp.apply(frame, None, i))

        runs = interleaved(encode, [None, "color", "image", "blur"], n, max(5, repeat))
        base = statistics.median(runs[None])
        out["mp4_end_to_end_fps"] = round(base, 1)
        for mode in ("color", "image", "blur"):
            fps = statistics.median(runs[mode])
            out[f"mp4_end_to_end_{mode}_fps"] = round(fps, 1)
            out[f"mp4_end_to_end_{mode}_slowdown_pct"] = round(100 * (base / fps - 1), 1)
    except Exception as exc:  # the writer is not this benchmark's subject
        out["mp4_end_to_end_error"] = repr(exc)
    return out


def interleaved(fn, variants: list, n: int, repeat: int) -> dict:
    """Frames per second of ``fn(variant)`` for each variant, the variants taking turns
    so that drifts of a shared machine hit all of them alike."""
    runs: dict = {v: [] for v in variants}
    for _ in range(repeat):
        for v in variants:
            t = time.perf_counter()
            fn(v)
            runs[v].append(n / (time.perf_counter() - t))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-render", action="store_true", help="skip the photo-avatar render loop (needs Piper)")
    args = ap.parse_args()
    from PIL import Image
    from skimage import data

    tmp = Path(tempfile.mkdtemp())
    bg_image = str(tmp / "bg.png")
    Image.fromarray(data.rocket()).save(bg_image)
    result = {
        "cpus": os.cpu_count(),
        "cv2_threads": cv2.getNumThreads(),
        "matting_720p": bench_matting(video_frames(args.frames), args.repeat),
        "composite_ms": {
            "512x512": bench_composite((512, 512), bg_image, args.repeat),
            "1920x1080": bench_composite((1920, 1080), bg_image, args.repeat),
        },
    }
    if not args.no_render:
        result["photo_avatar_render"] = bench_render(bg_image, args.repeat)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
