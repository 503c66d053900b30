"""Timing accuracy of each speech path against exact phoneme times, engine-independent.

Truth: synthetic voices whose phoneme times are known exactly (Piper's alignment output,
espeak-ng's phoneme events). Each clip's audio is timed again by a path that did not
make it (pocketsphinx forced alignment or alignment by espeak-ng synthesis with the
transcript, and "auto" choosing between them; recognition without it, per speech
segment as ``load_speech`` does it now and over the whole file as it was done before;
the acoustic estimate; note that alignment by synthesis of an espeak-ng clip
re-synthesises with the same engine, so that row is optimistic), the viseme chain turns
that timing into per-frame mouth openings, and those are scored with pipeline.quality's
metrics against the truth (the planned lip gap stands in for the gap FaceMesh would
measure: 0.35 x gap of the mouth width).

    python bench/lipsync_accuracy.py [--fps 25] [--voices all|main] [--long 60]

Rows "<voice>/<path>" for Piper and espeak-ng en-us (every path), then, without a
transcript only, "no_text/<voice>" for more synthetic voices: Piper at three speeds and
espeak-ng English accents, voice variants and speeds ("unseen": variants the closure
classifier never trained on), pooled in "no_text/ALL", "no_text/espeak", ... for the
segment path and the old whole-file path. ``--long`` adds one clip of that many seconds
per main voice (sentences back to back, 0.3 s apart).

Per row: bilabial closure rate, open-vowel rate, silence closed (frames inside pauses of
at least 0.12 s, 40 ms in from each end), vowels shown closed (at their middle frame) and
other consonants shown closed (false closures), median |AV offset| (ms).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.options import RenderOptions, VoiceOptions  # noqa: E402
from pipeline.phones import PAUSE  # noqa: E402
from pipeline.quality.measure import MouthTrack, planned_track  # noqa: E402
from pipeline.quality.metrics import av_offset, bilabial_closure, normalize, open_vowel_rate  # noqa: E402
from pipeline.types import AudioClip, Phoneme, Speech  # noqa: E402

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
# more synthetic voices for the paths without a transcript: "piper@speed" or an
# espeak-ng voice file name with an optional +variant and @speed
NO_TEXT_VOICES = [
    "piper", "piper@0.8", "piper@1.25",
    "en-US", "en", "en-GB-scotland", "en-029", "en-GB-x-rp", "en-US-nyc", "en-GB-x-gbclan",
    "en-US+f3", "en-US+m3", "en+f2", "en+klatt", "en-US+m1", "en-GB-scotland+Annie",
    "en-US@0.8", "en-US@1.3", "en+f5@1.15", "en-029+m4@0.9",
    # unseen: variants and an accent the closure classifier was not trained on
    "en-US+m7", "en+f4", "en-US+klatt2", "en+Andrea", "en-GB-x-gbcwmd", "en-GB-x-gbcwmd+steph3@1.2",
]  # fmt: skip
UNSEEN = ("m7", "f4", "klatt2", "Andrea", "gbcwmd", "steph3")
VOWEL_CHARS = set("aeiouæɑɒɔəɐɛɜɪʊʌɚᵻ")
LONG_PAUSE = 0.12


def speak(voice: str, text: str) -> Speech:
    """Truth speech for a NO_TEXT_VOICES entry."""
    from pipeline.speech.bilabial_train import speak_espeak

    name, _, sp = voice.partition("@")
    speed = float(sp) if sp else 1.0
    if name == "piper":
        return pipeline.synthesize(text, VoiceOptions(speed=speed))
    return speak_espeak(text, name, speed)


def track_of(speech: Speech, fps: float) -> MouthTrack:
    return planned_track(pipeline.plan(speech, RenderOptions(fps=fps, blinks=False, head_motion=0.0, brows=0.0)))


def score(track: MouthTrack, truth: tuple[Phoneme, ...], fps: float, level: float = 0.01) -> dict:
    """Counts for one clip (summed over clips by :func:`pool`)."""
    c = bilabial_closure(track, truth, level=level)
    o = open_vowel_rate(track, truth, level=0.1)
    off = av_offset(track, truth)
    centres = track.times + 0.5 / fps
    g = track.gap
    sil = [0, 0]
    vow = [0, 0]
    cons = [0, 0]
    for p in normalize(truth):
        if p.symbol == PAUSE:
            if p.end - p.start >= LONG_PAUSE:
                inner = (centres >= p.start + 0.04) & (centres < p.end - 0.04)
                sil[0] += int((g[inner] <= level).sum())
                sil[1] += int(inner.sum())
            continue
        if p.symbol in ("p", "b", "m"):
            continue
        closed = bool(g[int(np.argmin(np.abs(centres - 0.5 * (p.start + p.end))))] <= level)
        bucket = vow if VOWEL_CHARS & set(p.symbol) else cons
        bucket[0] += closed
        bucket[1] += 1
    return {
        "closed": [c.count - len(c.misses), c.count],
        "open": [o.count - len(o.misses), o.count],
        "silence": sil,
        "vowels_closed": vow,
        "consonants_closed": cons,
        "offset": [off.ms] if off is not None and off.ms is not None else [],
        "missed": [m.split("@")[0] for m in c.misses],
    }


def pool(rows: list[dict], sources: list[str] | None = None) -> dict:
    def rate(k: str) -> float | None:
        a, b = sum(r[k][0] for r in rows), sum(r[k][1] for r in rows)
        return round(a / b, 3) if b else None

    offs = [o for r in rows for o in r["offset"]]
    missed = [m for r in rows for m in r["missed"]]
    out = {
        "bilabial_closure": rate("closed"),
        "open_vowels": rate("open"),
        "silence_closed": rate("silence"),
        "vowels_shown_closed": rate("vowels_closed"),
        "consonants_shown_closed": rate("consonants_closed"),
        "median_abs_offset_ms": round(statistics.median(np.abs(offs)), 1) if offs else None,
        "median_offset_ms": round(statistics.median(offs), 1) if offs else None,
        "n_bilabials": sum(r["closed"][1] for r in rows),
        "n_open_vowels": sum(r["open"][1] for r in rows),
        "missed": {s: missed.count(s) for s in "pbm"},
    }
    if sources is not None:
        out["timing_used"] = sorted(set(sources))
    return out


def no_text_paths(clip: AudioClip) -> dict[str, Speech]:
    """The two ways of timing a recording without a transcript."""
    from pipeline.media.audio import normalize_loudness
    from pipeline.speech import align, recording
    from pipeline.visemes.acoustic import add_dip_closures, gate_phonemes

    clip = normalize_loudness(clip)
    seg = recording.time_clip(clip, timing="phones")
    whole = Speech(clip, add_dip_closures(gate_phonemes(align.recognize(clip), clip), clip), source="phones")
    return {"segments": seg, "whole_file": whole}


def concat(parts: list[Speech], gap: float = 0.3) -> Speech:
    rate = parts[0].audio.rate
    audio, phones, t = [], [], 0.0
    for s in parts:
        audio += [s.audio.samples, np.zeros(int(round(gap * rate)), np.float32)]
        phones += [Phoneme(p.symbol, p.start + t, p.end + t, p.stress) for p in s.phonemes or ()]
        t += s.duration
        phones.append(Phoneme(PAUSE, t, t + gap))
        t += gap
    return Speech(AudioClip(np.concatenate(audio), rate), tuple(phones))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--voices", choices=("all", "main"), default="all", help="main: only the two main voices")
    ap.add_argument("--long", type=float, default=0.0, help="also time one clip of this many seconds per main voice")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from pipeline.media.audio import save_wav

    results: dict[str, dict[str, list]] = {}
    for vname, vopts in VOICES.items():
        for text in SENTENCES:
            truth = pipeline.synthesize(text, vopts)
            wav = save_wav(truth.audio, Path("/tmp") / f"acc_{vname}.wav")
            nt = no_text_paths(truth.audio)
            paths = {
                "engine_timing": truth,
                "auto_with_text": pipeline.load_speech(wav, text=text),
                "align_with_text": pipeline.load_speech(wav, text=text, timing="align"),
                "synth_with_text": pipeline.load_speech(wav, text=text, timing="synth"),
                "recognise_no_text": pipeline.load_speech(wav, timing="phones"),
                "recognise_no_text_whole_file": nt["whole_file"],
                "acoustic": pipeline.load_speech(wav, timing="acoustic"),
            }
            for pname, sp in paths.items():
                r = results.setdefault(f"{vname}/{pname}", {"rows": [], "source": []})
                r["rows"].append(score(track_of(sp, args.fps), truth.phonemes, args.fps))
                r["source"].append(sp.source)
    out = {key: pool(r["rows"], r["source"]) for key, r in results.items()}

    if args.voices == "all":
        groups: dict[str, dict[str, list]] = {}
        for voice in NO_TEXT_VOICES:
            per: dict[str, list] = {"segments": [], "whole_file": []}
            for text in SENTENCES:
                truth = speak(voice, text)
                for pname, sp in no_text_paths(truth.audio).items():
                    per[pname].append(score(track_of(sp, args.fps), truth.phonemes, args.fps))
            out[f"no_text/{voice}"] = {p: pool(rows) for p, rows in per.items()}
            kinds = ["ALL", "piper" if voice.startswith("piper") else "espeak"]
            if any(u in voice for u in UNSEEN):
                kinds.append("espeak_unseen")
            for k in kinds:
                for p, rows in per.items():
                    groups.setdefault(k, {}).setdefault(p, []).extend(rows)
        for k, per in groups.items():
            out[f"no_text/{k}"] = {p: pool(rows) for p, rows in per.items()}

    if args.long > 0:
        for vname, vopts in VOICES.items():
            parts, total, i = [], 0.0, 0
            while total < args.long:
                s = pipeline.synthesize(SENTENCES[i % len(SENTENCES)], vopts)
                parts.append(s)
                total += s.duration + 0.3
                i += 1
            truth = concat(parts)
            out[f"long_{args.long:.0f}s/{vname}"] = {
                p: pool([score(track_of(sp, args.fps), truth.phonemes, args.fps)])
                for p, sp in no_text_paths(truth.audio).items()
            }
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
