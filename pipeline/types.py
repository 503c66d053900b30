"""Core data types shared by every stage.

Times are seconds as float. Images are ``numpy`` arrays, RGB ``uint8`` of shape
``(H, W, 3)`` or RGBA ``(H, W, 4)``. Audio is mono ``float32`` in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline import timing
from pipeline.phones import MOUTH_CHANNELS, MouthPose  # noqa: F401  (re-exported)

Frame = np.ndarray
"""One video frame: ``uint8`` RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``."""

@dataclass(frozen=True)
class AudioClip:
    """Mono PCM audio."""

    samples: np.ndarray  # float32, shape (n,), values in [-1, 1]
    rate: int  # samples per second

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.rate) if self.rate else 0.0

    def slice(self, start: float, end: float) -> "AudioClip":
        a = max(0, int(round(start * self.rate)))
        b = min(len(self.samples), int(round(end * self.rate)))
        return AudioClip(self.samples[a:b], self.rate)


@dataclass(frozen=True)
class Phoneme:
    """One phone with its time span. ``symbol`` is canonical IPA (see pipeline.phones)."""

    symbol: str
    start: float
    end: float
    stress: int = 0  # 0 unstressed, 1 primary, 2 secondary
    word: int = -1  # index into Speech.words, -1 if unknown

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Speech:
    """Audio plus whatever timing is known about what is said in it."""

    audio: AudioClip
    phonemes: tuple[Phoneme, ...] | None = None  # None: unknown, use an acoustic path
    words: tuple[Word, ...] = ()
    text: str = ""
    source: str = ""  # how the timing was obtained: "piper", "espeak", "align", "acoustic", ...
    language: str = "en"

    @property
    def duration(self) -> float:
        return self.audio.duration


# Motion channels added by pipeline.motion:
MOTION_CHANNELS: tuple[str, ...] = (
    "blink",  # 0 open eyes, 1 fully closed
    "brow",  # brow raise 0..1
    "gaze",  # sideways gaze, -1 (subject's right) .. 1
    "smile",  # smile 0..1
    "yaw",  # head turn, degrees
    "pitch",  # head nod, degrees (positive: chin down)
    "roll",  # head tilt, degrees
)


@dataclass
class Tracks:
    """Per-frame control values at a fixed frame rate: ``channels[name][i]`` for frame i."""

    fps: float
    n_frames: int
    channels: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """The channel, or zeros when it is not set."""
        arr = self.channels.get(name)
        if arr is None:
            return np.zeros(self.n_frames, dtype=np.float32)
        return arr

    def set(self, name: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self.n_frames,):
            raise ValueError(f"channel {name}: expected {self.n_frames} values, got {values.shape}")
        self.channels[name] = values

    def times(self) -> np.ndarray:
        return timing.frame_times(self.n_frames, self.fps)


@dataclass(frozen=True)
class FaceInfo:
    """A detected face: 478 FaceMesh landmarks in image pixels and a few derived measures."""

    landmarks: np.ndarray  # float32 (478, 3): x, y in pixels, z in pixels (relative depth)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, clipped to the image
    faces_found: int = 1  # how many faces were in the image (usable or not)
    yaw: float = 0.0  # head turn in degrees, + the nose towards the image right (pipeline.face.pose)
    pitch: float = 0.0  # head nod in degrees, + chin down
    roll: float = 0.0  # head tilt in degrees, + clockwise in the image
    confidence: float = 1.0  # 0..1 that this is a real, visible face (pipeline.face.confidence)
    detection_score: float = 1.0  # the face detector's own score, 0..1
    notes: tuple[str, ...] = ()  # why other faces were passed over, e.g. "a larger face is turned away (about 70°)"

    @property
    def xy(self) -> np.ndarray:
        return self.landmarks[:, :2]

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


@dataclass(frozen=True)
class Clip:
    """A presenter video used as the face source: where its frames are and how its face moves."""

    path: str  # the video file (decoded with pipeline.media's reader)
    fps: float  # constant frame rate after normalisation
    n_frames: int
    landmarks: np.ndarray  # float32 (n_frames, 478, 3): the face track, image pixels


@dataclass(frozen=True)
class Avatar:
    """A prepared face source: a photo (one still) or a clip (``clip`` set; ``image`` is its
    reference frame), with the face found in it."""

    image: np.ndarray  # uint8 RGB (H, W, 3)
    face: FaceInfo
    key: str  # content hash of the image, used to cache per-avatar work
    name: str = "avatar"
    warnings: tuple[str, ...] = ()  # things the user should know (e.g. "2 faces, using the largest")
    matte: np.ndarray | None = None  # person matte, float32 (H, W) in [0, 1], when background work needs it
    clip: Clip | None = None  # set for a video avatar

    @property
    def kind(self) -> str:
        """"photo" or "clip" (what engines declare they animate)."""
        return "clip" if self.clip is not None else "photo"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the source image."""
        return self.image.shape[1], self.image.shape[0]
