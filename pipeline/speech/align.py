"""Phoneme times for recorded speech with pocketsphinx (English model in the wheel).

- ``align(audio, text)``: forced alignment of a transcript (word and phone times).
  Words missing from the CMU dictionary get a pronunciation from espeak-ng (the one
  inside piper-tts), mapped from IPA to ARPAbet.
- ``recognize_phones(audio)``: no transcript: the allphone recogniser alone (fast: what
  per-segment timing of recordings uses, see ``pipeline.speech.segment_timing``).
- ``recognize(audio)``: no transcript: recognised words aligned, plus the closures
  an allphone pass hears (see its docstring for why both; about 4x slower).

Both return canonical-IPA ``Phoneme`` tuples (pauses as ``_``), or raise
``AlignmentFailed`` so the caller can fall back to the acoustic estimator.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from pipeline import models
from pipeline.errors import PipelineError
from pipeline.types import AudioClip, Phoneme, Word
from pipeline.phones import PAUSE, canonical

log = logging.getLogger(__name__)

RATE = 16000
FRAME_S = 0.01  # pocketsphinx frame period
PAD_S = 0.25  # silence added around audio before forced alignment
# pocketsphinx stamps a frame with the start of its 25.6 ms analysis window; the sound it
# describes is centred half a window later
WINDOW_CENTER_S = 0.0128


class AlignmentFailed(PipelineError):
    code = "alignment_failed"


def _model_dir() -> Path:
    import pocketsphinx

    return Path(pocketsphinx.__file__).parent / "model" / "en-us"


def _pcm(audio: AudioClip) -> bytes:
    x = audio.samples.astype(np.float32)
    if audio.rate != RATE:
        from scipy.signal import resample_poly  # imported here: slow to import, not needed at 16 kHz

        g = np.gcd(int(audio.rate), RATE)
        x = resample_poly(x, RATE // g, int(audio.rate) // g)
    return (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()


# allphone search. Narrow beams and 2 Gaussians per frame (topn) halve the decoding time
# against 1e-20 / 4 at the same timing accuracy once the closure classifier checks the
# lips (bench/lipsync_accuracy.py: 1004 vs 1006 of 1026 bilabials closed, 26 voices)
ALLPHONE = {"lw": 0.5, "beam": 1e-6, "pbeam": 1e-6, "topn": 2}


def _decoder(kind: str):
    """A fresh decoder (creating one costs ~0.1 s)."""
    from pocketsphinx import Decoder

    if kind == "allphone":
        return Decoder(
            samprate=RATE, allphone=str(_model_dir() / "en-us-phone.lm.bin"), lm=None, logfn=os.devnull, **ALLPHONE
        )
    return Decoder(samprate=RATE, lm=None, logfn=os.devnull, beam=1e-80, wbeam=1e-60, pbeam=1e-80)


def _decode(entry: models.Entry, pcm: bytes):
    """Decode ``pcm`` with a cached decoder and return it; the caller holds ``entry.lock``
    until it has read the result."""
    d = entry.model
    # pocketsphinx adapts its cepstral mean (and more) across utterances: reset the
    # feature state so every utterance decodes as with a fresh decoder, whatever came before
    d.reinit_feat()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return d


# IPA (espeak) -> ARPAbet, for words the dictionary lacks
_IPA_ARPA = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "ɡ": "G", "m": "M", "n": "N", "ŋ": "NG",
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH",
    "l": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "ɾ": "T", "ʔ": "T",
    "i": "IY", "ɪ": "IH", "e": "EY", "ɛ": "EH", "æ": "AE", "a": "AA", "ɑ": "AA", "ɒ": "AA", "ʌ": "AH",
    "ə": "AH", "ɐ": "AH", "ɔ": "AO", "o": "OW", "ʊ": "UH", "u": "UW", "ɜ": "ER", "ɚ": "ER", "ᵻ": "IH",
}


def _espeak_arpabet(word: str) -> list[str]:
    from piper.phonemize_espeak import EspeakPhonemizer

    entry = models.get("espeak.phonemizer", EspeakPhonemizer)
    with entry.lock:
        sentences = entry.model.phonemize("en-us", word)
    out: list[str] = []
    for ph in (p for s in sentences for p in s):
        if ph == "ʧ":
            out.append("CH")
        elif ph == "ʤ":
            out.append("JH")
        elif ph in _IPA_ARPA:
            out.append(_IPA_ARPA[ph])
    return out


def _words(text: str) -> list[str]:
    text = text.lower().replace("’", "'")
    return [w for w in re.findall(r"[a-z0-9']+", text) if w.strip("'")]


def _to_phonemes(segments: list[tuple[str, float, float]]) -> tuple[Phoneme, ...]:
    out: list[Phoneme] = []
    for name, start, end in segments:
        base = name.strip("+").upper()
        if base in ("SIL", "NSN", "SPN", "") or name.startswith("<") or name.startswith("+"):
            sym = PAUSE
        else:
            sym = canonical(name)
            if sym == "?":
                sym = PAUSE
        stress = 1 if name[-1:] == "1" else 0
        if out and sym == PAUSE and out[-1].symbol == PAUSE:
            out[-1] = Phoneme(PAUSE, out[-1].start, end)
            continue
        out.append(Phoneme(sym, start, end, stress))
    return tuple(out)


def _fill(phones: tuple[Phoneme, ...], duration: float) -> tuple[Phoneme, ...]:
    """Close gaps with pauses and cover [0, duration]."""
    out: list[Phoneme] = []
    t = 0.0
    for p in phones:
        if p.start > t + 1e-6:
            out.append(Phoneme(PAUSE, t, p.start))
        out.append(p)
        t = p.end
    if t < duration - 1e-6:
        out.append(Phoneme(PAUSE, t, duration))
    return tuple(out)


def _run_alignment(d, words: list[str], pcm: bytes) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """[(word, [(phone, start_frame, end_frame), ...]), ...] for ``words`` in ``pcm``.

    Pass 1 aligns words; pass 2 aligns their phones. When pass 2 fails (it sometimes
    cannot set up a sub-word alignment that pass 1 found), each word's span is shared
    among its dictionary phones, vowels getting twice a consonant's share.
    """
    for w in set(words):
        if d.lookup_word(w) is None:
            pron = _espeak_arpabet(w)
            if not pron:
                raise AlignmentFailed(f"No pronunciation for {w!r}.")
            d.add_word(w, " ".join(pron), True)
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    seg = d.seg()
    if seg is None:
        raise RuntimeError("the words could not be aligned to the audio")
    word_segs = [(s.word, s.start_frame, s.end_frame + 1) for s in seg]
    try:
        d.set_alignment()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        al = d.get_alignment()
        if al is not None:
            return [
                (_word_name(w.name), [(ph.name, ph.start, ph.start + ph.duration) for ph in w])
                for w in al
            ]
    except RuntimeError as exc:
        log.info("phone alignment failed (%s); sharing word spans among their phones", exc)
    out: list[tuple[str, list[tuple[str, int, int]]]] = []
    for word, a, b in word_segs:
        name = _word_name(word)
        pron = (d.lookup_word(name) or "").split() if name not in ("<s>", "</s>", "<sil>") else []
        if not pron:
            out.append((word, [("SIL", a, b)]))
            continue
        weights = np.array([2.0 if p[:2] in _VOWELS else 1.0 for p in pron])
        edges = a + np.round(np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * (b - a)).astype(int)
        out.append((name, [(p, int(edges[i]), int(edges[i + 1])) for i, p in enumerate(pron) if edges[i + 1] > edges[i]]))
    if not any(ph for _, ph in out):
        raise RuntimeError("no word alignment")
    return out


def _word_name(word: str) -> str:
    """A dictionary word without pocketsphinx's alternate-pronunciation suffix: "the(2)" -> "the"."""
    return re.sub(r"\(\d+\)$", "", word)


