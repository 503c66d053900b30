"""Speech from a recording: decode, normalise, and find when each phone is said.

The timing strategy for recorded or uploaded speech lives here (not in the facade).
Without a transcript, English is timed per speech segment, segments in parallel
(:mod:`pipeline.speech.segment_timing`); with one, the whole recording is aligned at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pipeline.errors import PipelineError
from pipeline.types import AudioClip, Phoneme, Speech, Word

log = logging.getLogger(__name__)

TIMING_MODES = ("auto", "align", "synth", "phones", "acoustic")
Mode = Literal["transcript", "phones", "acoustic"]


def _english(language: str) -> bool:
    return (language or "en").strip().lower().split("-")[0] == "en"


def resolve_mode(text: str, timing: str, language: str) -> Mode:
    """What a request amounts to: align a transcript, recognise English phones per
    segment, or the acoustic estimate."""
    if timing not in TIMING_MODES:
        raise PipelineError(f"Unknown timing mode {timing!r}: use one of {', '.join(TIMING_MODES)}.")
    if timing == "acoustic":
        return "acoustic"
    if (text or "").strip() and timing in ("auto", "align", "synth"):
        return "transcript"
    return "phones" if _english(language) else "acoustic"


def align_transcript(
    clip: AudioClip, text: str, timing: str = "auto", language: str = "en"
) -> tuple[tuple[Phoneme, ...], tuple[Word, ...], str] | None:
    """(phones, words, source) of ``text`` in the whole of ``clip``, or None when no
    aligner managed. "auto" runs both aligners for English and keeps the timing whose
    predicted mouth opening agrees better with the loudness; the two run at the same
    time (forced alignment on a speech worker, alignment by synthesis here) when there
    are workers."""
    from pipeline.speech import align, dtw, workers

    text = (text or "").strip()
    lang = (language or "en").strip()
    use_synth = timing in ("auto", "synth")
    use_align = _english(lang) and timing in ("auto", "align")
    pending = workers.submit("pipeline.speech.align:align", clip, text) if use_synth and use_align else None
    candidates: list[tuple[float, tuple[tuple[Phoneme, ...], tuple[Word, ...], str]]] = []
    if use_synth:
        try:
            phones, words = dtw.align_by_synthesis(clip, text, "en-us" if lang.lower() == "en" else lang.lower())
            candidates.append((dtw.openness_agreement(phones, clip), (phones, words, "synth")))
        except PipelineError as exc:
            log.warning("alignment by synthesis failed (%s)", exc)
    if use_align:
        try:
            try:
                phones, words = pending.result() if pending is not None else align.align(clip, text)
            except workers.WorkerDied:
                phones, words = align.align(clip, text)
            candidates.append((dtw.openness_agreement(phones, clip), (phones, words, "align")))
        except align.AlignmentFailed as exc:
            log.warning("forced alignment failed (%s)", exc)
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    log.warning("no alignment of the transcript worked; timing comes from the audio alone")
    return None


def time_clip(clip: AudioClip, *, text: str = "", timing: str = "auto", language: str = "en", parallel: bool | None = None) -> Speech:
    """``clip`` (already decoded) with phoneme times; see :func:`load_speech`."""
    from pipeline.speech import segment_timing

    text = (text or "").strip()
    lang = (language or "en").strip()
    mode = resolve_mode(text, timing, lang)
    if mode == "transcript":
        timed = align_transcript(clip, text, timing, lang)
        if timed is not None:
            phones, words, source = timed
            return Speech(audio=clip, phonemes=phones, words=words, text=text, source=source, language=lang)
        mode = resolve_mode("", timing, lang)
    if mode == "acoustic":
        return Speech(audio=clip, phonemes=None, text=text, source="acoustic", language=lang)
    segs = segment_timing.iter_segments(clip, "", "phones", lang, parallel=parallel)
    phones, words, source = segment_timing.join(segs, clip.duration)
    return Speech(audio=clip, phonemes=phones, words=words, text=text, source=source if phones else "acoustic", language=lang)


def load_speech(path: str | Path, *, text: str = "", timing: str = "auto", language: str = "en") -> Speech:
    """Recorded or uploaded audio, decoded and loudness-normalised, with phoneme times.

    ``timing``:
    - "align": forced alignment of ``text`` with pocketsphinx (English);
    - "synth": alignment by synthesis: espeak-ng speaks ``text`` in ``language`` and
      dynamic time warping maps its exact phoneme times onto the recording (any of
      espeak-ng's 100+ languages, any kind of voice);
    - "phones": recognition without a transcript (English), per speech segment;
    - "acoustic": from the sound alone (any language, never fails);
    - "auto": with a transcript, English runs both aligners and keeps the timing whose
      predicted mouth opening agrees better with the loudness of the audio, other
      languages use "synth"; without one, English recognises phones and other languages
      use the acoustic estimate. Every failure falls back to the next path, so every
      input animates.
    """
    from pipeline.media.audio import load_audio, normalize_loudness

    mode = resolve_mode(text, timing, language)
    if mode == "transcript" and timing == "auto" and _english(language):
        from pipeline.speech import workers

        workers.warm_up()  # a worker will run the forced alignment: start it while the audio is decoded
    clip = normalize_loudness(load_audio(path))
    return time_clip(clip, text=text, timing=timing, language=language)
