"""Subtitles from the script: word timing -> cues -> SRT / WebVTT files, or burned into frames.

Word times, best first:
1. ``Speech.words`` (forced alignment). Their text is replaced by the script's own words
   (case, punctuation) when the script has the same number of words.
2. ``Speech.phonemes``: the script's words laid over the spoken runs between pauses. Piper
   and espeak mark every word boundary with a pause phone, so usually there is one run per
   word and each word gets its run's exact span; when TTS joined or split words (``I am``,
   ``1990``) the words are matched to runs by dynamic programming (``align_to_runs``).
3. Neither: the words spread in proportion to their length over the voiced parts of the
   audio (20 ms energy frames louder than 5 % of the loudest), pauses skipped.

Cues (broadcast-style rules): at most 2 lines of at most 42 characters, at most 6 s, a new
cue after a sentence end (. ! ? ..., but not after "Dr." and the like) or a silence over
0.6 s. Two lines are split where they are most balanced. Each cue shows from its first word's start to its last word's end,
held for at least 1 s when the next cue leaves room; cues never overlap.

``burn_in`` draws the cue on screen at time t with OpenCV's Hershey font: white with a
black outline, centred at the bottom, sized from the frame height (ASCII only: accents
are stripped and other characters become '?'). ``SubtitledWriter`` wraps any writer to
burn in while writing, or to write the .srt/.vtt beside the output once it is complete.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from pipeline.export.base import WriterContext, remove_path, temp_path
from pipeline.types import AudioClip, Speech, Word
from pipeline.phones import PAUSE

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 42  # per line; a cue has at most two lines
MAX_CUE_S = 6.0
MIN_CUE_S = 1.0  # a cue stays at least this long when the next one leaves room
PAUSE_BREAK_S = 0.6  # a silence this long between words starts a new cue
_SENTENCE_END = re.compile(r"[.!?\u2026]['\"\u2019\u201d)\]]*$")
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "e.g.", "i.e.", "a.m.", "p.m."}
_ENERGY_FRAME_S = 0.02
_MIN_GAP_S = 0.15  # voiced spans closer than this are one span


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float  # seconds
    lines: tuple[str, ...]  # one or two lines of text

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# --------------------------------------------------------------------------- word timing


def script_words(text: str) -> list[str]:
    """The script split into words; punctuation-only tokens stick to their neighbour."""
    out: list[str] = []
    leading = ""
    for tok in text.split():
        if not re.search(r"\w", tok):
            if out:
                out[-1] += " " + tok if tok in ("-", "\u2013", "\u2014") else tok
            else:
                leading += tok
            continue
        out.append(leading + tok)
        leading = ""
    return out


def _phoneme_runs(speech: Speech) -> list[tuple[float, float, int]]:
    """Spoken runs between pause phones: (start, end, number of phones)."""
    runs: list[tuple[float, float, int]] = []
    current: list[float] | None = None
    for p in speech.phonemes or ():
        if p.symbol == PAUSE or p.end <= p.start:
            if current is not None:
                runs.append((current[0], current[1], int(current[2])))
                current = None
            continue
        if current is None:
            current = [p.start, p.end, 1]
        else:
            current[1] = p.end
            current[2] += 1
    if current is not None:
        runs.append((current[0], current[1], int(current[2])))
    return runs


def _voiced_spans(audio: AudioClip) -> list[tuple[float, float]]:
    """Spans of the audio louder than 5 % of its loudest 20 ms frame (gaps < 0.15 s merged)."""
    x = np.asarray(audio.samples, np.float32)
    hop = max(1, int(round(_ENERGY_FRAME_S * audio.rate)))
    n = len(x) // hop
    if n == 0:
        return [(0.0, audio.duration)] if audio.duration > 0 else []
    rms = np.sqrt((x[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    if rms.max() <= 0:
        return [(0.0, audio.duration)]
    voiced = rms > 0.05 * rms.max()
    spans: list[tuple[float, float]] = []
    i = 0
    while i < n:
        if voiced[i]:
            j = i
            while j < n and voiced[j]:
                j += 1
            t0, t1 = i * hop / audio.rate, j * hop / audio.rate
            if spans and t0 - spans[-1][1] < _MIN_GAP_S:
                spans[-1] = (spans[-1][0], t1)
            else:
                spans.append((t0, t1))
            i = j
        else:
            i += 1
    return spans


def spread_words(tokens: Sequence[str], spans: Sequence[tuple[float, float]]) -> list[Word]:
    """Lay ``tokens`` over the spoken ``spans``: one span each when the counts match, else by length."""
    spans = [s for s in spans if s[1] > s[0]]
    if not tokens or not spans:
        return []
    if len(spans) == len(tokens):
        return [Word(t, s0, s1) for t, (s0, s1) in zip(tokens, spans)]
    lengths = np.array([s1 - s0 for s0, s1 in spans])
    cum_span = np.concatenate([[0.0], np.cumsum(lengths)])
    weights = np.array([len(re.sub(r"\W", "", t)) + 1 for t in tokens], np.float64)
    bounds = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * cum_span[-1]

    def at(spoken: float, *, end: bool) -> float:
        """Real time of a point on the spoken time axis; on a boundary, a start belongs to the
        next span and an end to the previous one."""
        k = int(np.searchsorted(cum_span, spoken, side="left" if end else "right")) - 1
        k = min(max(k, 0), len(spans) - 1)
        return float(spans[k][0] + (spoken - cum_span[k]))

    words = []
    for i, tok in enumerate(tokens):
        start = at(bounds[i], end=False)
        words.append(Word(tok, start, max(at(bounds[i + 1], end=True), start)))
    return words


def _token_weight(token: str) -> float:
    """Expected phone count of a written word: ~0.85 per letter, ~4 per digit read out."""
    letters = len(re.findall(r"[^\W\d_]", token))
    digits = len(re.findall(r"\d", token))
    return 0.85 * letters + 4.0 * digits


_PUNCT_END = re.compile(r"[,.;:!?\u2026]['\"\u2019\u201d)\]]*$")
_PHRASE_GAP_S = 0.15  # a silence this long inside speech is a phrase break (TTS: punctuation)


def align_to_runs(tokens: Sequence[str], runs: Sequence[tuple[float, float, int]]) -> list[Word] | None:
    """Match words to spoken runs (start, end, phones) in order, allowing merges and splits.

    TTS usually speaks one run per word, but it may join words ("I am" -> one run) or split
    one ("1990" -> "nineteen hundred | ninety"). Dynamic programming pairs 1 word with 1-4
    runs or 1-4 words with 1 run per step. A step costs the log ratio of the words' expected
    phone count to the runs' phone count, 0.5 per extra item, 1.0 when a word ending in
    punctuation is not followed by a pause, 0.5 when a phrase pause follows a word without
    punctuation, and 1.0 when one word would straddle a phrase pause. Words sharing a run
    split it by expected length. None when no alignment exists.
    """
    n, m = len(tokens), len(runs)
    if n == 0 or m == 0 or n > 4 * m or m > 4 * n:
        return None
    tw = np.array([_token_weight(t) for t in tokens])
    phones = np.array([r[2] for r in runs], np.float64)
    ctw = np.concatenate([[0.0], np.cumsum(tw)])
    cph = np.concatenate([[0.0], np.cumsum(phones)])
    gap_after = [runs[j + 1][0] - runs[j][1] for j in range(m - 1)] + [1.0]
    punct = [bool(_PUNCT_END.search(t)) for t in tokens]
    inf = float("inf")
    cost = np.full((n + 1, m + 1), inf)
    back = np.zeros((n + 1, m + 1, 2), np.int64)
    cost[0, 0] = 0.0
    steps = [(1, b) for b in range(1, 5)] + [(a, 1) for a in range(2, 5)]
    for i in range(n):
        for j in range(m):
            if cost[i, j] == inf:
                continue
            for a, b in steps:
                if i + a > n or j + b > m:
                    continue
                c = abs(np.log((ctw[i + a] - ctw[i] + 0.5) / (cph[j + b] - cph[j] + 0.5))) + 0.5 * (a + b - 2)
                pause = gap_after[j + b - 1] >= _PHRASE_GAP_S
                if punct[i + a - 1] and not pause and gap_after[j + b - 1] < 0.08:
                    c += 1.0
                elif pause and not punct[i + a - 1] and j + b < m:
                    c += 0.5
                if b > 1 and max(gap_after[j : j + b - 1]) >= _PHRASE_GAP_S:
                    c += 1.0
                if cost[i, j] + c < cost[i + a, j + b]:
                    cost[i + a, j + b] = cost[i, j] + c
                    back[i + a, j + b] = (a, b)
    if cost[n, m] == inf:
        return None
    words: list[Word] = []
    i, j = n, m
    while i > 0:
        a, b = (int(v) for v in back[i, j])
        start, end = runs[j - b][0], runs[j - 1][1]
        w = tw[i - a : i] + 0.5
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
        for k in range(a - 1, -1, -1):
            words.append(Word(tokens[i - a + k], float(edges[k]), float(edges[k + 1])))
        i, j = i - a, j - b
    return words[::-1]


def timed_words(speech: Speech) -> list[Word]:
    """Words with times for ``speech`` (see the module notes for the sources, best first)."""
    tokens = script_words(speech.text)
    if speech.words:
        words = [w for w in speech.words if w.text.strip()]
        if len(tokens) == len(words):
            return [Word(t, w.start, w.end) for t, w in zip(tokens, words)]
        return words
    if not tokens:
        return []
    runs = _phoneme_runs(speech) if speech.phonemes else []
    if runs:
        spans = [(a, b) for a, b, _ in runs]
        aligned = align_to_runs(tokens, runs) if len(runs) != len(tokens) else None
        return aligned or spread_words(tokens, spans)
    return spread_words(tokens, _voiced_spans(speech.audio))


# --------------------------------------------------------------------------- cues


def _ends_sentence(word: str) -> bool:
    return bool(_SENTENCE_END.search(word)) and word.lower() not in _ABBREVIATIONS


def split_lines(words: Sequence[str], width: int = MAX_LINE_CHARS) -> tuple[str, ...] | None:
    """``words`` as one line, or two balanced lines, each at most ``width`` characters; else None."""
    one = " ".join(words)
    if len(one) <= width:
        return (one,)
    best: tuple[tuple[int, int], tuple[str, str]] | None = None
    for k in range(1, len(words)):
        a, b = " ".join(words[:k]), " ".join(words[k:])
        if len(a) <= width and len(b) <= width:
            key = (max(len(a), len(b)), 0 if len(a) <= len(b) else 1)  # balanced, bottom-heavy
            if best is None or key < best[0]:
                best = (key, (a, b))
    return best[1] if best else None


def make_cues(words: Sequence[Word], duration: float | None = None) -> list[Cue]:
    """Group timed words into cues (see the module notes for the rules)."""
    groups: list[list[Word]] = []
    for w in words:
        cur = groups[-1] if groups else None
        if cur is not None:
            prev = cur[-1]
            fits = split_lines([x.text for x in cur] + [w.text]) is not None
            if (
                _ends_sentence(prev.text)
                or w.start - prev.end > PAUSE_BREAK_S
                or w.end - cur[0].start > MAX_CUE_S
                or not fits
            ):
                cur = None
        if cur is None:
            groups.append([w])
        else:
            cur.append(w)
    cues: list[Cue] = []
    for i, g in enumerate(groups):
        start = g[0].start
        end = max(g[-1].end, start + MIN_CUE_S)
        if i + 1 < len(groups):
            end = min(end, groups[i + 1][0].start)
        if duration is not None:
            end = min(end, duration)
        end = max(end, start + 0.001)  # never an empty cue
        lines = split_lines([x.text for x in g]) or (" ".join(x.text for x in g),)
        cues.append(Cue(start, end, lines))
    return cues


def cues_from_speech(speech: Speech) -> list[Cue]:
    """Subtitle cues for ``speech``; empty when it has no script and no word times."""
    return make_cues(timed_words(speech), speech.duration or None)


# --------------------------------------------------------------------------- files


def _stamp(t: float, sep: str) -> str:
    ms = max(0, int(round(t * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{c.text}\n" for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue]) -> str:
    blocks = [f"{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n{_vtt_escape(c.text)}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _write_text(text: str, path: str | Path) -> Path:
    p = Path(path)
    tmp = temp_path(p, p.suffix)
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        remove_path(tmp)
        raise
    return p


def write_srt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write SubRip subtitles (UTF-8), atomically."""
    return _write_text(to_srt(cues), path)


