"""Phone timing of a recording, one speech segment at a time, segments in parallel.

:func:`iter_segments` cuts the recording at its pauses (:mod:`pipeline.speech.segments`),
times each segment on its own and yields it as soon as it is timed, in order, so a
streaming consumer can start after the first one. :func:`join` turns the segments back
into one phone sequence for the whole recording (phone times are absolute, the silence
between segments becomes pauses).

Without a transcript (English), each segment is timed by
:func:`pipeline.speech.segment_phones.time_segment` (phone recognition corrected by the
closure classifier), on a persistent pool of worker processes
(:mod:`pipeline.speech.workers`); serially when there is one segment or one core, and
in the calling process while the workers are still starting. Other languages (and
"acoustic") have no phones: their segments carry None and the acoustic estimate animates.

With a transcript, the words cannot be split across segments without first knowing
where they are, so the whole recording is aligned at once (forced alignment and/or
alignment by synthesis, as :mod:`pipeline.speech.recording` chooses) and the result is
cut at the segment boundaries.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from pipeline.phones import PAUSE
from pipeline.speech import segment_phones
from pipeline.speech import segments as seg
from pipeline.types import AudioClip, Phoneme, Word

log = logging.getLogger(__name__)

SR = 16000  # analysis rate
IN_FLIGHT_PER_WORKER = 3  # segments queued ahead per worker (bounds memory, allows stopping early)


@dataclass(frozen=True)
class TimedSegment:
    """One timed stretch of the recording. Times are seconds from the start of the
    recording; ``phonemes`` covers [start, end] (None: unknown, use the acoustic path)."""

    start: float
    end: float
    phonemes: tuple[Phoneme, ...] | None
    words: tuple[Word, ...] = ()
    source: str = ""  # "phones", "acoustic", "align", "synth"


def _offset(phones: Iterable[Phoneme], t0: float, start: float, end: float) -> tuple[Phoneme, ...]:
    """Phones shifted by ``t0`` and clipped to [start, end]."""
    out: list[Phoneme] = []
    for p in phones:
        a, b = max(start, p.start + t0), min(end, p.end + t0)
        if b > a + 1e-6:
            out.append(Phoneme(p.symbol, a, b, p.stress, p.word))
    return tuple(out)


def _to_16k(clip: AudioClip) -> AudioClip:
    if clip.rate == SR:
        return AudioClip(np.asarray(clip.samples, np.float32), SR)
    from pipeline.media.audio import resample

    return resample(clip, SR)


TASK = "pipeline.speech.segment_phones:time_segment"


def _serial(pieces: list[np.ndarray]) -> Iterator[tuple[Phoneme, ...]]:
    for x in pieces:
        yield segment_phones.time_segment(x)


def _parallel(pieces: list[np.ndarray]) -> Iterator[tuple[Phoneme, ...]]:
    """:func:`time_segment` of each piece on the worker pool, results in order; a few
    pieces per worker are queued ahead of the consumer (memory stays bounded and a
    consumer that stops early leaves little work behind). If the workers fail, the rest
    is analysed here."""
    from pipeline.speech import workers

    pool = workers.get_pool()
    it = iter(pieces)
    # while the workers are still starting (the first call in a process), work here
    while pool is not None and not pool.ready:
        x = next(it, None)
        if x is None:
            return
        yield segment_phones.time_segment(x)
    ahead = max(2, workers.worker_count() * IN_FLIGHT_PER_WORKER)
    pending: deque[tuple[Future | None, np.ndarray]] = deque()
    serial = False
    try:
        while True:
            while len(pending) < ahead:
                x = next(it, None)
                if x is None:
                    break
                pending.append((None if serial else workers.submit(TASK, x), x))
            if not pending:
                return
            fut, x = pending.popleft()
            if fut is None:
                yield segment_phones.time_segment(x)
                continue
            try:
                phones = fut.result()
            except workers.WorkerDied as exc:
                log.warning("speech analysis workers failed (%s); analysing the rest serially", exc)
                workers.reset()
                serial = True
                for k, (f, y) in enumerate(pending):
                    if f is not None:
                        f.cancel()
                    pending[k] = (None, y)
                phones = segment_phones.time_segment(x)
            yield phones
    finally:
        for fut, _ in pending:
            if fut is not None:
                fut.cancel()


def iter_segments(
    clip: AudioClip,
    text: str = "",
    timing: str = "auto",
    language: str = "en",
    *,
    parallel: bool | None = None,
    spans: list[seg.Span] | None = None,
) -> Iterator[TimedSegment]:
    """Timed speech segments of ``clip`` in order, each yielded as soon as it is timed.

    ``timing`` and ``language`` as in :func:`pipeline.speech.recording.load_speech`.
    ``parallel``: None analyses segments in worker processes when there are several
    segments and cores, True forces the pool (when there is one), False runs serially.
    ``spans`` overrides the segmentation (tests).
    """
    from pipeline.speech import modes, workers

    mode = modes.resolve_mode(text, timing, language)
    clip16 = _to_16k(clip)
    spans = seg.split(clip16) if spans is None else spans
    if not spans:
        return
    if mode == "transcript":
        timed = modes.align_transcript(clip, text, timing, language)
        if timed is not None:
            yield from _cut(timed, spans, clip.duration)
            return
        mode = modes.resolve_mode("", timing, language)
    if mode == "acoustic":
        for s in spans:
            yield TimedSegment(s.start, s.end, None, (), "acoustic")
        return
    pieces = [clip16.slice(s.start, s.end).samples for s in spans]
    use_pool = (len(spans) > 1 and workers.worker_count() >= 2) if parallel is None else parallel
    results = _parallel(pieces) if use_pool else _serial(pieces)
    for s, phones in zip(spans, results):
        yield TimedSegment(s.start, s.end, _offset(phones, s.start, s.start, s.end), (), "phones")


def _cut(
    timed: tuple[tuple[Phoneme, ...], tuple[Word, ...], str], spans: list[seg.Span], duration: float
) -> Iterator[TimedSegment]:
    """A whole-recording timing cut at the segment boundaries: segment i covers from its
    start (0 for the first) to the next one's start (the end for the last); a phone or
    word belongs to the segment that holds its middle. Word indices of the phones are
    renumbered into each segment's own words."""
    phones, words, source = timed
    edges = [0.0] + [s.start for s in spans[1:]] + [max(duration, phones[-1].end if phones else 0.0) + 1.0]

    def where(a: float, b: float) -> int:
        return max(0, int(np.searchsorted(edges, 0.5 * (a + b), side="right")) - 1)

    word_seg = [where(w.start, w.end) for w in words]
    for i in range(len(spans)):
        lo, hi = edges[i], min(edges[i + 1], duration)
        ws_idx = [k for k, j in enumerate(word_seg) if j == i]
        local = {k: n for n, k in enumerate(ws_idx)}
        mine = tuple(
            Phoneme(p.symbol, p.start, p.end, p.stress, local.get(p.word, -1))
            for p in phones
            if where(p.start, p.end) == i
        )
        yield TimedSegment(lo, hi, mine, tuple(words[k] for k in ws_idx), source)


