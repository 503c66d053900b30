"""Speech in parts, for renders that start before the whole speech exists.

- :func:`speak_parts`: a script spoken sentence by sentence (the first sentence cut at a
  clause when it is long), each part yielded as soon as the engine has said it. Parts
  follow each other without gaps: a part starts with the silence before it (the
  engine's sentence pause, or the pause marks of the script), so the parts joined are
  the script as :func:`pipeline.speech.voices.synthesize` speaks it, sentence pauses
  included.
- :func:`recording_parts`: a decoded recording cut at its speech segments, each part
  yielded as soon as its segment is timed (:func:`pipeline.speech.segment_timing.iter_segments`).
- :func:`prefetched`: runs a part iterator on a thread a few parts ahead of its consumer
  (TTS and phone timing release the GIL), stopping when the consumer stops.

Part times start at the part's own start (what :class:`pipeline.render.RenderSession`
takes as parts).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Iterable, Iterator

import numpy as np

from pipeline.options import VoiceOptions
from pipeline.phones import PAUSE
from pipeline.speech.base import lead_part
from pipeline.types import AudioClip, Phoneme, Speech

log = logging.getLogger(__name__)

FIRST_CHARS = 48  # longest first part (characters): a long first sentence is cut at a clause (TTS time
# grows with the length; ~50 characters are ~2.5 s of speech, said in ~0.1 s on a quiet 2-core machine)
MIN_FIRST_CHARS = 24  # a shorter first sentence takes the next one along (up to FIRST_CHARS), so the
# first part holds the first two chunks (1.44 s) and the second chunk does not wait for more TTS
SECOND_CHARS = 100  # longest second part
PART_CHARS = 240  # longest later part
CLAUSE_GAP_S = 0.08  # silence where a sentence was cut into two parts (a sentence pause is longer)


def sentence_pieces(text: str, first_chars: int = FIRST_CHARS, part_chars: int = PART_CHARS) -> list[tuple[int, int]]:
    """(start, end) of the parts of one stretch of text: sentences, the first at most
    ``first_chars`` long and the second at most ``SECOND_CHARS``, the others at most
    ``part_chars`` (cut at clauses, else at spaces)."""
    return [(a, b) for a, b, _ in _pieces(text, (first_chars, SECOND_CHARS), part_chars)]


def _pieces(text: str, limits: tuple[int, ...], part_chars: int) -> list[tuple[int, int, bool]]:
    """(start, end, ends a sentence) of each part of ``text``; part ``k`` is at most
    ``limits[k]`` characters (``part_chars`` past them)."""
    from pipeline.speech import text as txt

    out: list[tuple[int, int, bool]] = []
    spans = txt.sentence_spans(text)
    i = 0
    while i < len(spans):
        a, b = spans[i]
        i += 1
        while not out and limits and b - a < MIN_FIRST_CHARS and i < len(spans):
            b = spans[i][1]  # a very short first sentence ("Hello!"): the first part runs on into the next
            i += 1
        while a < b:
            limit = limits[len(out)] if len(out) < len(limits) else part_chars
            if b - a <= limit:
                out.append((a, b, True))
                break
            s, e = txt._split_long(text, a, b, limit)[0]
            out.append((s, e, False))
            a = txt._strip(text, e, b)[0]
    return out


def speak_parts(text: str, opts: VoiceOptions = VoiceOptions(), first_chars: int = FIRST_CHARS) -> Iterator[Speech]:
    """``text`` spoken with ``opts.voice``, sentence by sentence (see the module docstring).

    The script is checked (length, pause marks) before the first part is spoken."""
    from pipeline.errors import ModelUnavailable
    from pipeline.speech import text as txt
    from pipeline.speech import voices

    voice = voices.resolve(opts.voice)
    eng = voices.engine(voice.engine)
    script = txt.parse_script(text, opts.max_chars)

    def parts() -> Iterator[Speech]:
        rate = 0
        lead = 0.0  # silence owed before the next part
        spoken: bool | None = None  # what was said last: a whole sentence (True), a cut one (False)
        for piece in script.pieces:
            if piece.pause:
                lead += piece.pause
                spoken = None
                continue
            said, _ = txt.normalize(piece.text, voice.language) if opts.normalize else (piece.text, None)
            limits = (first_chars, SECOND_CHARS) if not rate else ()
            for a, b, ends in _pieces(said, limits, PART_CHARS):
                if spoken is not None:
                    lead += eng.sentence_gap(opts.speed) if spoken else CLAUSE_GAP_S / max(0.25, opts.speed)
                chunk = eng.synthesize_chunk(said[a:b], voice.engine_voice, opts.speed, opts.variation)
                if rate and chunk.rate != rate:
                    raise ModelUnavailable(f"Voice {voice.id} returned audio at several sample rates.")
                rate = chunk.rate
                yield lead_part(chunk.audio, rate, chunk.phonemes, lead, said[a:b], voice.engine, voice.language)
                lead, spoken = 0.0, ends
        if lead > 0 and rate:  # a pause mark at the very end
            yield lead_part(np.zeros(0, np.float32), rate, (), lead, "", voice.engine, voice.language)

    return parts()


def recording_parts(clip: AudioClip, text: str = "", timing: str = "auto", language: str = "en") -> Iterator[Speech]:
    """A decoded recording as parts that cover it exactly: part ``i`` runs from the start
    of speech segment ``i`` (0 for the first) to the start of the next (the end for the
    last), with that segment's phones (None: the acoustic path animates it).

    The segments are found first (a pass over the levels), so part ``i`` is yielded as soon
    as segment ``i`` is timed: the first part waits for the first segment's timing only,
    not the second's too (and without a transcript the first is timed on its own)."""
    from pipeline.media.audio import resample
    from pipeline.speech import segments as seg
    from pipeline.speech.segment_timing import SR, iter_segments

    rate = clip.rate
    n = len(clip.samples)
    clip16 = clip if rate == SR else resample(clip, SR)
    spans = seg.split(clip16)
    # without a transcript only the 16 kHz analysis copy is read (no second resample);
    # a transcript is aligned against the recording as it is
    source = clip if text.strip() else clip16
    bounds = [0] + [min(n, int(round(s.start * rate))) for s in spans[1:]] + [n]
    at = 0  # sample where the next part starts

    def cut(timed, end: int) -> Speech:
        t0 = at / rate
        phones = None
        if timed.phonemes is not None:
            phones = tuple(
                Phoneme(p.symbol, max(0.0, p.start - t0), min(end / rate, p.end) - t0, p.stress)
                for p in timed.phonemes
                if p.end > t0 and p.start < end / rate
            )
            phones = _fill_pauses(phones, (end - at) / rate)
        return Speech(AudioClip(clip.samples[at:end], rate), phones, text=text,
                      source=timed.source if timed.phonemes is not None else "acoustic", language=language)

    if text.strip():  # a transcript is aligned over the whole recording at once
        timed_segments = iter_segments(source, text, timing, language, spans=spans)
    else:  # the first segment alone, here; the rest (on the worker pool) only when part 2 is asked for
        timed_segments = _first_alone(source, timing, language, spans)
    for k, timed in enumerate(timed_segments):
        end = n if k + 1 >= len(spans) else max(at, bounds[k + 1])
        yield cut(timed, end)
        at = end
    if at < n:  # no speech found at all (or fewer timed segments than found): the rest as acoustic
        yield Speech(AudioClip(clip.samples[at:], rate), None, text=text, source="acoustic", language=language)


