"""The whole viseme chain: Speech -> per-frame mouth channels in ``Tracks``."""

from __future__ import annotations

import numpy as np

from pipeline import timing
from pipeline.types import MOUTH_CHANNELS, Speech, Tracks
from pipeline.visemes import acoustic, passes


def dense_curve(speech: Speech) -> tuple[np.ndarray, list[passes.Closure], list[passes.Peak]]:
    """Dense (RATE Hz) mouth curve, closure intervals and vowel peaks for ``speech``."""
    if speech.phonemes:
        keys = passes.pauses(passes.targets(speech.phonemes))
        curve = passes.coarticulate(keys, speech.duration)
        cl = passes.closures(keys)
        curve = passes.smooth(curve)
        curve = passes.apply_closures(curve, cl)
        return curve, cl, passes.peaks(keys)
    curve, cl = acoustic.estimate(speech.audio)
    return curve, cl, []


def build_mouth_tracks(speech: Speech, fps: float, mouth_scale: float = 1.0) -> Tracks:
    """Mouth channels for every output frame; frame count = round(duration * fps)."""
    n = timing.frame_count(speech.duration, fps)
    curve, cl, pk = dense_curve(speech)
    frames = passes.sample(curve, fps, n, cl, pk)
    tracks = Tracks(fps=fps, n_frames=n)
    for i, name in enumerate(MOUTH_CHANNELS):
        values = frames[:, i]
        if name in ("jaw", "gap"):
            values = np.clip(values * mouth_scale, 0.0, 1.5)
        tracks.set(name, values)
    return tracks