def write_vtt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write WebVTT subtitles (UTF-8), atomically."""
    return _write_text(to_vtt(cues), path)


def sidecar_path(output: str | Path, kind: str) -> Path:
    """Where the subtitles of ``output`` go: ``clip.mp4`` -> ``clip.srt``, folder ``clip`` -> ``clip.srt``."""
    return Path(output).with_suffix("." + kind)


# --------------------------------------------------------------------------- burn-in

_FONT = cv2.FONT_HERSHEY_DUPLEX
_TEXT_HEIGHT = 0.05  # cap height as a share of the frame height
_MARGIN = 0.06  # bottom margin as a share of the frame height
_MAX_WIDTH = 0.94  # widest line as a share of the frame width


def _ascii(text: str) -> str:
    table = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2026": "..."}
    text = "".join(table.get(ch, ch) for ch in text)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def active_cue(cues: Sequence[Cue], t: float) -> Cue | None:
    """The cue on screen at ``t`` (start inclusive, end exclusive), or None."""
    i = bisect.bisect_right([c.start for c in cues], t) - 1
    if 0 <= i < len(cues) and cues[i].start <= t < cues[i].end:
        return cues[i]
    return None


def draw_lines(frame: np.ndarray, lines: Sequence[str]) -> None:
    """Draw ``lines`` in place: white, black outline, centred at the bottom of ``frame``."""
    h, w = frame.shape[:2]
    lines = [_ascii(s) for s in lines]
    (_, base_h), _ = cv2.getTextSize("Hg", _FONT, 1.0, 1)
    scale = _TEXT_HEIGHT * h / max(base_h, 1)
    widest = max(cv2.getTextSize(s, _FONT, scale, 1)[0][0] for s in lines)
    if widest > _MAX_WIDTH * w:
        scale *= _MAX_WIDTH * w / widest
    thick = max(1, int(round(scale * 1.5)))
    outline = thick + max(2, int(round(scale * 2.5)))
    line_h = int(round(base_h * scale * 1.45))
    white = (255,) * frame.shape[2]
    black = (0, 0, 0, 255)[: frame.shape[2]]
    y = int(round(h * (1.0 - _MARGIN)))
    for text in reversed(lines):
        tw = cv2.getTextSize(text, _FONT, scale, thick)[0][0]
        org = (int(round((w - tw) / 2)), y)
        cv2.putText(frame, text, org, _FONT, scale, black, outline, cv2.LINE_AA)
        cv2.putText(frame, text, org, _FONT, scale, white, thick, cv2.LINE_AA)
        y -= line_h


def burn_in(frame: np.ndarray, cues: Sequence[Cue], t: float) -> np.ndarray:
    """``frame`` with the cue active at ``t`` drawn on it (a copy), or ``frame`` itself when none is.

    RGBA frames get opaque text (its alpha is set to 255 where it is drawn).
    """
    cue = active_cue(cues, t)
    if cue is None:
        return frame
    out = np.array(frame, dtype=np.uint8, copy=True, order="C")
    draw_lines(out, cue.lines)
    return out


# --------------------------------------------------------------------------- writer wrapper


class SubtitledWriter(WriterContext):
    """Wraps a writer: burns cues into the frames (``mode="burn"``), or writes the .srt/.vtt
    beside the output after the output itself is complete (``mode="srt"`` / ``"vtt"``)."""

    def __init__(self, writer: Any, cues: Sequence[Cue], mode: str) -> None:
        if mode not in ("srt", "vtt", "burn"):
            raise ValueError(f"unknown subtitle mode {mode!r}")
        self.writer = writer
        self.cues = list(cues)
        self.mode = mode
        self.path: Path = writer.path
        self.subtitle_path: Path | None = sidecar_path(self.path, mode) if mode != "burn" else None

    @property
    def frames_written(self) -> int:
        return int(self.writer.frames_written)

    def write(self, frame: np.ndarray) -> None:
        if self.mode == "burn" and self.cues:
            t = float(self.writer.frames_written / self.writer.rate)
            frame = burn_in(frame, self.cues, t)
        self.writer.write(frame)

    def close(self) -> Path:
        out = self.writer.close()
        if self.subtitle_path is not None:
            (write_srt if self.mode == "srt" else write_vtt)(self.cues, self.subtitle_path)
        return Path(out)

    def abort(self) -> None:
        self.writer.abort()

