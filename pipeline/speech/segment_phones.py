"""Phones of one speech segment without a transcript (English): what each worker of
:mod:`pipeline.speech.segment_timing` runs.

:func:`time_segment`: the pocketsphinx allphone recogniser names the phones; a
voice-activity gate and the closure classifier's silence class (:mod:`pipeline.speech.
bilabial`) turn phones heard in noise or in short pauses into pauses and recover speech
the recogniser missed; then the classifier corrects the lips: recognised /p b m/ it does
not hear at all become plain consonants, over-long ones are trimmed (to their most closed
part and any second closure it leans to), /n ŋ/ it hears as closed become /m/, closures
it hears are added or stretch the recognised bilabial next to them, speech that starts
with a consonant after a pause starts closed (after a short pause too, when the classifier
leans to a closure there), and stop-closure loudness dips it does not contradict close
the lips too. Pauses start where the classifier hears silence, and a long closure that
releases into speech keeps only its release end (the short vowel of "the" before "big"
is not swallowed) and the parts the classifier hears closed. A recognised /p b/ inside
speech that the classifier hears silent is the stop's closure: it stays closed and holds
until its burst.

Four 60 s Piper clips, planned lip gap against exact phone times (bench/lipsync_rendered.py
--long 4, same audio): /p b m/ closed 97.0 -> 98.1 %, open vowels 95.9 -> 96.8 %, silence
98.2 -> 99.2 %, other consonants shown closed 17.9 -> 16.3 %; on three other 63-66 s
clips of another script 98.2 / 93.7 / 98.3 -> 97.9 / 95.2 / 99.4 %.

Measured without transcripts on 26 synthetic voices x 8 sentences (bench/lipsync_accuracy.py,
planned lip gap): /p b m/ closed 91 -> 99 %, open vowels 96 -> 99 %, other consonants shown
closed 26 -> 10 %, against the old whole-file path (word recognition + alignment + allphone,
then dips), at a twelfth of its cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.phones import PAUSE, is_vowel
from pipeline.types import AudioClip, Phoneme

if TYPE_CHECKING:
    from pipeline.visemes.acoustic import Analysis

SR = 16000  # analysis rate
_BILABIAL = frozenset("pbm")

# how the closure classifier (pipeline.speech.bilabial) corrects the recogniser
CLOSED_P = 0.5  # a frame whose /p b m/ probability reaches this is a closure...
MIN_CLOSURE_S = 0.02  # ...in runs at least this long
NEAR_S = 0.05  # a recognised /p b m/ this close already explains a closure
SPURIOUS_P = 0.03  # a recognised /p b m/ whose frames all stay below this is not one
DIP_SUPPORT_P = 0.2  # a loudness dip closes the lips only if the classifier leans this far
MAX_BILABIAL_S = 0.08  # a recognised /p b m/ longer than this keeps only its most closed part
MIN_VOWEL_S = 0.03  # (what is left on either side becomes a vowel if at least this long...
VOWEL_LEVEL = 0.5  # ...or this loud, on the loudness scale of acoustic.Analysis.level)
ONSET_P = 0.45  # a vowel starting after a pause of 0.1 s or more with a /p b m/ probability this high starts closed
# (a sentence's first vowel, "and", often leans a little: with the 2026-12-02 classifier 0.12 closed it)
ONSET_S = 0.03  # (a closure this long from the onset on)
SHORT_PAUSE_S = 0.04  # a pause this long before speech is a stop's closure too (shorter ones: see ONSET_P)...
ONSET_SHORT_P = 0.2  # ...when it is under 0.1 s only if the classifier leans this far to /p b m/ at the onset
# (less than ONSET_P: a short silence inside speech is more often a stop's closure than a sentence's start)
LONG_CLOSURE_S = 0.08  # a closure longer than this that releases into speech keeps its last LONG_CLOSURE_S
EDGE_P = 0.7  # a pause starts at the first frame before it that is at least this likely silence
NASAL_P = 0.2  # a recognised /n ŋ/ the classifier leans this far to /p b m/ is an /m/
NASAL_AFTER_S = 0.02  # (its support is looked for this far past its end too, unless a bilabial follows)
SECOND_P = 0.25  # a long recognised bilabial keeps a second closure where the classifier leans this far...
SECOND_S = 0.05  # ...this long (see _trim)
STRETCH = 0.15  # added closures are lengthened by this share (the release part)
MAX_STOP_S = 0.15  # a recognised /p b/ between speech this short is a stop's closure even when silent
SILENT_END_S = 0.03  # a /p b/ whose last this long is silence bursts at its end (see _hold_silent_stops)
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
        phones = align.recognize_phones(clip)
    except align.AlignmentFailed:
        phones = _from_activity(an)
    phones = acoustic.gate_phonemes(phones, an)
    if not bilabial.available():
        return acoustic.add_dip_closures(phones, an)
    prob = bilabial.probabilities(clip.samples)
    return _closures(_silences(phones, prob, an.active), prob[:, 1], an, prob[:, 2])


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
    for k, p in enumerate(phones):
        sym = p.symbol
        if sym != PAUSE and not _stop_closure(phones, k) and _mean(ps, p.start, p.end) >= SILENT_P:
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
    # a pause starts where the classifier hears silence, not where the recogniser ends the
    # phone before it (a vowel's decay, or a release heard as a short vowel, runs on into it)
    for i in range(1, len(out)):
        if out[i].symbol != PAUSE or out[i - 1].symbol == PAUSE or out[i - 1].symbol in _BILABIAL:
            continue
        f = int(out[i].start / step + 0.5)
        lo = int(out[i - 1].start / step + 0.5) + 1
        g = f
        while g - 1 >= lo and g - 1 < n and ps[g - 1] >= EDGE_P:
            g -= 1
        if g < f:
            extra.append(Phoneme(PAUSE, max(out[i - 1].start, (g - 0.5) * step), out[i].start))
    if extra:
        out = list(_merge_pauses(align.overlay(tuple(out), extra)))
    return tuple(out)


def _stop_closure(phones: tuple[Phoneme, ...], k: int) -> bool:
    """Whether recognised phone ``k`` is a /p b/ inside speech no longer than
    ``MAX_STOP_S``: the silence the classifier hears there is the stop's closure, which
    shows closed lips ("with payments": the recogniser hears the /p/, the classifier only
    silence), not a pause."""
    p = phones[k]
    if p.symbol not in ("p", "b") or p.end - p.start > MAX_STOP_S or k == 0 or k + 1 >= len(phones):
        return False
    return phones[k - 1].symbol != PAUSE and phones[k + 1].symbol != PAUSE


def _merge_pauses(phones: tuple[Phoneme, ...]) -> tuple[Phoneme, ...]:
    out: list[Phoneme] = []
    for p in phones:
        if p.symbol == PAUSE and out and out[-1].symbol == PAUSE and p.start <= out[-1].end + 1e-6:
            out[-1] = Phoneme(PAUSE, out[-1].start, max(out[-1].end, p.end))
        else:
            out.append(p)
    return tuple(out)


def _closures(
    phones: tuple[Phoneme, ...], pb: np.ndarray, an: Analysis, ps: np.ndarray | None = None
) -> tuple[Phoneme, ...]:
    """Recognised phones corrected by the closure classifier's per-frame /p b m/
    probability ``pb`` (100 Hz, frame k centred at k * 10 ms):

    - a recognised bilabial it does not hear at all becomes a plain consonant, unless
      it is a silent stop closure (``ps``: the classifier's silence probability; see
      :func:`_stop_closure`);
    - a closure it hears next to a recognised bilabial stretches that phone over it
      (clusters such as "mb" are often recognised as one short phone);
    - a closure no recognised bilabial explains is added, as is a loudness dip that it
      does not contradict.

    Added closures are stretched by ``STRETCH``: the viewer keeps the last quarter of a
    bilabial for the release (``passes.closures``), and the classifier marks only the
    closed part.
    """
    from pipeline.speech import align, bilabial
    from pipeline.visemes import acoustic

    step = bilabial.FRAME_S
    bil = _BILABIAL

    def support(a: float, b: float) -> float:
        i, j = max(0, int(a / step + 0.5) - 1), min(len(pb), int(b / step + 0.5) + 2)
        return float(pb[i:j].max()) if j > i else 0.0

    phones = _merge_bilabials(phones)
    out: list[Phoneme] = []
    for k, p in enumerate(phones):
        # the recogniser's m/n confusion; the closure may be heard just after the /n/, unless
        # the next recognised phone is a bilabial, which explains it ("in Boston")
        after = 0.0 if k + 1 < len(phones) and phones[k + 1].symbol in bil else NASAL_AFTER_S
        if p.symbol in ("n", "ŋ") and support(p.start, p.end + after) >= NASAL_P:
            out.append(Phoneme("m", p.start, p.end, p.stress, p.word))
        elif p.symbol not in bil:
            out.append(p)
        elif support(p.start, p.end) < SPURIOUS_P and not (
            p.symbol in ("p", "b") and _mean(ps, p.start, p.end) >= SILENT_P  # a silent stop closure
        ):
            out.append(Phoneme("d" if p.symbol in ("p", "b") else "n", p.start, p.end, p.stress, p.word))
        elif p.end - p.start > MAX_BILABIAL_S:
            out += _trim(p, pb, step, an.level)
        else:
            out.append(p)
    runs = [((a - 0.5) * step, (b - 0.5) * step) for a, b in _runs(pb >= CLOSED_P)]
    runs = [(max(0.0, s), e) for s, e in runs if e - s >= MIN_CLOSURE_S]
    # the release of a /p b/ after a pause: the closure is the silence before it, where
    # the lips may already be parting in the plan (a pause opens 40 ms before speech).
    # Speech that starts with a consonant, or that the classifier leans to, starts closed.
    for i in range(1, len(out)):
        prev, p = out[i - 1], out[i]
        if prev.symbol == PAUSE and p.symbol != PAUSE and (prev.end - prev.start >= SHORT_PAUSE_S or prev.start <= 1e-6):
            t = p.start
            if prev.end - prev.start >= 0.1 or prev.start <= 1e-6:
                lean = not is_vowel(p.symbol) or support(t - 0.02, t + 0.05) >= ONSET_P
            else:
                lean = support(t - 0.02, t + 0.05) >= ONSET_SHORT_P
            if lean and not any(q > t - 0.06 and s0 < t + 0.06 for s0, q in runs):
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
    res = align.overlay(tuple(out), extra) if extra else tuple(out)
    return _hold_silent_stops(_release_part(_merge_bilabials(res), an.level, pb), ps)


def _release_part(phones: tuple[Phoneme, ...], level: np.ndarray, pb: np.ndarray | None = None) -> tuple[Phoneme, ...]:
    """A closure longer than ``LONG_CLOSURE_S`` that releases into speech keeps its last
    ``LONG_CLOSURE_S`` (the release is where a stop's closure is certain; its start is
    where the recogniser and the classifier run a short vowel into it, as in "the big"),
    when what it gives up is voiced; also right after a pause, where the recogniser runs a
    sentence's first short word into the next closure ("..., the big", "..., and maybe"):
    planned over 7 Piper minutes without transcript (two scripts), with the last 80 ms kept
    instead of 100: open vowels 95.9 -> 97.0 % and 95.2 -> 96.2 %, closures unchanged (97.6
    and 97.9 %); 33 short clips: open 99.2 -> 98.8 % (one vowel), closures unchanged.

    Where the closure classifier (``pb``) hears the lips closed in what would be given up,
    that part stays closed too: a real long closure ("some messages"), or two closures the
    merge joined with the vowel between them ("same improvements": m, i, m p); only the
    loud stretches it does not hear as closed become the vowel."""
    from pipeline.speech import bilabial

    step = bilabial.FRAME_S
    out: list[Phoneme] = []
    for i, p in enumerate(phones):
        nxt = phones[i + 1] if i + 1 < len(phones) else None
        if p.symbol in _BILABIAL and p.end - p.start > LONG_CLOSURE_S and nxt is not None and nxt.symbol != PAUSE:
            a = p.end - LONG_CLOSURE_S
            closed: list[tuple[float, float]] = []
            if pb is not None:
                i0 = int(p.start / step + 0.5)
                seg = pb[i0 : max(i0, int(a / step + 0.5))]
                closed = [
                    (max(p.start, (i0 + u - 0.5) * step), min(a, (i0 + v - 0.5) * step))
                    for u, v in _runs(seg >= CLOSED_P)
                    if (v - u) * step >= MIN_CLOSURE_S
                ]
            pieces, t = [], p.start
            for u, v in closed + [(a, p.end)]:
                if u - t >= MIN_VOWEL_S and _loud(level, t, u):
                    pieces.append(Phoneme("ə", t, u))
                    t = u
                if pieces and pieces[-1].symbol != "ə":
                    q = pieces.pop()
                    t = q.start
                pieces.append(Phoneme(p.symbol, t, v, p.stress, p.word))
                t = v
            out += pieces
            continue
        out.append(p)
    return tuple(out)


def _hold_silent_stops(phones: tuple[Phoneme, ...], ps: np.ndarray | None) -> tuple[Phoneme, ...]:
    """A /p b/ whose closure the classifier hears silent up to its end (``ps``: silence
    probability) bursts at that end: it is lengthened so that the lips part there, not a
    quarter earlier (:func:`pipeline.visemes.passes.closures` keeps a bilabial's last
    quarter for the release, right where its span includes the burst, as the recogniser's
    usually does; after a silent closure it ends at the burst: "like _ baby", "sport _ pizza")."""
    if ps is None:
        return phones
    out = list(phones)
    for i in range(len(out) - 1):
        p, nxt = out[i], out[i + 1]
        if p.symbol not in ("p", "b") or nxt.symbol == PAUSE:
            continue
        if _mean(ps, max(p.start, p.end - SILENT_END_S), p.end) < SILENCE_RUN_P:
            continue
        d = min((p.end - p.start) / 3.0, 0.5 * (nxt.end - nxt.start))
        if d > 0:
            out[i] = Phoneme(p.symbol, p.start, p.end + d, p.stress, p.word)
            out[i + 1] = Phoneme(nxt.symbol, p.end + d, nxt.end, nxt.stress, nxt.word)
    return tuple(out)


def _merge_bilabials(phones: tuple[Phoneme, ...]) -> tuple[Phoneme, ...]:
    """Adjacent recognised /p b m/ as one (the recogniser often splits one long closure in
    two, which the length check would not see); the first one's symbol is kept."""
    out: list[Phoneme] = []
    for p in phones:
        if out and p.symbol in _BILABIAL and out[-1].symbol in _BILABIAL and p.start <= out[-1].end + 1e-6:
            q = out[-1]
            out[-1] = Phoneme(q.symbol, q.start, p.end, q.stress, q.word)
        else:
            out.append(p)
    return tuple(out)


