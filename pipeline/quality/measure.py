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
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from pipeline import models, timing
from pipeline.errors import UnsupportedMedia
from pipeline.face import regions as R

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


def _load_facemesh():
    import mediapipe as mp

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
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.times = np.zeros(0, np.float64)
        self.end = 0.0
        if not self.path.is_file():
            raise UnsupportedMedia(f"Video file not found: {self.path}")
        self.count_hint = self._header_frames()  # from the header (0: unknown), for progress only

    def _header_frames(self) -> int:
        import av

        try:
            with av.open(str(self.path), metadata_errors="replace") as container:
                if not container.streams.video:
                    raise UnsupportedMedia(f"'{self.path.name}' has no video stream.")
                return int(container.streams.video[0].frames or 0)
        except av.FFmpegError as exc:
            raise UnsupportedMedia(f"Cannot read '{self.path.name}' as a video ({exc}).") from exc

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        path = self.path
        try:
            container = av.open(str(path), metadata_errors="replace")
        except av.FFmpegError as exc:
            raise UnsupportedMedia(f"Cannot read '{path.name}' as a video ({exc}).") from exc
        raw: list[float | None] = []
        last_duration: float | None = None
        with container:
            if not container.streams.video:
                raise UnsupportedMedia(f"'{path.name}' has no video stream.")
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            audio_start = _stream_start(container.streams.audio[0]) if container.streams.audio else None
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            nominal = 1.0 / float(rate) if rate else 1.0 / 25.0
            try:
                for frame in container.decode(vs):
                    raw.append(frame.time)
                    if frame.duration and frame.time_base is not None:
                        last_duration = float(frame.duration * frame.time_base)
                    yield frame.to_ndarray(format="rgb24")
            except av.FFmpegError as exc:
                if not raw:
                    raise UnsupportedMedia(f"Cannot decode the video of '{path.name}' ({exc}).") from exc
                log.warning("%s: decoding stopped after %d frames: %s", path.name, len(raw), exc)
        if not raw:
            raise UnsupportedMedia(f"'{path.name}' contains no video frames.")
        times = _fill_times(raw, nominal)
        origin = audio_start if audio_start is not None else float(times[0])
        times = times - origin
        d = np.diff(times)
        if np.any(d <= 0):
            log.warning("%s: frame times are not increasing; measurements may be misplaced", path.name)
        step = float(np.median(d[d > 0])) if np.any(d > 0) else nominal
        self.times = times
        self.end = float(times[-1] + (last_duration or step))


def _stream_start(stream) -> float | None:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return None


def _fill_times(raw: Sequence[float | None], nominal: float) -> np.ndarray:
    """Frame times from pts; a frame without pts goes ``nominal`` after the one before."""
    out = np.empty(len(raw), np.float64)
    prev: float | None = None
    for i, t in enumerate(raw):
        if t is None:
            t = (prev + nominal) if prev is not None else 0.0
        out[i] = t
        prev = t
    return out


def mouth_track(video_path: str | Path, *, passes: int = PASSES, progress: Progress | None = None) -> MouthTrack:
    """Measure every frame of a video file (any codec and container PyAV reads; VFR ok)."""
    video = VideoFrames(video_path)
    return _track(video, lambda n: video.times, lambda: video.end, passes, progress, video.count_hint)


__all__ = ["MODEL_KEY", "STABLE_POINTS", "MouthTrack", "VideoFrames", "mouth_track", "mouth_track_frames"]
