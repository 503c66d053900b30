"""Timing accuracy of each speech path against exact phoneme times, engine-independent.

Truth: synthetic voices whose phoneme times are known exactly (Piper's alignment output,
espeak-ng's phoneme events). Each clip's audio is timed again by a path that did not
make it (pocketsphinx forced alignment or alignment by espeak-ng synthesis with the
transcript, and "auto" choosing between them; recognition without it; the acoustic
estimate; note that alignment by synthesis of an espeak-ng clip re-synthesises with the
same engine, so that row is optimistic), the viseme chain turns that timing into per-frame mouth openings, and those
are scored with pipeline.quality's metrics against the truth (the planned lip gap
stands in for the gap FaceMesh would measure: 0.35 x gap of the mouth width).

    python bench/lipsync_accuracy.py [--fps 25]

Prints JSON per path: bilabial closure rate, open-vowel rate, median |AV offset| (ms).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.options import RenderOptions, VoiceOptions  # noqa: E402
from pipeline.quality.measure import MouthTrack, STABLE_POINTS  # noqa: E402
from pipeline.quality.metrics import av_offset, bilabial_closure, open_vowel_rate  # noqa: E402
from pipeline.types import Speech  # noqa: E402

SENTENCES = [
    "Peter bought a bamboo map for Bob.",
    "My mother made some lemon pie by the pool.",
    "The cat sat on a mat and laughed at the big black bat.",
    "Please pass the apples, Mom, and maybe a bottle of water.",
    "Bring me the blue bump map, baby.",
    "Somebody poured the maple syrup on my pancakes.",
    "Anyone can paint a happy path across the barn.",
    "I'd like a bigger plate of pasta, please, with some bread.",
]
VOICES = {"piper": VoiceOptions(), "espeak": VoiceOptions(voice="espeak:en-us")}


def track_of(speech: Speech, fps: float) -> MouthTrack:
    tr = pipeline.plan(speech, RenderOptions(fps=fps, blinks=False, head_motion=0.0, brows=0.0))
    n = tr.n_frames
    times = tr.times()
    gap = 0.35 * tr.get("gap").astype(np.float64)
    return MouthTrack(
        times=times,
        gap=gap,
        stable=np.zeros((n, len(STABLE_POINTS), 2), np.float32),
        mouth_width=np.full(n, 100.0),
        size=(512, 512),
        end=n / fps,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args()
    results: dict[str, dict[str, list]] = {}
    for vname, vopts in VOICES.items():
        for text in SENTENCES:
            truth = pipeline.synthesize(text, vopts)
            from pipeline.media.audio import save_wav

            wav = save_wav(truth.audio, Path("/tmp") / f"acc_{vname}.wav")
            paths = {
                "engine_timing": truth,
                "auto_with_text": pipeline.load_speech(wav, text=text),
                "align_with_text": pipeline.load_speech(wav, text=text, timing="align"),
                "synth_with_text": pipeline.load_speech(wav, text=text, timing="synth"),
                "recognise_no_text": pipeline.load_speech(wav, timing="phones"),
                "acoustic": pipeline.load_speech(wav, timing="acoustic"),
            }
            for pname, sp in paths.items():
                tr = track_of(sp, args.fps)
                r = results.setdefault(f"{vname}/{pname}", {"closed": [], "open": [], "offset": [], "source": []})
                c = bilabial_closure(tr, truth.phonemes, level=0.01)
                o = open_vowel_rate(tr, truth.phonemes, level=0.1)
                r["closed"] += [c.count - len(c.misses), c.count]
                r["open"] += [o.count - len(o.misses), o.count]
                off = av_offset(tr, truth.phonemes)
                if off is not None and off.ms is not None:
                    r["offset"].append(off.ms)
                r["source"].append(sp.source)
    out = {}
    for key, r in results.items():
        ch, ct = sum(r["closed"][0::2]), sum(r["closed"][1::2])
        oh, ot = sum(r["open"][0::2]), sum(r["open"][1::2])
        out[key] = {
            "bilabial_closure": round(ch / max(ct, 1), 3),
            "open_vowels": round(oh / max(ot, 1), 3),
            "median_abs_offset_ms": round(statistics.median(np.abs(r["offset"])), 1) if r["offset"] else None,
            "median_offset_ms": round(statistics.median(r["offset"]), 1) if r["offset"] else None,
            "n_bilabials": ct,
            "n_open_vowels": ot,
            "timing_used": sorted(set(r["source"])),
        }
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
