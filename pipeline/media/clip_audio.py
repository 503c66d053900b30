"""A presenter clip's own sound mixed under the new voice (by default it is dropped).

    speech = with_clip_audio(speech, avatar, level_db=-18.0)

The clip's audio over the shot the avatar uses is decoded at the speech's rate, repeated
(with short cross-fades at the seams) or cut to the speech's length, scaled to
``level_db`` below the voice's loudness (RMS) and added. The mouth timing is the voice's:
only the samples change, never their number, so frames and audio stay in step.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from pipeline.errors import PipelineError
from pipeline.types import AudioClip, Avatar, Speech

log = logging.getLogger(__name__)

SEAM_S = 0.03  # cross-fade where the clip's sound repeats


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def fit_length(x: np.ndarray, n: int, rate: int) -> np.ndarray:
    """``x`` repeated with cross-faded seams, or cut, to ``n`` samples."""
    if len(x) >= n or len(x) == 0:
        return np.resize(x, n) if len(x) == 0 else x[:n].copy()
    fade = min(int(SEAM_S * rate), len(x) // 4)
    out = x.astype(np.float32).copy()
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32) if fade else np.zeros(0, np.float32)
    while len(out) < n:
        nxt = x.astype(np.float32).copy()
        if fade:
            nxt[:fade] = nxt[:fade] * ramp + out[-fade:] * (1 - ramp)
            out = np.concatenate([out[:-fade], nxt])
        else:
            out = np.concatenate([out, nxt])
    return out[:n]


def with_clip_audio(speech: Speech, avatar: Avatar, level_db: float = -18.0) -> Speech:
    """``speech`` with the clip's sound ``level_db`` (dB, relative to the voice) under it; the
    speech unchanged for a photo avatar or a clip without usable sound (logged)."""
    if avatar.clip is None:
        return speech
    from pipeline.face.clip import manifest_of
    from pipeline.media.audio import load_audio

    m = manifest_of(avatar.clip)
    rate = speech.audio.rate
    try:
        sound = load_audio(m["source"]["path"], target_rate=rate)
    except (PipelineError, OSError) as exc:
        log.warning("the clip's own sound is not mixed in: %s", exc)
        return speech
    a, b = (int(round(t * rate)) for t in m["shot"])
    sound_shot = sound.samples[a:b]
    voice = speech.audio.samples.astype(np.float32)
    under = fit_length(sound_shot, len(voice), rate)
    gain = _rms(voice) * 10 ** (level_db / 20.0) / max(_rms(under), 1e-9)
    mixed = voice + np.float32(gain) * under
    peak = float(np.abs(mixed).max()) if len(mixed) else 0.0
    if peak > 0.99:
        mixed *= np.float32(0.99 / peak)
    return dataclasses.replace(speech, audio=AudioClip(mixed.astype(np.float32), rate))
