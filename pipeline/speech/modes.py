"""What a timing request for a recording amounts to, and whole-recording alignment of a
transcript (used by :mod:`pipeline.speech.recording` and, cut at the segment boundaries,
by :mod:`pipeline.speech.segment_timing`).
"""

from __future__ import annotations

import logging
from typing import Literal

from pipeline.errors import PipelineError
from pipeline.request import TIMING_MODES
from pipeline.types import AudioClip, Phoneme, Word

log = logging.getLogger(__name__)

Mode = Literal["transcript", "phones", "acoustic"]


def is_english(language: str) -> bool:
    """Whether ``language`` (a BCP-47 tag) is some English."""
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
    return "phones" if is_english(language) else "acoustic"


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
    use_align = is_english(lang) and timing in ("auto", "align")
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