_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def align(audio: AudioClip, text: str) -> tuple[tuple[Phoneme, ...], tuple[Word, ...]]:
    """Forced alignment of ``text`` (English) to ``audio``: phones and words with times."""
    words = _words(text)
    if not words:
        raise AlignmentFailed("The transcript has no words to align.")
    # a little silence around the speech lets the aligner start and end in silence
    # (clips cut tight at the last phone otherwise fail to reach the final state)
    pad = np.zeros(int(PAD_S * audio.rate), np.float32)
    pcm = _pcm(AudioClip(np.concatenate([pad, audio.samples, pad]), audio.rate))
    try:
        al = _run_alignment(_decoder("align"), words, pcm)
    except RuntimeError as exc:
        raise AlignmentFailed(f"Forced alignment failed: {exc}") from exc
    if al is None:
        raise AlignmentFailed("Forced alignment found no path through the audio.")
    segs: list[tuple[str, float, float]] = []
    word_spans: list[Word] = []
    dur = audio.duration

    def t(frames: int) -> float:
        return min(dur, max(0.0, frames * FRAME_S - PAD_S + WINDOW_CENTER_S))

    for name, phones in al:
        if phones and name not in ("<sil>", "<s>", "</s>", "sil"):
            word_spans.append(Word(name, t(phones[0][1]), t(phones[-1][2])))
        for ph, a_f, b_f in phones:
            a, b = t(a_f), t(b_f)
            if b > a:
                segs.append((ph, a, b))
    if not segs:
        raise AlignmentFailed("Forced alignment returned no phones.")
    return _fill(_to_phonemes(segs), audio.duration), tuple(word_spans)


