"""What a TTS engine returns for one piece of text (shared by the engines and the voice router)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.types import Phoneme


@dataclass(frozen=True)
class Chunk:
    """What an engine returns for one piece of text (times from the piece's start)."""

    audio: np.ndarray  # float32 mono in [-1, 1]
    rate: int  # samples per second
    phonemes: tuple[Phoneme, ...] | None  # canonical IPA; None when the engine gave no timing
    words: tuple[tuple[int, float], ...] = ()  # (character index in the piece, start time) per spoken word
