"""Planned lip closures seal the lips in the RENDERED frames, as FaceMesh reads them back.

The plan (visemes) closes the lips on /p b m/ and in silence with gap 0 and a little jaw
(<= 0.05); the warp engine must show touching lips there, with head motion on, also on a
photo whose mouth is open (the astronaut smiles with her teeth showing).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.engines import warp
from pipeline.options import RenderOptions
from pipeline.quality.measure import mouth_track, mouth_track_frames
from pipeline.quality.metrics import bilabial_closure, open_vowel_rate
from pipeline.types import Tracks

SEALED = 0.02  # gap / mouth width that touching lips must read below on lossless frames


def frames_of(rig, poses: list[dict[str, float]]) -> list[np.ndarray]:
    """One engine frame per pose (channels not given are 0)."""
    tracks = Tracks(fps=25.0, n_frames=len(poses))
    for name in {k for p in poses for k in p}:
        tracks.set(name, np.array([p.get(name, 0.0) for p in poses], np.float32))
    return list(warp.WarpEngine().render(rig, tracks, None))


def read_gap(frames: list[np.ndarray]) -> np.ndarray:
    """FaceMesh gap of each frame, each measured on its own (no tracking across poses)."""
    return np.array([mouth_track_frames([f, f], 25.0).gap[-1] for f in frames])


@pytest.fixture(scope="module")
def rig(avatar):
    return warp.prepare(avatar, RenderOptions())


def test_rendered_sentence_closes_every_bilabial_and_opens_open_vowels(rendered, speech):
    track = mouth_track(rendered.path)  # default options: head motion on
    closed = bilabial_closure(track, speech.phonemes)
    opened = open_vowel_rate(track, speech.phonemes)
    assert closed.count >= 5 and opened.count >= 3
    assert closed.rate == 1.0, f"lips apart on {closed.misses}"
    assert opened.rate == 1.0, f"mouth not open on {opened.misses}"


def test_planned_closure_with_a_little_jaw_reads_sealed(rig):
    head = {"yaw": 1.6, "pitch": 0.9, "roll": -0.6}  # about the default head motion's reach
    poses = [
        {},  # rest: the astronaut's open mouth is closed at rest
        {"jaw": 0.05},
        {"jaw": 0.05, "press": 0.7},  # /m/
        {"jaw": 0.05, "press": 1.0},  # /p/
        {"jaw": 0.05, "press": 0.9, **head},  # /b/ while the head moves
    ]
    g = read_gap(frames_of(rig, poses))
    assert np.all(g < SEALED), dict(zip(map(str, poses), np.round(g, 4)))


def test_open_vowels_open_and_consonants_part_a_little(rig):
    poses = [
        {"jaw": 0.72, "gap": 0.7, "teeth": 0.25},  # /ʌ/
        {"jaw": 1.0, "gap": 0.92, "teeth": 0.2},  # /ɑ/
        {"jaw": 0.18, "gap": 0.28, "teeth": 0.4},  # /t/
    ]
    g = read_gap(frames_of(rig, poses))
    assert g[0] > 0.2 and g[1] > 0.3, g
    assert 0.06 < g[2] < g[0], g


def test_lip_separation_is_continuous_in_jaw_and_gap():
    W = 100.0

    def separation(jaw: float, gap: float) -> float:
        jaw_px, held, _ = warp.lip_opening(W, jaw, gap)
        return float(jaw_px - held + 2 * warp.LIP_PART * W * gap)

    for jaw in (0.0, 0.03, 0.05, 0.1):
        assert separation(jaw, 0.0) == pytest.approx(0.0, abs=1e-4)  # sealed over a little jaw
    gaps = np.linspace(0.0, 1.0, 2001)
    for jaw in (0.05, 0.2, 0.6):
        s = np.array([separation(jaw, g) for g in gaps])
        assert np.all(np.diff(s) >= -1e-6)  # opens monotonically with the gap
        assert np.abs(np.diff(s)).max() < 0.1  # no jump (pixels per 0.0005 of gap at W = 100)
    jaws = np.linspace(0.0, 1.0, 2001)
    for gap in (0.0, 0.06, 0.3):
        s = np.array([separation(j, gap) for j in jaws])
        assert np.all(np.diff(s) >= -1e-6) and np.abs(np.diff(s)).max() < 0.15
    # s/t/f keep the lips a little apart; open vowels are as open as before
    assert separation(0.06, 0.26) > 0.05 * W and separation(0.18, 0.28) > 0.1 * W
    assert separation(0.72, 0.7) == pytest.approx(warp.JAW_DROP * W * 0.72**warp.JAW_EASE + 2 * warp.LIP_PART * W * 0.7)