def _first_alone(clip16: AudioClip, timing: str, language: str, spans: list) -> Iterator:
    """The timed segments of ``spans``: the first in this process, with the machine to
    itself, the others afterwards as :func:`iter_segments` times them (a pool of workers
    started on all of them at once would share the cores with the first one and then with
    the render of the first chunk; a consumer that holds off asking for the second part,
    as :func:`prefetched` does until the first chunk is out, holds them off too)."""
    from pipeline.speech.segment_timing import iter_segments

    if not spans:
        return
    yield from iter_segments(clip16, "", timing, language, spans=spans[:1], parallel=False)
    if len(spans) > 1:
        yield from iter_segments(clip16, "", timing, language, spans=spans[1:])


def _fill_pauses(phones: tuple[Phoneme, ...], duration: float) -> tuple[Phoneme, ...]:
    """Gaps between phones (and before the first, after the last) as pause phones."""
    out: list[Phoneme] = []
    t = 0.0
    for p in phones:
        if p.start > t + 1e-6:
            out.append(Phoneme(PAUSE, t, p.start))
        if p.end > max(t, p.start):
            out.append(Phoneme(p.symbol, max(t, p.start), p.end, p.stress))
            t = p.end
    if duration > t + 1e-6:
        out.append(Phoneme(PAUSE, t, duration))
    return tuple(out)


_DONE = object()


def prefetched(parts: Iterable[Speech], ahead: int = 2, name: str = "speech-parts",
               hold: threading.Event | None = None, hold_after: float = 0.0) -> Iterator[Speech]:
    """``parts`` made on a thread, up to ``ahead`` parts before they are asked for.

    ``hold``: after the first part the thread waits until this event is set (or the
    second part is asked for), so it does not take the CPU from whatever turns the first
    part into the first output (on two cores the next sentence's TTS would); only when
    that part is at least ``hold_after`` seconds long (a shorter one is not enough for
    what comes next, so the second is made at once).

    An exception in the producer is raised in the consumer, in order. Closing the
    returned iterator (or dropping it) stops the producer after its current part."""
    q: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for k, part in enumerate(parts):
                if not put(part):
                    return
                if k == 0 and hold is not None and part.duration >= hold_after:
                    while not hold.wait(0.05):
                        if stop.is_set():
                            return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer
            put(exc)
        finally:
            close = getattr(parts, "close", None)
            if close is not None and stop.is_set():
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()

    def consume() -> Iterator[Speech]:
        try:
            got = 0
            while True:
                if got and hold is not None:
                    hold.set()  # the next part is wanted now
                item = q.get()
                got += 1
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            try:  # unblock a producer waiting on a full queue
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)  # it finishes the part it is making (a TTS call is not interruptible)

    return _Prefetched(consume(), stop)


class _Prefetched(Iterator[Speech]):
    """The consumer side of :func:`prefetched`: closing (or dropping) it stops the producer,
    also when no part was asked for yet (a generator that never started runs no cleanup)."""

    def __init__(self, parts: Iterator[Speech], stop: threading.Event) -> None:
        self._parts, self._stop = parts, stop

    def __next__(self) -> Speech:
        return next(self._parts)

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._parts, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        self._stop.set()
