"""Speech from a recording: decode, normalise, and find when each phone is said.

The timing strategy for recorded or uploaded speech lives here (not in the facade).
Without a transcript, English is timed per speech segment, segments in parallel
(:mod:`pipeline.speech.segment_timing`); with one, the whole recording is aligned at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.speech.modes import TIMING_MODES, align_transcript, is_english, resolve_mode
from pipeline.types import AudioClip, Speech

__all__ = ["TIMING_MODES", "align_transcript", "load_speech", "resolve_mode", "time_clip"]

log = logging.getLogger(__name__)


def time_clip(
    clip: AudioClip, *, text: str = "", timing: str = "auto", language: str = "en", parallel: bool | None = None
) -> Speech:
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
    if mode == "transcript" and timing == "auto" and is_english(language):
        from pipeline.speech import workers

        workers.warm_up()  # a worker will run the forced alignment: start it while the audio is decoded
    clip = normalize_loudness(load_audio(path))
    return time_clip(clip, text=text, timing=timing, language=language)
