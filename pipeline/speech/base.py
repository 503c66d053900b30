"""What a TTS engine returns for one piece of text, and a spoken part built from it (shared by the
engines, the voice router and the streamed parts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.phones import PAUSE
from pipeline.types import AudioClip, Phoneme, Speech


@dataclass(frozen=True)
class Chunk:
    """What an engine returns for one piece of text (times from the piece's start)."""

    audio: np.ndarray  # float32 mono in [-1, 1]
    rate: int  # samples per second
    phonemes: tuple[Phoneme, ...] | None  # canonical IPA; None when the engine gave no timing
    words: tuple[tuple[int, float], ...] = ()  # (character index in the piece, start time) per spoken word


def lead_part(audio: np.ndarray, rate: int, phones: tuple[Phoneme, ...] | None, lead: float, text: str,
              source: str, language: str) -> Speech:
    """A speech part (streamed TTS): ``lead`` seconds of silence, then ``audio`` (phone times
    shifted to match)."""
    pad = int(round(lead * rate))
    samples = np.concatenate([np.zeros(pad, np.float32), np.asarray(audio, np.float32)]) if pad else audio
    t0 = pad / rate
    timed: tuple[Phoneme, ...] | None = None
    if phones is not None:
        shifted = [Phoneme(p.symbol, p.start + t0, p.end + t0, p.stress) for p in phones]
        if pad:
            shifted.insert(0, Phoneme(PAUSE, 0.0, t0))
        timed = tuple(shifted)
    return Speech(AudioClip(np.asarray(samples, np.float32), rate), timed, text=text, source=source, language=language)