def _mean(prob: np.ndarray | None, a: float, b: float) -> float:
    """Mean of a per-frame classifier probability (100 Hz) over [a, b) (0 without one)."""
    from pipeline.speech import bilabial

    if prob is None:
        return 0.0
    step = bilabial.FRAME_S
    i = int(a / step + 0.5)
    seg = prob[i : max(i + 1, int(b / step + 0.5))]
    return float(seg.mean()) if len(seg) else 0.0


def _loud(level: np.ndarray, a: float, b: float) -> bool:
    """Whether ``level`` (loudness 0..1 at ``passes.RATE``) averages at least VOWEL_LEVEL over [a, b)."""
    from pipeline.visemes import passes

    i, j = int(a * passes.RATE), max(int(a * passes.RATE) + 1, int(b * passes.RATE))
    seg = level[i:j]
    return bool(len(seg)) and float(seg.mean()) >= VOWEL_LEVEL


def _trim(p: Phoneme, pb: np.ndarray, step: float, level: np.ndarray) -> list[Phoneme]:
    """A recognised bilabial longer than ``MAX_BILABIAL_S`` (the recogniser ran it into
    the vowel next to it): the ``MAX_BILABIAL_S`` where the classifier hears the lips
    most closed stay a bilabial, and so does each part beside them that it leans to
    (``SECOND_P``: a second closure, such as the word-final /m/ the merge joined with the
    next word's, "team _ improved", "from the _ m"); the rest becomes a neutral vowel
    (its opening then follows the loudness)."""
    n = max(1, int(round(MAX_BILABIAL_S / step)))
    i, j = int(p.start / step + 0.5), max(int(p.start / step + 0.5) + 1, int(p.end / step + 0.5))
    if j - i <= n:
        return [p]
    spans = sorted(_closed_windows(pb, i, min(j, len(pb)), n, max(1, int(round(SECOND_S / step)))))
    if not spans:
        return [p]
    kept = [(max(p.start, u * step), min(p.end, v * step)) for u, v in spans]
    pieces: list[Phoneme] = []
    t = p.start
    for k, (a, b) in enumerate(kept):
        # a sliver that is not loud (the bilabial ran into a pause, not a vowel) stays the
        # bilabial's; so does a gap between two kept parts too short to be a vowel
        gap_is_vowel = a - t >= MIN_VOWEL_S and _loud(level, t, a)
        if k == 0 and a - p.start < MIN_VOWEL_S and not _loud(level, p.start, a):
            a = p.start
        if pieces and not gap_is_vowel:
            q = pieces.pop()
            a = q.start
        elif a > t + 1e-6:
            pieces.append(Phoneme("ə", t, a))
        pieces.append(Phoneme(p.symbol, a, b, p.stress, p.word))
        t = b
    if p.end - t < MIN_VOWEL_S and not _loud(level, t, p.end):
        pieces[-1] = Phoneme(p.symbol, pieces[-1].start, p.end, p.stress, p.word)
    elif t < p.end - 1e-6:
        pieces.append(Phoneme("ə", t, p.end))
    return pieces


def _closed_windows(pb: np.ndarray, i: int, j: int, w: int, w_side: int) -> list[tuple[int, int]]:
    """Frame spans [u, v) inside [i, j) kept closed by :func:`_trim`: the ``w`` frames of
    highest /p b m/ probability, then, on either side, a part that reaches ``SECOND_P``
    (``w_side`` frames, where it is most closed), and so on outwards."""
    w = min(w, j - i)
    if w <= 0:
        return []
    best = int(np.argmax(np.convolve(pb[i:j], np.ones(w), mode="valid")))
    u, v = i + best, i + best + w
    out = [(u, v)]
    for lo, hi in ((i, u), (v, j)):
        if hi - lo >= 2 and float(pb[lo:hi].max()) >= SECOND_P:
            out += _closed_windows(pb, lo, hi, w_side, w_side)
    return out


def _from_activity(an: Analysis) -> tuple[Phoneme, ...]:
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