def join(segments: Iterable[TimedSegment], duration: float) -> tuple[tuple[Phoneme, ...] | None, tuple[Word, ...], str]:
    """(phonemes, words, source) of the whole recording from its timed segments: phones
    in time order, gaps between segments as pauses, covering [0, duration]. Phonemes are
    None when no segment has any (the acoustic path)."""
    segs = list(segments)
    if not segs or all(s.phonemes is None for s in segs):
        return None, (), segs[0].source if segs else "acoustic"
    out: list[Phoneme] = []
    words: list[Word] = []
    t = 0.0

    def add(p: Phoneme) -> None:
        if p.symbol == PAUSE and out and out[-1].symbol == PAUSE and p.start <= out[-1].end + 1e-6:
            out[-1] = Phoneme(PAUSE, out[-1].start, max(out[-1].end, p.end))
        else:
            out.append(p)

    for s in segs:
        for p in s.phonemes or (Phoneme(PAUSE, s.start, s.end),):
            a = max(p.start, t)
            if p.end <= a + 1e-6:
                continue
            if a > t + 1e-6:
                add(Phoneme(PAUSE, t, a))
            add(Phoneme(p.symbol, a, p.end, p.stress, p.word if p.word < 0 else p.word + len(words)))
            t = p.end
        words.extend(s.words)
    if t < duration - 1e-6:
        add(Phoneme(PAUSE, t, duration))
    sources = [s.source for s in segs if s.phonemes is not None]
    return tuple(out), tuple(words), max(set(sources), key=sources.count)
