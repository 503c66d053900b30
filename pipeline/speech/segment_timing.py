"""Phone timing of a recording, one speech segment at a time, segments in parallel.

:func:`iter_segments` cuts the recording at its pauses (:mod:`pipeline.speech.segments`),
times each segment on its own and yields it as soon as it is timed, in order, so a
streaming consumer can start after the first one. :func:`join` turns the segments back
into one phone sequence for the whole recording (phone times are absolute, the silence
between segments becomes pauses).

Without a transcript (English), each segment is timed by :func:`time_segment`: the
pocketsphinx allphone recogniser names the phones, a voice-activity gate and the closure
classifier's silence class turn phones heard in noise or in short pauses into pauses,
and the classifier (:mod:`pipeline.speech.bilabial`) corrects the lips: recognised
/p b m/ it does not hear at all become plain consonants, over-long ones are trimmed,
closures it hears are added or stretch the recognised bilabial next to them, and
stop-closure loudness dips it does not contradict close the lips too. Segments are
analysed by a persistent pool of worker processes (:mod:`pipeline.speech.workers`), or
serially when there is one segment or one core.

Measured (bench/lipsync_accuracy.py, 26 synthetic voices x 8 sentences without
transcripts): see that script's output in the README; the old whole-file path (word
recognition + alignment + allphone, then dips) is kept there as a reference row.

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


# how the closure classifier (pipeline.speech.bilabial) corrects the recogniser
CLOSED_P = 0.5  # a frame whose /p b m/ probability reaches this is a closure...
MIN_CLOSURE_S = 0.02  # ...in runs at least this long
NEAR_S = 0.05  # a recognised /p b m/ this close already explains a closure
SPURIOUS_P = 0.03  # a recognised /p b m/ whose frames all stay below this is not one
DIP_SUPPORT_P = 0.15  # a loudness dip closes the lips only if the classifier leans this far
RECOGNISED_SHIFT_S = 0.0  # recognised phone times are moved this much later
MAX_BILABIAL_S = 0.14  # a recognised /p b m/ longer than this keeps only its most closed part
ONSET_P = 0.05  # speech starting after a pause with a /p b m/ probability this high starts closed
ONSET_S = 0.03  # (a closure this long from the onset on)
STRETCH = 0.15  # added closures are lengthened by this share (the release part)
SILENT_P = 0.7  # a recognised phone whose frames are on average this likely silence is a pause
SILENCE_RUN_P = 0.5  # frames at least this likely silence...
MIN_SILENCE_S = 0.08  # ...in runs this long are a pause, whatever was recognised there
SPEECH_P = 0.4  # a recognised pause where frames stay below this silence probability...
MIN_SPEECH_S = 0.04  # ...for this long, with the voice active, is speech (a neutral vowel)


def load_models() -> None:
    """Load what :func:`time_segment` needs (workers call this once at start)."""
    from pipeline import models
    from pipeline.speech import align, bilabial

    models.get("pocketsphinx.allphone", lambda: align._decoder("allphone"))
    if bilabial.available():
        bilabial.net()


def time_segment(samples: np.ndarray) -> tuple[Phoneme, ...]:
    """Phones of one segment of English speech (16 kHz float32), times from its start.

    Runs in a worker process: it imports only numpy, pocketsphinx and the acoustic passes.
    """
    from pipeline.speech import align, bilabial
    from pipeline.visemes import acoustic

    clip = AudioClip(np.asarray(samples, np.float32), SR)
    an = acoustic.analyse(clip)
    try:
        phones = _shift(align.recognize_phones(clip), RECOGNISED_SHIFT_S, clip.duration)
    except align.AlignmentFailed:
        phones = _from_activity(an)
    phones = acoustic.gate_phonemes(phones, an)
    if not bilabial.available():
        return acoustic.add_dip_closures(phones, an)
    prob = bilabial.probabilities(clip.samples)
    return _closures(_silences(phones, prob, an.active), prob[:, 1], an)


def _silences(phones: tuple[Phoneme, ...], prob: np.ndarray, active: np.ndarray) -> tuple[Phoneme, ...]:
    """Pauses where the classifier hears silence (``prob``: its per-frame probabilities
    at 100 Hz), speech where it does not.

    Recognised phones it hears as silence become pauses (the loudness gate cannot catch
    a short pause: its hangover bridges anything under 160 ms, such as a comma), and so
    does every clear run of silence; stretches of a recognised pause that it hears as
    speech while the voice is active (``active``: voice activity at ``passes.RATE``)
    become a neutral vowel, whose opening then follows the loudness (the recogniser
    sometimes hears nothing in a fast or unusual voice for a third of a second); not
    where it hears closed lips, which a recognised pause shows correctly.
    """
    from pipeline.speech import align, bilabial
    from pipeline.visemes import passes

    ps, pb = prob[:, 2], prob[:, 1]
    step = bilabial.FRAME_S
    out: list[Phoneme] = []
    for p in phones:
        sym = p.symbol
        if sym != PAUSE:
            i, j = int(p.start / step + 0.5), max(int(p.start / step + 0.5) + 1, int(p.end / step + 0.5))
            seg = ps[i:j]
            if len(seg) and float(seg.mean()) >= SILENT_P:
                sym = PAUSE
        if sym == PAUSE and out and out[-1].symbol == PAUSE:
            out[-1] = Phoneme(PAUSE, out[-1].start, p.end)
        else:
            out.append(p if sym == p.symbol else Phoneme(PAUSE, p.start, p.end))
    n = len(ps)
    act = np.zeros(n, bool)
    if len(active):
        k = np.minimum((np.arange(n) * step * passes.RATE).astype(int), len(active) - 1)
        act = active[k]
    in_pause = np.zeros(n, bool)
    for p in out:
        if p.symbol == PAUSE:
            in_pause[int(p.start / step + 0.5) : int(p.end / step + 0.5)] = True
    extra = [
        Phoneme("ə", max(0.0, (a - 0.5) * step), (b - 0.5) * step)
        for a, b in _runs(in_pause & act & (ps < SPEECH_P) & (pb < CLOSED_P))
        if (b - a) * step >= MIN_SPEECH_S
    ]
    extra += [
        Phoneme(PAUSE, (a - 0.5) * step, (b - 0.5) * step)
        for a, b in _runs(ps >= SILENCE_RUN_P)
        if (b - a) * step >= MIN_SILENCE_S and a > 0 and b < n
    ]
    if extra:
        out = list(_merge_pauses(align.overlay(tuple(out), extra)))
    return tuple(out)


def _merge_pauses(phones: tuple[Phoneme, ...]) -> tuple[Phoneme, ...]:
    out: list[Phoneme] = []
    for p in phones:
        if p.symbol == PAUSE and out and out[-1].symbol == PAUSE and p.start <= out[-1].end + 1e-6:
            out[-1] = Phoneme(PAUSE, out[-1].start, max(out[-1].end, p.end))
        else:
            out.append(p)
    return tuple(out)


def _closures(phones: tuple[Phoneme, ...], pb: np.ndarray, an) -> tuple[Phoneme, ...]:
    """Recognised phones corrected by the closure classifier's per-frame /p b m/
    probability ``pb`` (100 Hz, frame k centred at k * 10 ms):

    - a recognised bilabial it does not hear at all becomes a plain consonant;
    - a closure it hears next to a recognised bilabial stretches that phone over it
      (clusters such as "mb" are often recognised as one short phone);
    - a closure no recognised bilabial explains is added, as is a loudness dip that it
      does not contradict.

    Added closures are stretched by a third: the viewer keeps the last quarter of a
    bilabial for the release (``passes.closures``), and the classifier marks only the
    closed part.
    """
    from pipeline.speech import align, bilabial
    from pipeline.visemes import acoustic

    step = bilabial.FRAME_S
    bil = {"p", "b", "m"}

    def support(a: float, b: float) -> float:
        i, j = max(0, int(a / step + 0.5) - 1), min(len(pb), int(b / step + 0.5) + 2)
        return float(pb[i:j].max()) if j > i else 0.0


    out: list[Phoneme] = []
    for p in phones:
        if p.symbol not in bil:
            out.append(p)
        elif support(p.start, p.end) < SPURIOUS_P:
            out.append(Phoneme("d" if p.symbol in ("p", "b") else "n", p.start, p.end, p.stress, p.word))
        elif p.end - p.start > MAX_BILABIAL_S:
            out += _trim(p, pb, step)
        else:
            out.append(p)
    runs = [((a - 0.5) * step, (b - 0.5) * step) for a, b in _runs(pb >= CLOSED_P)]
    runs = [(max(0.0, s), e) for s, e in runs if e - s >= MIN_CLOSURE_S]
    # the release of a /p b/ after a pause: the closure is the silence before it, where
    # the lips may already be parting in the plan (a pause opens 40 ms before speech)
    for i in range(1, len(out)):
        prev, p = out[i - 1], out[i]
        if prev.symbol == PAUSE and p.symbol != PAUSE and prev.end - prev.start >= 0.1:
            t = p.start
            if support(t - 0.02, t + 0.05) >= ONSET_P and not any(q > t - 0.06 and s0 < t + 0.06 for s0, q in runs):
                runs.append((max(prev.start, t - 0.01), t + ONSET_S))
    extra: list[Phoneme] = []
    for s, e in sorted(runs):
        near = [i for i, p in enumerate(out) if p.symbol in bil and p.end > s - NEAR_S and p.start < e + NEAR_S]
        if near:  # stretch the recognised bilabial over the closure heard next to it
            i = min(near, key=lambda k: abs(0.5 * (out[k].start + out[k].end) - 0.5 * (s + e)))
            p = out[i]
            a, b = min(p.start, s), max(p.end, e + STRETCH * (e - s))
            if (a, b) != (p.start, p.end):
                extra.append(Phoneme(p.symbol, a, b, p.stress, p.word))
            continue
        extra.append(Phoneme("b", s, e + STRETCH * (e - s)))
    # stop-closure dips the classifier leans towards, where nothing explains them yet
    closed = [(p.start, p.end) for p in out if p.symbol in bil] + [(p.start, p.end) for p in extra]
    for s, e in acoustic.closure_dips(an):
        if support(s, e) >= DIP_SUPPORT_P and not any(q > s - NEAR_S and p < e + NEAR_S for p, q in closed):
            extra.append(Phoneme("b", s, e + STRETCH * (e - s)))
    return align.overlay(tuple(out), extra) if extra else tuple(out)


def _shift(phones: tuple[Phoneme, ...], dt: float, duration: float) -> tuple[Phoneme, ...]:
    """Phones moved ``dt`` later, still covering [0, duration]."""
    if not dt or not phones:
        return phones
    out = [Phoneme(p.symbol, min(duration, p.start + dt), min(duration, p.end + dt), p.stress, p.word) for p in phones]
    out[0] = Phoneme(out[0].symbol, 0.0, out[0].end, out[0].stress, out[0].word)
    out[-1] = Phoneme(out[-1].symbol, out[-1].start, duration, out[-1].stress, out[-1].word)
    return tuple(p for p in out if p.end > p.start)


def _trim(p: Phoneme, pb: np.ndarray, step: float) -> list[Phoneme]:
    """A recognised bilabial longer than ``MAX_BILABIAL_S`` (the recogniser ran it into
    the vowel next to it): the ``MAX_BILABIAL_S`` where the classifier hears the lips
    most closed stay a bilabial, the rest becomes a neutral vowel (its opening then
    follows the loudness)."""
    n = max(1, int(round(MAX_BILABIAL_S / step)))
    i, j = int(p.start / step + 0.5), max(int(p.start / step + 0.5) + 1, int(p.end / step + 0.5))
    seg = pb[i:j]
    if len(seg) <= n:
        return [p]
    best = int(np.argmax(np.convolve(seg, np.ones(n), mode="valid")))
    a = max(p.start, (i + best) * step)
    b = min(p.end, a + MAX_BILABIAL_S)
    out = []
    if a > p.start + 1e-6:
        out.append(Phoneme("ə", p.start, a))
    out.append(Phoneme(p.symbol, a, b, p.stress, p.word))
    if b < p.end - 1e-6:
        out.append(Phoneme("ə", b, p.end))
    return out


def _from_activity(an) -> tuple[Phoneme, ...]:
    """When nothing is recognised: a neutral vowel wherever the voice is active (the
    loudness then shapes the opening), pauses elsewhere."""
    from pipeline.visemes import passes

    out: list[Phoneme] = []
    t = 0.0
    for a, b in _runs(an.active):
        s, e = a / passes.RATE, b / passes.RATE
        if s > t:
            out.append(Phoneme(PAUSE, t, s))
        out.append(Phoneme("ə", s, e))
        t = e
    if t < an.duration:
        out.append(Phoneme(PAUSE, t, an.duration))
    return tuple(out)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


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


TASK = "pipeline.speech.segment_timing:time_segment"


def _serial(pieces: list[np.ndarray]) -> Iterator[tuple[Phoneme, ...]]:
    for x in pieces:
        yield time_segment(x)


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
        yield time_segment(x)
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
                yield time_segment(x)
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
                phones = time_segment(x)
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
