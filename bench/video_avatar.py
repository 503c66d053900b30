"""Video avatar speed: preparing a 720p presenter clip (cold cache), and rendering with the
prepared clip at 720p next to x264 encode-only of the same frames in the same run.

    python bench/video_avatar.py [--seconds 10] [--speech 10] [--repeat 3] [--presets ultrafast,veryfast]
    python bench/video_avatar.py --lipsync      # rendered lip sync on 4 synthetic clips (sizes, motion, rotation)

The clip is synthetic (tests/test_video_avatar_fixtures.py: the sample photo with a moving
mouth, swaying, written at a variable frame rate, ~30 fps on average). Reports medians over
--repeat runs, each preset's render to a file and encode-only interleaved in every run, as
frames/s and as CPU time per frame (all threads of the process; 2000 / that is what two free
cores could sustain, the figure that survives a machine other work is loading). Not a test:
it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.options import ExportOptions, RenderOptions  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from render_speed import encode_only_fps, speech_of  # noqa: E402
from test_video_avatar_fixtures import make_clip  # noqa: E402


LIPSYNC_TEXT = "Peter bought a bamboo map for Bob. Mum made plum pie, and Pam put maple butter on a big bun."
LIPSYNC_CLIPS = (  # seed, motion amount, rotation metadata, size, photo scale
    (1, 1.0, 0, (320, 240), 1.3), (2, 1.5, 0, (480, 360), 1.6), (3, 0.5, 270, (320, 240), 1.3),
    (4, 1.0, 0, (640, 480), 2.0),
)


def lipsync(tmp: Path) -> list[dict]:
    """FaceMesh read-back of dubbed synthetic clips (their own mouths keep talking) against the
    voice's exact phoneme times."""
    from pipeline.options import VoiceOptions
    from pipeline.quality.measure import mouth_track
    from pipeline.quality.metrics import bilabial_closure, open_vowel_rate

    os.environ["AVATAR_STUDIO_CACHE"] = str(tmp / "cache-lipsync")
    speech = pipeline.synthesize(LIPSYNC_TEXT, VoiceOptions(variation=0.0))
    rows = []
    for seed, amount, rotation, size, scale in LIPSYNC_CLIPS:
        clip = tmp / f"lipsync{seed}.mp4"
        make_clip(clip, 4.0, seed=seed, amount=amount, rotation=rotation, size=size, scale=scale)
        result = pipeline.render_to_file(pipeline.prepare_avatar(str(clip)), speech, tmp / f"dub{seed}.mp4")
        track = mouth_track(result.path)
        closed, opened = bilabial_closure(track, speech.phonemes), open_vowel_rate(track, speech.phonemes)
        rows.append({"clip": f"{size[0]}x{size[1]} motion {amount:g} rotation {rotation}",
                     "bilabials_closed": round(closed.rate, 3), "of": closed.count, "misses": list(closed.misses),
                     "open_vowels_open": round(opened.rate, 3), "of_vowels": opened.count})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="source clip length")
    ap.add_argument("--speech", type=float, default=10.0, help="speech length (longer than the clip: it loops)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--presets", default="ultrafast,veryfast", help="x264 presets (ultrafast: what clip renders use)")
    ap.add_argument("--lipsync", action="store_true", help="measure rendered lip sync instead of speed")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="video-avatar-bench-"))
    if args.lipsync:
        try:
            print(json.dumps(lipsync(tmp), indent=2))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        t = time.perf_counter()
        make_clip(tmp / "presenter.mp4", args.seconds, size=(1280, 720), scale=3.2, seed=1)
        make_s = time.perf_counter() - t
        from pipeline.face.clip import manifest_of, prepare_clip

        prepare_clip(tmp / "presenter.mp4", 25.0)  # warm the models (FaceMesh load) outside the timing
        prep = []
        for r in range(args.repeat):
            os.environ["AVATAR_STUDIO_CACHE"] = str(tmp / f"cache{r}")
            t = time.perf_counter()
            avatar = prepare_clip(tmp / "presenter.mp4", 25.0)
            prep.append(time.perf_counter() - t)
        t = time.perf_counter()
        prepare_clip(tmp / "presenter.mp4", 25.0)
        cached_s = time.perf_counter() - t
        manifest = manifest_of(avatar.clip)  # type: ignore[arg-type]
        speech = speech_of(args.speech)
        ropts = RenderOptions()
        presets = args.presets.split(",")

        def timed(fn) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            n = fn()
            return n / (time.perf_counter() - wall), (time.process_time() - cpu) * 1000.0 / n

        runs: dict[str, list[tuple[float, float]]] = {"engine": []}
        sizes: dict[str, int] = {}
        frames: list[np.ndarray] = []
        for _ in range(args.repeat):
            for p in presets:
                eopts = ExportOptions(preset=p)  # type: ignore[arg-type]
                out_path = tmp / f"e2e-{p}.mp4"
                runs.setdefault(f"file_{p}", []).append(
                    timed(lambda: pipeline.render_to_file(avatar, speech, out_path, ropts, eopts).frames))
                sizes[p] = out_path.stat().st_size

            def engine() -> int:
                frames[:] = list(pipeline.RenderSession(avatar, speech, ropts).frames())
                return len(frames)

            runs["engine"].append(timed(engine))
            for p in presets:
                eopts = ExportOptions(preset=p)  # type: ignore[arg-type]
                wall, cpu = time.perf_counter(), time.process_time()
                encode_only_fps(frames, tmp / "enc.mp4", ropts.fps, speech.audio, eopts)
                runs.setdefault(f"encode_{p}", []).append(
                    (len(frames) / (time.perf_counter() - wall), (time.process_time() - cpu) * 1000.0 / len(frames)))
        out = {
            "cpu_cores": os.cpu_count(),
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "clip": f"{args.seconds:g} s synthetic VFR 1280x720 H.264 ({manifest['source']['frames']} frames)",
            "clip_written_s": round(make_s, 2),
            "prepare_s_median": round(statistics.median(prep), 2),
            "prepare_s_runs": [round(p, 2) for p in prep],
            "prepare_cached_s": round(cached_s, 3),
            "speech_s": round(speech.duration, 2),
            "frames": len(frames),
            "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
            "runs": args.repeat,
        }
        for key, values in runs.items():
            out[f"{key}_fps_median"] = round(statistics.median(v[0] for v in values), 1)
            out[f"{key}_fps_runs"] = [round(v[0], 1) for v in values]
            out[f"{key}_cpu_ms_per_frame_median"] = round(statistics.median(v[1] for v in values), 2)
        for p, size in sizes.items():
            out[f"file_{p}_bytes"] = size
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
