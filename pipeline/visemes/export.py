"""Viseme timelines as files: our per-frame mouth poses (JSON/TSV) and Rhubarb Lip Sync
compatible mouth shapes (A-H, X) in Rhubarb's JSON (``-f json``) and TSV layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pipeline.types import MOUTH_CHANNELS, Phoneme, Speech, Tracks
from pipeline.phones import PAUSE, classify

Format = Literal["json", "tsv", "rhubarb", "rhubarb-tsv"]

# Rhubarb's basic shapes: A closed (p b m), B clenched/slightly open (most consonants,
# ee), C open (eh, ae), D wide open (aa), E rounded (ao, er), F puckered (oo, w),
# G f/v, H tongue up (l), X idle.
_SHAPE_BY_SYMBOL = {
    "p": "A", "b": "A", "m": "A",
    "f": "G", "v": "G",
    "l": "H",
    "w": "F", "u": "F", "ʊ": "F", "o": "F", "y": "F",
    "ɔ": "E", "ɜ": "E", "ɚ": "E", "ɹ": "E", "ø": "E", "œ": "E", "ʃ": "B", "ʒ": "B",
    "ɑ": "D", "a": "D", "æ": "D", "ɒ": "D",
    "ʌ": "C", "ɐ": "C", "ə": "C", "ɛ": "C", "e": "C",
    "i": "B", "ɪ": "B", "ɨ": "B",
}
MIN_CUE = 0.04  # s; shorter cues are merged into a neighbour (except closures)


def shape_of(p: Phoneme) -> str:
    if p.symbol == PAUSE:
        return "X"
    if p.symbol in _SHAPE_BY_SYMBOL:
        return _SHAPE_BY_SYMBOL[p.symbol]
    cls = classify(p.symbol)
    if cls.kind == "vowel":
        return "C"
    return "B"


def rhubarb_cues(speech: Speech) -> list[dict]:
    """Mouth cues ``{"start", "end", "value"}`` covering the whole clip."""
    if not speech.phonemes:
        raise ValueError("rhubarb cues need phoneme times")
    cues: list[list] = []
    for p in speech.phonemes:
        shape = shape_of(p)
        if cues and cues[-1][2] == shape:
            cues[-1][1] = p.end
        else:
            cues.append([p.start, p.end, shape])
    # merge very short cues (not closures) into the previous one
    merged: list[list] = []
    for c in cues:
        if merged and c[1] - c[0] < MIN_CUE and c[2] not in ("A", "X"):
            merged[-1][1] = c[1]
        elif merged and merged[-1][2] == c[2]:
            merged[-1][1] = c[1]
        else:
            merged.append(c)
    if merged and merged[-1][1] < speech.duration:
        merged.append([merged[-1][1], speech.duration, "X"])
    return [{"start": round(a, 2), "end": round(b, 2), "value": v} for a, b, v in merged if b > a]


def write(speech: Speech, tracks: Tracks, path: str | Path, fmt: Format, sound_file: str = "") -> Path:
    """Write the timeline in ``fmt`` to ``path`` (atomically)."""
    path = Path(path)
    if fmt == "json":
        body = json.dumps(
            {
                "fps": tracks.fps,
                "frames": tracks.n_frames,
                "duration": speech.duration,
                "timing": speech.source,
                "channels": {c: [round(float(v), 4) for v in tracks.get(c)] for c in MOUTH_CHANNELS},
                "phonemes": [
                    {"phoneme": p.symbol, "start": round(p.start, 4), "end": round(p.end, 4)}
                    for p in (speech.phonemes or ())
                ],
            }
        )
    elif fmt == "tsv":
        rows = ["time\t" + "\t".join(MOUTH_CHANNELS)]
        times = tracks.times()
        for i in range(tracks.n_frames):
            rows.append(f"{times[i]:.4f}\t" + "\t".join(f"{float(tracks.get(c)[i]):.4f}" for c in MOUTH_CHANNELS))
        body = "\n".join(rows) + "\n"
    elif fmt == "rhubarb":
        body = json.dumps(
            {
                "metadata": {"soundFile": sound_file, "duration": round(speech.duration, 2)},
                "mouthCues": rhubarb_cues(speech),
            },
            indent=2,
        )
    elif fmt == "rhubarb-tsv":
        cues = rhubarb_cues(speech)
        body = "".join(f"{c['start']:.2f}\t{c['value']}\n" for c in cues)
        if cues:
            body += f"{cues[-1]['end']:.2f}\tX\n"
    else:
        raise ValueError(f"unknown format {fmt!r}")
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(body)
    tmp.replace(path)
    return path