def recognize_phones(audio: AudioClip) -> tuple[Phoneme, ...]:
    """Phones recognised without a transcript (English allphone model). The decoder is
    loaded once per process and reset before each utterance (same result as a fresh one)."""
    entry = models.get("pocketsphinx.allphone", lambda: _decoder("allphone"))
    pcm = _pcm(audio)
    with entry.lock:
        d = _decode(entry, pcm)
        segs = [
            (s.word, s.start_frame * FRAME_S + WINDOW_CENTER_S, (s.end_frame + 1) * FRAME_S + WINDOW_CENTER_S)
            for s in d.seg()
        ]
    if not segs:
        raise AlignmentFailed("No phones were recognised.")
    return _fill(_to_phonemes(segs), audio.duration)


def transcribe(audio: AudioClip) -> str:
    """Words recognised with pocketsphinx's English language model ("" if none)."""
    from pocketsphinx import Decoder

    d = Decoder(samprate=RATE, logfn=os.devnull)
    d.start_utt()
    d.process_raw(_pcm(audio), full_utt=True)
    d.end_utt()
    hyp = d.hyp()
    return hyp.hypstr if hyp is not None else ""


def overlay(base: tuple[Phoneme, ...], extra: list[Phoneme]) -> tuple[Phoneme, ...]:
    """``base`` with each ``extra`` phone written over the span it covers."""
    out = list(base)
    for p in sorted(extra, key=lambda q: q.start):
        kept: list[Phoneme] = []
        for q in out:
            if q.end <= p.start or q.start >= p.end:
                kept.append(q)
                continue
            if q.start < p.start:
                kept.append(Phoneme(q.symbol, q.start, p.start, q.stress, q.word))
            if q.end > p.end:
                kept.append(Phoneme(q.symbol, p.end, q.end, q.stress, q.word))
        kept.append(p)
        out = sorted(kept, key=lambda q: q.start)
    return tuple(q for q in out if q.end - q.start > 1e-4)


def recognize(audio: AudioClip) -> tuple[Phoneme, ...]:
    """Phone timing of English speech without a transcript.

    Two recognisers see different things: words from the language model, then forced
    alignment of those words, give dictionary pronunciations (no spurious /p b m/, but
    a misheard word loses its closures); the allphone recogniser hears closures the
    word model missed. The word path is the base and allphone bilabials with no
    bilabial near them are laid over it. On Piper sentences with known times this found
    98% of /p b m/, against 83% (allphone) and 88% (words) alone.
    """
    phones = recognize_phones(audio)
    base: tuple[Phoneme, ...] | None = None
    text = transcribe(audio)
    if text:
        try:
            base = align(audio, text)[0]
        except AlignmentFailed as exc:
            log.info("aligning the recognised words failed (%s); using allphone alone", exc)
    if base is None:
        return phones
    # a badly misheard utterance aligns only a few words and leaves the rest as pause:
    # then the allphone result is the better base
    if _spoken(base) < 0.8 * _spoken(phones):
        log.info("recognised words cover %.1f s of %.1f s of phones; allphone is the base", _spoken(base), _spoken(phones))
        base, phones = phones, base
    bil = set("pbm")
    missing = [
        p
        for p in phones
        if p.symbol in bil and not any(q.symbol in bil and q.end > p.start - 0.06 and q.start < p.end + 0.06 for q in base)
    ]
    return overlay(base, missing)


def _spoken(phones: tuple[Phoneme, ...]) -> float:
    """Seconds covered by phones that are not pauses."""
    return float(sum(p.end - p.start for p in phones if p.symbol != PAUSE))
