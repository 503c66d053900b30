"""Bundled sample avatar photos (``assets/samples``), so a first video needs no upload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "samples"


@dataclass(frozen=True)
class Sample:
    """One bundled photo and where it comes from."""

    name: str  # short id, e.g. "astronaut"
    path: Path  # the image file
    title: str  # what the photo shows, for the UI
    licence: str  # licence of the photo
    source: str  # where it comes from


SAMPLES: tuple[Sample, ...] = (
    Sample(
        name="astronaut",
        path=SAMPLES_DIR / "astronaut.jpg",
        title="Eileen Collins, NASA astronaut (official portrait)",
        licence="public domain (NASA, US government work)",
        source="NASA, via scikit-image (skimage.data.astronaut)",
    ),
)

DEFAULT_SAMPLE = "astronaut"


def sample(name: str = DEFAULT_SAMPLE) -> Sample:
    """The bundled sample called ``name``; KeyError lists the names there are."""
    for s in SAMPLES:
        if s.name == name:
            return s
    raise KeyError(f"no sample avatar {name!r}; there are: {', '.join(s.name for s in SAMPLES)}")


def sample_avatar_path(name: str = DEFAULT_SAMPLE) -> Path:
    """Path of a bundled sample avatar photo (the default one unless ``name`` is given)."""
    return sample(name).path
