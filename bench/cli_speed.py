"""Whole-CLI render speed, process start included, next to references measured in the same run.

    python bench/cli_speed.py [--seconds 60] [--repeat 3] [--cases tts,recording,4k]

Cases (each a fresh `python launch.py render ...` process, timed from spawn to exit):
- tts: a ~60 s script spoken by the bundled Piper voice, 512x512 MP4;
- recording: the same speech as a WAV without transcript (timing per segment), 512x512 MP4;
- 4k: a 4096x4096 photo saying 2 s of speech at the default output size (and at --size 3840).
References in the same run: x264 encode-only of 512x512 frames (the same encoder settings),
and the bare process start (`python launch.py --help`). Prints JSON with medians. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SENTENCES = [
    "Welcome to Avatar Studio, where a single photo becomes a presenter.",
    "Peter bought a bamboo map for Bob, and maybe a bottle of maple syrup.",
    "Type a script, pick a voice, and the lips follow every word you write.",
    "My mother made some lemon pie by the pool before the party began.",
    "Batch rendering turns one spreadsheet of scripts into fifty short videos.",
]


def script(seconds: float) -> str:
    words_per_second = 2.6
    text, n = [], 0
    while n < seconds * words_per_second:
        s = SENTENCES[len(text) % len(SENTENCES)]
        text.append(s)
        n += len(s.split())
    return " ".join(text)


def run_cli(args: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2", "PATH": "/usr/bin:/bin"})
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"launch.py {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def frames_of(path: Path) -> int:
    import pipeline.export as export

    return int(export.probe(path)["frames"])


def encode_only(frames: list[np.ndarray], audio, out: Path) -> float:
    from pipeline.export import open_writer

    h, w = frames[0].shape[:2]
    t = time.perf_counter()
    with open_writer(out, w, h, 25.0, audio) as wr:
        for f in frames:
            wr.write(f)
    return len(frames) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default="tts,recording,4k")
    args = ap.parse_args()
    cases = args.cases.split(",")
    from PIL import Image
    from skimage import data

    import pipeline
    from pipeline.media.audio import save_wav

    tmp = Path(tempfile.mkdtemp(prefix="cli-speed-"))
    face = tmp / "face.png"
    Image.fromarray(data.astronaut()).save(face)
    text = script(args.seconds)
    speech = pipeline.synthesize(text)
    wav = save_wav(speech.audio, tmp / "speech.wav")
    out: dict = {"audio_seconds": round(speech.duration, 1)}
    runs: dict[str, list[float]] = {c: [] for c in ["start", *cases]}
    fps: dict[str, list[float]] = {c: [] for c in cases}
    # plain RGB copies: the reference includes the RGB -> YUV conversion (as on earlier days; the render's
    # own frames now carry their I420 and skip most of it)
    frames = [np.array(f) for f in pipeline.RenderSession(pipeline.prepare_avatar(str(face)), speech).frames()]
    enc = []
    if "4k" in cases:
        big = tmp / "face4k.png"
        Image.fromarray(data.astronaut()).resize((4096, 4096), Image.LANCZOS).save(big)
        short = tmp / "short.wav"
        from pipeline.types import AudioClip

        save_wav(AudioClip(speech.audio.samples[: 2 * speech.audio.rate], speech.audio.rate), short)
        fps["4k_size3840"] = []
    for _ in range(args.repeat):
        runs["start"].append(run_cli(["--help"])[0])
        enc.append(encode_only(frames, speech.audio, tmp / "enc.mp4"))
        if "tts" in cases:
            s, _ = run_cli(["render", "--avatar", str(face), "--text", text, "--out", str(tmp / "tts.mp4")])
            runs["tts"].append(s)
            fps["tts"].append(frames_of(tmp / "tts.mp4") / s)
        if "recording" in cases:
            s, _ = run_cli(["render", "--avatar", str(face), "--audio", str(wav), "--out", str(tmp / "rec.mp4")])
            runs["recording"].append(s)
            fps["recording"].append(frames_of(tmp / "rec.mp4") / s)
        if "4k" in cases:
            s, _ = run_cli(["render", "--avatar", str(big), "--audio", str(short), "--timing", "acoustic",
                            "--out", str(tmp / "big.mp4")])
            runs["4k"].append(s)
            fps["4k"].append(frames_of(tmp / "big.mp4") / s)
            s2, _ = run_cli(["render", "--avatar", str(big), "--audio", str(short), "--timing", "acoustic",
                             "--size", "3840", "--out", str(tmp / "big3840.mp4")])
            fps["4k_size3840"].append(frames_of(tmp / "big3840.mp4") / s2)
    out["process_start_s_median"] = round(statistics.median(runs["start"]), 2)
    out["encode_only_512_fps_median"] = round(statistics.median(enc), 1)
    for c in cases:
        out[f"{c}_wall_s_median"] = round(statistics.median(runs[c]), 2)
    for c, v in fps.items():
        out[f"{c}_fps_overall_median"] = round(statistics.median(v), 1)
    if "4k" in cases:
        info = pipeline.export.probe(tmp / "big.mp4")
        out["4k_default_output"] = f"{info['width']}x{info['height']}"
    out["runs"] = args.repeat
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
