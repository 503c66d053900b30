"""Speech from a recording: decode, normalise, and find when each phone is said.

The timing strategy for recorded or uploaded speech lives here (not in the facade).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.types import Speech

log = logging.getLogger(__name__)

TIMING_MODES = ("auto", "align", "synth", "phones", "acoustic")


def load_speech(path: str | Path, *, text: str = "", timing: str = "auto", language: str = "en") -> Speech:
    """Recorded or uploaded audio, decoded and loudness-normalised, with phoneme times.

    ``timing``:
    - "align": forced alignment of ``text`` with pocketsphinx (English);
    - "synth": alignment by synthesis: espeak-ng speaks ``text`` in ``language`` and
      dynamic time warping maps its exact phoneme times onto the recording (any of
      espeak-ng's 100+ languages, any kind of voice);
    - "phones": recognition without a transcript (English);
    - "acoustic": from the sound alone (any language, never fails);
    - "auto": with a transcript, English runs both aligners and keeps the timing whose
      predicted mouth opening agrees better with the loudness of the audio, other
      languages use "synth"; without one, English recognises phones and other languages
      use the acoustic estimate. Every failure falls back to the next path, so every
      input animates.
    """
    from pipeline.media.audio import load_audio, normalize_loudness
    from pipeline.speech import align, dtw

    if timing not in TIMING_MODES:
        raise PipelineError(f"Unknown timing mode {timing!r}: use one of {', '.join(TIMING_MODES)}.")
    clip = normalize_loudness(load_audio(path))
    text = (text or "").strip()
    lang = (language or "en").strip()
    english = lang.lower().split("-")[0] == "en"

    def speech(phones, source: str, words=()) -> Speech:
        return Speech(audio=clip, phonemes=phones, words=tuple(words), text=text, source=source, language=lang)

    if timing == "acoustic" or (timing == "auto" and not text and not english):
        return speech(None, "acoustic")
    if text and timing in ("auto", "align", "synth"):
        candidates: list[tuple[float, Speech]] = []
        if timing in ("auto", "synth"):
            try:
                phones, words = dtw.align_by_synthesis(clip, text, "en-us" if lang.lower() == "en" else lang.lower())
                candidates.append((dtw.openness_agreement(phones, clip), speech(phones, "synth", words)))
            except PipelineError as exc:
                log.warning("alignment by synthesis failed (%s)", exc)
        if english and timing in ("auto", "align"):
            try:
                phones, words = align.align(clip, text)
                candidates.append((dtw.openness_agreement(phones, clip), speech(phones, "align", words)))
            except align.AlignmentFailed as exc:
                log.warning("forced alignment failed (%s)", exc)
        if candidates:
            return max(candidates, key=lambda c: c[0])[1]
        log.warning("no alignment of the transcript worked; timing comes from the audio alone")
    if english:
        try:
            from pipeline.visemes.acoustic import add_dip_closures, gate_phonemes

            return speech(add_dip_closures(gate_phonemes(align.recognize(clip), clip), clip), "phones")
        except align.AlignmentFailed as exc:
            log.warning("phone recognition failed (%s); using the acoustic estimate", exc)
    return speech(None, "acoustic")
