"""Speed of phoneme timing for recorded speech (pocketsphinx), on a ~60 s clip.

    python bench/align_speed.py [--seconds 60]

Prints JSON: seconds of audio, pocketsphinx forced alignment and alignment by espeak-ng
synthesis (with the transcript), recognition (without), and the real-time factors. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.speech import align  # noqa: E402
from pipeline.speech.dtw import align_by_synthesis  # noqa: E402
from pipeline.types import AudioClip  # noqa: E402

SENTENCES = [
    "Peter bought a bamboo map for Bob.",
    "My mother made some lemon pie by the pool.",
    "Please pass the apples, Mom, and maybe a bottle of water.",
    "Somebody poured the maple syrup on my pancakes.",
    "Anyone can paint a happy path across the barn.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    pieces, words = [], []
    total = 0.0
    i = 0
    while total < args.seconds:
        s = pipeline.synthesize(SENTENCES[i % len(SENTENCES)] + " " * (i // len(SENTENCES)))
        pieces.append(s.audio.samples)
        words.append(s.text)
        total += s.duration
        i += 1
    rate = s.audio.rate
    clip = AudioClip(np.concatenate(pieces), rate)
    t = time.perf_counter()
    phones, _ = align.align(clip, " ".join(words))
    t_align = time.perf_counter() - t
    t = time.perf_counter()
    synth_phones, _ = align_by_synthesis(clip, " ".join(words))
    t_synth = time.perf_counter() - t
    t = time.perf_counter()
    rec = align.recognize(clip)
    t_rec = time.perf_counter() - t
    print(json.dumps({
        "audio_seconds": round(clip.duration, 1),
        "align_seconds": round(t_align, 2),
        "align_realtime_factor": round(t_align / clip.duration, 3),
        "synth_align_seconds": round(t_synth, 2),
        "synth_align_realtime_factor": round(t_synth / clip.duration, 3),
        "recognize_seconds": round(t_rec, 2),
        "recognize_realtime_factor": round(t_rec / clip.duration, 3),
        "aligned_phones": len(phones),
        "recognised_phones": len(rec),
    }, indent=2))


if __name__ == "__main__":
    main()
