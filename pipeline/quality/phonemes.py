"""Phoneme timing files: load the timed phonemes of a recording, save them back.

Formats read (times in seconds; symbols IPA or ARPAbet, made canonical IPA with
:func:`pipeline.phones.canonical`):

* JSON: a list of ``{"phoneme"|"symbol": ..., "start": s, "end": s}`` (or ``duration``),
  of ``[start, end, symbol]`` / ``[symbol, start, end]``, or an object with a
  ``"phonemes"`` list;
* Praat TextGrid (long format, as forced aligners write it): the tier named phones;
* text columns: ``start end symbol`` (Audacity labels, TSV), ``symbol start end``, or
  onset-only ``start symbol``.

:func:`save_phonemes` writes the JSON list that :func:`load_phonemes` reads back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.errors import UnsupportedMedia
from pipeline.phones import PAUSE, canonical
from pipeline.types import Phoneme

_SYMBOL_KEYS = ("phoneme", "symbol", "phone", "label", "text", "value")
_START_KEYS = ("start", "begin", "xmin", "t0", "from")
_END_KEYS = ("end", "stop", "xmax", "t1", "to")


def _phone(symbol: str, start: float, end: float) -> Phoneme:
    sym = str(symbol).strip()
    stress = 0
    if len(sym) > 1 and sym[-1] in "012" and sym[:-1].isalpha() and sym[:-1].isupper():  # ARPAbet stress digit
        stress = int(sym[-1])
    return Phoneme(canonical(sym) if sym else PAUSE, float(start), float(end), stress)


def _first(d: dict, keys: Sequence[str]) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _from_json(data: Any, name: str) -> list[Phoneme]:
    if isinstance(data, dict):
        if "mouthCues" in data:
            raise UnsupportedMedia(
                f"{name} holds Rhubarb mouth cues (visemes), not phonemes; export phoneme times instead."
            )
        items = _first(data, ("phonemes", "phones", "segments", "items"))
        if items is None:
            raise UnsupportedMedia(f"{name}: expected a list of phonemes or a 'phonemes' key.")
        data = items
    if not isinstance(data, list):
        raise UnsupportedMedia(f"{name}: expected a JSON list of phonemes.")
    out = []
    for i, item in enumerate(data):
        try:
            if isinstance(item, dict):
                sym = _first(item, _SYMBOL_KEYS)
                start = _first(item, _START_KEYS)
                end = _first(item, _END_KEYS)
                if end is None and "duration" in item and start is not None:
                    end = float(start) + float(item["duration"])
                if sym is None or start is None or end is None:
                    raise KeyError("symbol/start/end")
                out.append(_phone(sym, start, end))
            elif isinstance(item, (list, tuple)) and len(item) >= 3:
                if isinstance(item[0], str):
                    out.append(_phone(item[0], item[1], item[2]))
                else:
                    out.append(_phone(item[2], item[0], item[1]))
            else:
                raise ValueError(repr(item)[:40])
        except (KeyError, ValueError, TypeError) as exc:
            raise UnsupportedMedia(f"{name}: phoneme {i} is not understood ({exc}).") from exc
    return out


def _from_textgrid(text: str, name: str) -> list[Phoneme]:
    """Praat TextGrid (long format, as written by forced aligners): the tier named
    phones/phonemes, else the last interval tier. Empty intervals are silence."""
    tiers = re.split(r"\n\s*item\s*\[\d+\]\s*:", text)[1:]
    interval_re = re.compile(
        r'intervals\s*\[\d+\]\s*:\s*xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*"((?:[^"]|"")*)"'
    )
    parsed = []
    for tier in tiers:
        m = re.search(r'name\s*=\s*"([^"]*)"', tier)
        if "IntervalTier" not in tier[:200]:
            continue
        rows = interval_re.findall(tier)
        parsed.append(((m.group(1) if m else "").strip().lower(), rows))
    if not parsed:
        raise UnsupportedMedia(f"{name}: no interval tier found (only long-format TextGrids are read).")
    chosen = next((rows for tier_name, rows in parsed if tier_name in ("phones", "phonemes", "phone")), parsed[-1][1])
    return [_phone(t.replace('""', '"'), a, b) for a, b, t in chosen]


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _from_lines(text: str, name: str) -> list[Phoneme]:
    """Whitespace/tab columns: ``start end symbol`` (Audacity labels), ``symbol start end``,
    or onset-only ``start symbol`` (each phone ends where the next starts; the last lasts
    the median phone length). '#' comments, blank lines and a header line are skipped."""
    full: list[Phoneme] = []
    onsets: list[tuple[float, str]] = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tok = line.split()
        if len(tok) >= 2 and _is_float(tok[0]) and _is_float(tok[1]):
            full.append(_phone(tok[2] if len(tok) > 2 else "", tok[0], tok[1]))
        elif len(tok) >= 3 and _is_float(tok[1]) and _is_float(tok[2]):
            full.append(_phone(tok[0], tok[1], tok[2]))
        elif len(tok) == 2 and _is_float(tok[0]):
            onsets.append((float(tok[0]), tok[1]))
        elif not full and not onsets:
            continue  # a header line
        else:
            raise UnsupportedMedia(f"{name} line {no}: expected 'start end symbol', got {line[:40]!r}.")
    if full and onsets:
        raise UnsupportedMedia(f"{name}: mixes 'start end symbol' and 'start symbol' lines.")
    if onsets:
        onsets.sort()
        ends = [b for (b, _) in onsets[1:]]
        lengths = [b - a for (a, _), b in zip(onsets, ends) if b > a]
        ends.append(onsets[-1][0] + (float(np.median(lengths)) if lengths else 0.1))
        full = [_phone(sym, a, e) for (a, sym), e in zip(onsets, ends)]
    return full


def load_phonemes(path: str | Path) -> list[Phoneme]:
    """Read timed phonemes from a file; symbols become canonical IPA (ARPAbet accepted).

    Formats: JSON (a list of ``{"phoneme"|"symbol": ..., "start": s, "end": s}``, of
    ``[start, end, symbol]``, or an object with a ``"phonemes"`` list), Praat TextGrid
    (long format; tier "phones"), and text columns (see ``_from_lines``). Times in seconds.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnsupportedMedia(f"Cannot read the phoneme file {p.name} ({exc}).") from exc
    head = text.lstrip()[:64]
    if p.suffix.lower() == ".json" or head[:1] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnsupportedMedia(f"{p.name} is not valid JSON ({exc}).") from exc
        phones = _from_json(data, p.name)
    elif "ooTextFile" in head or p.suffix.lower() == ".textgrid":
        phones = _from_textgrid(text, p.name)
    else:
        phones = _from_lines(text, p.name)
    phones = [ph for ph in phones if ph.end > ph.start]
    if not phones:
        raise UnsupportedMedia(f"{p.name} contains no timed phonemes.")
    return sorted(phones, key=lambda ph: ph.start)


def save_phonemes(phonemes: Sequence[Phoneme], path: str | Path) -> None:
    """Write phonemes as JSON that :func:`load_phonemes` reads back."""
    rows = [{"phoneme": p.symbol, "start": round(p.start, 6), "end": round(p.end, 6)} for p in phonemes]
    Path(path).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


__all__ = ["load_phonemes", "save_phonemes"]
