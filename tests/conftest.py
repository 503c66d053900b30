"""Shared fixtures: tiny generated media, no network, no GPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

SENTENCE = "Peter bought a bamboo map for Bob."


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_png(astronaut, tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("media") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture(scope="session")
def avatar(astronaut):
    import pipeline

    return pipeline.prepare_avatar(astronaut, name="astronaut")


@pytest.fixture(scope="session")
def speech():
    """A 2-3 s Piper sentence with phoneme times, the same audio in every run (no sampling
    noise), so that the tests that read the rendered lips back do not depend on a draw."""
    import pipeline
    from pipeline.options import VoiceOptions

    return pipeline.synthesize(SENTENCE, VoiceOptions(variation=0.0))


@pytest.fixture(scope="session")
def speech_wav(speech, tmp_path_factory) -> Path:
    from pipeline.media.audio import save_wav

    return save_wav(speech.audio, tmp_path_factory.mktemp("media") / "speech.wav")


@pytest.fixture(scope="session")
def rendered(avatar, speech, tmp_path_factory):
    """The sentence rendered end to end to MP4."""
    import pipeline

    out = tmp_path_factory.mktemp("render") / "sentence.mp4"
    return pipeline.render_to_file(avatar, speech, out)


@pytest.fixture()
def one_torch_thread():
    """One torch intra-op thread for a neural test (on a shared 2-core machine torch's second
    thread spins against the other processes, 5-20x slower); restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
