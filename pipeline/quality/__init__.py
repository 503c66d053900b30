"""Objective, engine-independent lip-sync and stability metrics (DESIGN.md, "Lip-sync
quality: how it is measured").

    from pipeline.quality import evaluate
    report = evaluate("out.mp4", speech.phonemes, source_image="face.png")
    print(report.format())

FaceMesh measures the inner-lip gap on every frame (:mod:`.measure`); the metrics compare
it with the phoneme timeline of the audio (:mod:`.metrics`); the report gathers them
(:mod:`.report`: ``Report``, ``score``, ``evaluate``); phoneme timing files are read and
written by :mod:`.phonemes`. The names below are resolved on first use, so importing
this package (or ``pipeline.quality.cli`` for the launcher) loads nothing heavy: no PyAV,
MediaPipe, SciPy or viseme chain until a function is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "STABLE_POINTS": "measure",
    "MouthTrack": "measure",
    "VideoFrames": "measure",
    "mouth_track": "measure",
    "mouth_track_frames": "measure",
    "Drift": "metrics",
    "Offset": "metrics",
    "RateResult": "metrics",
    "Report": "report",
    "av_offset": "metrics",
    "bilabial_closure": "metrics",
    "closed_level": "metrics",
    "drift": "metrics",
    "evaluate": "report",
    "expected_openness": "metrics",
    "landmark_jitter": "metrics",
    "load_phonemes": "phonemes",
    "lower_face_mask": "metrics",
    "open_level": "metrics",
    "open_vowel_rate": "metrics",
    "psnr_outside_mouth": "metrics",
    "save_phonemes": "phonemes",
    "score": "report",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from pipeline.quality.measure import STABLE_POINTS, MouthTrack, VideoFrames, mouth_track, mouth_track_frames
    from pipeline.quality.metrics import (
        Drift,
        Offset,
        RateResult,
        av_offset,
        bilabial_closure,
        closed_level,
        drift,
        expected_openness,
        landmark_jitter,
        lower_face_mask,
        open_level,
        open_vowel_rate,
        psnr_outside_mouth,
    )
    from pipeline.quality.phonemes import load_phonemes, save_phonemes
    from pipeline.quality.report import Report, evaluate, score


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
