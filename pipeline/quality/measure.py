"""Per-frame mouth measurements of a video, as FaceMesh sees them.

:func:`mouth_track` decodes any video PyAV can read and runs MediaPipe FaceMesh (478
points, iris refinement) on every frame. Each frame gets its presentation time from its
own pts, so variable-frame-rate files are measured on their real timeline.

Times are seconds from the start of the audio stream when the file has one (the origin
of phoneme times), else from the first video frame.

Accuracy: FaceMesh runs in tracking mode (one dedicated, stateful model-cache entry,
reset for every video), where the landmark model's region of interest comes from the
face's own landmarks instead of the coarse face detector; on rendered talking heads
this tracks the commanded lip gap markedly better than per-frame detection (measured
correlation 0.98 vs 0.92 on the astronaut sentence). Every frame is processed
``passes`` times (default 2) so that its region of interest comes from landmarks of the
same frame, not the previous one: the measurement of a frame then hardly depends on the
frames before it, which would otherwise bias the AV offset by a fraction of a frame.
FaceMesh's graph has no temporal smoothing, so tracking adds no lag.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from pipeline import models, timing
from pipeline.errors import UnsupportedMedia
from pipeline.face import regions as R
from pipeline.media.video import VideoReader

log = logging.getLogger(__name__)

MODEL_KEY = "mediapipe.face_mesh.video"
STABLE_POINTS: tuple[int, ...] = R.EYE_CORNERS + R.NOSE_BRIDGE  # 33 133 362 263 6 168 197
PASSES = 2  # FaceMesh runs per frame; >= 2 makes each frame's ROI come from its own landmarks

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class MouthTrack:
    """Mouth and stable-point measurements of one video, one row per frame."""

    times: np.ndarray  # float64 (n,): presentation start of each frame, seconds (see module doc)
    gap: np.ndarray  # float64 (n,): inner-lip gap (13/14) / mouth width (61/291); NaN: no face
    stable: np.ndarray  # float32 (n, len(STABLE_POINTS), 2): eye corners + nose bridge, px; NaN: no face
    mouth_width: np.ndarray  # float64 (n,): mouth width 61-291 in px; NaN: no face
    size: tuple[int, int]  # (width, height) of the frames in px
    end: float  # end of the last frame's display interval, seconds

    @property
    def n_frames(self) -> int:
        return int(len(self.times))

    @property
    def durations(self) -> np.ndarray:
        """How long each frame is on screen (seconds); differs per frame in VFR video."""
        return np.diff(np.append(self.times, self.end))

    @property
    def fps(self) -> float:
        """Nominal frame rate: 1 / median frame duration."""
        d = self.durations
        d = d[d > 0]
        return float(1.0 / np.median(d)) if len(d) else 0.0

    @property
    def face_rate(self) -> float:
        """Share of frames in which a face was found."""
        return float(np.mean(np.isfinite(self.gap))) if self.n_frames else 0.0

    def shifted(self, seconds: float) -> "MouthTrack":
        """The same measurements presented ``seconds`` later (positive: video later)."""
        return MouthTrack(
            self.times + seconds, self.gap, self.stable, self.mouth_width, self.size, self.end + seconds
        )


PLANNED_GAP_SCALE = 0.35  # a planned lip gap of 1 is drawn as an inner-lip gap of 0.35 mouth widths


def planned_track(tracks) -> MouthTrack:
    """The planned lip gap of ``tracks`` (``pipeline.types.Tracks``) as a MouthTrack, as
    FaceMesh would measure it if the engine drew it exactly: scored with the same metrics
    as a rendered video, it says how good the timing is, whatever the engine does."""
    n = tracks.n_frames
    return MouthTrack(
        times=tracks.times(),
        gap=PLANNED_GAP_SCALE * tracks.get("gap").astype(np.float64),
        stable=np.zeros((n, len(STABLE_POINTS), 2), np.float32),
        mouth_width=np.full(n, 100.0),
        size=(512, 512),
        end=n / tracks.fps,
    )


def _load_facemesh():
    from pipeline.face.mp_import import mediapipe

    mp = mediapipe()

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False,
        max_num_faces=1,
        refine_landmarks=True,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    )


def _measure(frames: Iterable[np.ndarray], passes: int) -> Iterator[tuple[np.ndarray | None, tuple[int, int]]]:
    """FaceMesh landmarks ((478, 2) px, or None) and (w, h) of each frame, in order.

    Holds the model's lock for the whole video: the tracker's state is per video.
    """
    entry = models.get(MODEL_KEY, _load_facemesh)
    with entry.lock:
        entry.model.reset()  # forget the previous video's face position
        for frame in frames:
            img = np.ascontiguousarray(frame[:, :, :3])
            h, w = img.shape[:2]
            result = None
            for _ in range(max(1, passes)):
                result = entry.model.process(img)
                if not result.multi_face_landmarks:
                    break  # a face that is not there now will not appear on a second look
            if result is None or not result.multi_face_landmarks:
                yield None, (w, h)
                continue
            lms = result.multi_face_landmarks[0].landmark
            yield np.array([(p.x * w, p.y * h) for p in lms], dtype=np.float64), (w, h)


def _track(
    frames: Iterable[np.ndarray],
    times: Callable[[int], np.ndarray],
    end: Callable[[], float],
    passes: int,
    progress: Progress | None,
    total: int,
) -> MouthTrack:
    """Measure ``frames``; ``times(n)`` and ``end()`` are asked once all frames are read."""
    gaps: list[float] = []
    widths: list[float] = []
    stable: list[np.ndarray] = []
    size = (0, 0)
    nan_pts = np.full((len(STABLE_POINTS), 2), np.nan, np.float32)
    step = max(1, total // 50) if total else 25
    for i, (pts, size) in enumerate(_measure(frames, passes)):
        if pts is None:
            gaps.append(math.nan)
            widths.append(math.nan)
            stable.append(nan_pts)
        else:
            width = float(np.linalg.norm(pts[R.MOUTH_CORNERS[0]] - pts[R.MOUTH_CORNERS[1]]))
            gap = float(np.linalg.norm(pts[R.LIP_GAP[0]] - pts[R.LIP_GAP[1]]))
            gaps.append(gap / max(width, 1e-6))
            widths.append(width)
            stable.append(pts[list(STABLE_POINTS)].astype(np.float32))
        if progress is not None and i % step == 0:
            progress(min(1.0, (i + 1) / total) if total else 0.0, f"Measuring frame {i + 1}")
    n = len(gaps)
    return MouthTrack(
        times=np.asarray(times(n), dtype=np.float64)[:n],
        gap=np.asarray(gaps, dtype=np.float64),
        stable=np.stack(stable) if stable else np.zeros((0, len(STABLE_POINTS), 2), np.float32),
        mouth_width=np.asarray(widths, dtype=np.float64),
        size=size,
        end=float(end()),
    )


def mouth_track_frames(
    frames: Iterable[np.ndarray], fps: float, *, start: float = 0.0, passes: int = PASSES
) -> MouthTrack:
    """Measure in-memory RGB frames shown at a constant ``fps``, the first at ``start`` s."""
    frames = list(frames)
    n = len(frames)
    return _track(
        frames,
        lambda k: timing.frame_times(k, fps) + start,
        lambda: start + float(timing.frame_start(n, fps)),
        passes,
        None,
        n,
    )


class VideoFrames:
    """Iterate over the RGB frames of a video file, streaming (one decoded frame at a time).

    After the iteration, ``times`` holds each frame's start (seconds, see the module doc:
    from the audio stream's start when there is audio) and ``end`` the end of the last one.
    Decoding is :class:`pipeline.media.video.VideoReader`'s.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.times = np.zeros(0, np.float64)
        self.end = 0.0
        if not self.path.is_file():
            raise UnsupportedMedia(f"Video file not found: {self.path}")
        with VideoReader(self.path) as video:  # refuses what cannot be read, now
            self.count_hint = video.frame_count  # for progress

    def __iter__(self) -> Iterator[np.ndarray]:
        times: list[float] = []
        end = 0.0
        with VideoReader(self.path) as video:
            origin = video.audio_start if video.audio_start is not None else video.start_time
            shift = video.start_time - origin  # reader times are from the first frame
            for frame in video:
                times.append(frame.time + shift)
                end = frame.end + shift
                yield frame.image
        d = np.diff(times)
        if np.any(d <= 0):
            log.warning("%s: frame times are not increasing; measurements may be misplaced", self.path.name)
        self.times = np.asarray(times, np.float64)
        self.end = float(end)


def mouth_track(video_path: str | Path, *, passes: int = PASSES, progress: Progress | None = None) -> MouthTrack:
    """Measure every frame of a video file (any codec and container PyAV reads; VFR ok)."""
    video = VideoFrames(video_path)
    return _track(video, lambda n: video.times, lambda: video.end, passes, progress, video.count_hint)


__all__ = ["MODEL_KEY", "STABLE_POINTS", "MouthTrack", "VideoFrames", "mouth_track", "mouth_track_frames"]
