"""Cost of background work on a photo avatar: end-to-end render fps with and without it,
interleaved runs in one process, medians and ratios.

    python bench/background_speed.py [--seconds 10] [--repeat 3]

Pairs compared (same speech, same size): MP4 keep vs MP4 colour / blur / image, and
WebM keep vs WebM transparent (alpha). Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_speed import speech_of  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from PIL import Image
    from skimage import data

    tmp = Path(tempfile.mkdtemp())
    bg_img = tmp / "bg.png"
    Image.fromarray(np.asarray(data.coffee())).resize((512, 512)).save(bg_img)
    avatar = pipeline.prepare_avatar(data.astronaut())
    speech = speech_of(args.seconds)
    pipeline.person_matte(avatar)  # once per photo; not part of the per-render cost
    cases = {
        "mp4_keep": (ExportOptions(), BackgroundOptions()),
        "mp4_color": (ExportOptions(), BackgroundOptions(mode="color")),
        "mp4_blur": (ExportOptions(), BackgroundOptions(mode="blur")),
        "mp4_image": (ExportOptions(), BackgroundOptions(mode="image", image=str(bg_img))),
        "webm_keep": (ExportOptions(format="webm"), BackgroundOptions()),
        "webm_transparent": (ExportOptions(format="webm", alpha=True), BackgroundOptions(mode="transparent")),
    }
    fps: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeat):
        for name, (ex, bg) in cases.items():
            t = time.perf_counter()
            res = pipeline.render_to_file(avatar, speech, tmp / f"{name}.{ex.format}", RenderOptions(), ex, background=bg)
            fps[name].append(res.frames / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in fps.items()}
    out = {f"{k}_fps": round(v, 1) for k, v in med.items()}
    for k in ("mp4_color", "mp4_blur", "mp4_image"):
        out[f"{k}_vs_keep"] = round(med[k] / med["mp4_keep"], 3)
    out["webm_transparent_vs_keep"] = round(med["webm_transparent"] / med["webm_keep"], 3)
    out["runs"] = args.repeat
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
