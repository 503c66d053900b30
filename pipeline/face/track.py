"""Following the presenter's face through a clip: landmarks on every frame, shot changes,
lost frames, a second person.

    tracker = FaceTracker(fps=25.0)
    for k, image in frames:                  # constant-rate frames, in order
        if not tracker.add(image):           # False: the presenter's shot has ended
            break
    track = tracker.finish()                 # FaceTrack: smoothed landmarks for the shot used

The main face is chosen on its first frame like a photo's (:func:`find_face`: the largest
usable face) and then followed: each frame runs FaceMesh on a crop around where the face
was, and a face found there counts only if it is near and of a similar size (so a second
person never takes over). A face lost for a while is looked for in the whole frame again,
at a similar size. Frames without it are bridged by interpolation (:mod:`track_filter`);
if it is missing from most of the shot, :func:`FaceTracker.finish` refuses the clip and
says where it is missing.

Shot changes: a frame whose thumbnail differs strongly from the one before, in its pixels and
in its colours (so fast motion is not a cut), starts a new shot unless the old picture comes back within :data:`CUT_CONFIRM_S` (a flash, a hand in
front of the lens). Only the first shot in which the presenter is found is used; frames
after its end are not tracked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import NoFaceFound, PipelineError
from pipeline.face.landmarks import MultiFacePolicy, _run, find_face
from pipeline.face.track_filter import bridge, smooth_track, spans

log = logging.getLogger(__name__)

CROP = 256  # px: side of the crop FaceMesh runs on around the previous face
CROP_SCALE = 2.0  # crop side / face size
MAX_SHIFT = 0.4  # a face found further than this (face widths) from the last one is someone else
SIZE_RATIO = 1.45  # ... or one this much larger or smaller
CUT_DIFF = 28.0  # mean absolute thumbnail difference (grey levels) that may be a shot change ...
CUT_COLOURS = 0.35  # ... when the colour histograms differ this much too (0 same, 1 disjoint)
CUT_CONFIRM_S = 0.2  # s: the old picture coming back within this undoes the cut
SEARCH_EVERY = 3  # frames between whole-frame searches while the face is lost
CENSUS_S = 1.0  # s between whole-frame face counts (a second person)
MAX_LOST_SHARE = 0.5  # a shot missing the face in more of its frames than this is refused
MIN_SHOT_S = 1.0  # s: a shot with the presenter must be at least this long


@dataclass(frozen=True)
class FaceTrack:
    """The presenter's face over the frames ``[start, end)`` of a constant-rate clip."""

    landmarks: np.ndarray  # float32 (n, 478, 3): smoothed, lost frames bridged
    raw: np.ndarray  # float32 (n, 478, 3): as detected, lost frames bridged (not smoothed)
    found: np.ndarray  # bool (n,): the face was detected in the frame
    start: int  # first frame (index in the constant-rate frames fed)
    end: int  # one past the last
    fps: float
    face_width: float  # px: median width of the face
    cuts: tuple[int, ...]  # frames where a shot change was seen (feed indices)
    times: np.ndarray  # float64 (n,): when each frame's picture was taken (source seconds)
    warnings: tuple[str, ...]

    @property
    def n_frames(self) -> int:
        return self.end - self.start


def _fmt_spans(runs: list[tuple[int, int]], fps: float, offset: int = 0, limit: int = 4) -> str:
    parts = [f"{(a + offset) / fps:.2f}–{(b + offset) / fps:.2f} s" for a, b in runs[:limit]]
    if len(runs) > limit:
        parts.append(f"and {len(runs) - limit} more")
    return ", ".join(parts)


def _histogram(small: np.ndarray) -> np.ndarray:
    """Per-channel 16-bin colour histograms of a thumbnail, each summing to 1."""
    h = np.stack([np.bincount(small[..., c].ravel() >> 4, minlength=16) for c in range(3)]).astype(np.float32)
    return h / max(1.0, float(small.shape[0] * small.shape[1]))


def _different(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], relax: float = 1.0) -> bool:
    """Whether two thumbnails show different pictures: the pixels differ AND the colours do (a
    moving head or a pan changes pixels but not the colour histogram; a cut changes both)."""
    pixels = float(np.abs(a[0] - b[0]).mean())
    colours = 0.5 * float(np.abs(a[1] - b[1]).sum(1).mean())  # 0 same .. 1 disjoint
    return pixels >= relax * CUT_DIFF and colours >= relax * CUT_COLOURS


class FaceTracker:
    """Feed constant-rate frames in order with :meth:`add`; :meth:`finish` gives the track."""

    def __init__(self, fps: float, multi_face: MultiFacePolicy = "largest") -> None:
        self.fps = float(fps)
        self.multi_face = multi_face
        self.k = 0  # frames fed
        self.shot_start = 0
        self.cuts: list[int] = []
        self.main_error: PipelineError | None = None  # why the face was not found at the start
        self.notes: list[str] = []
        self._lm: list[np.ndarray | None] = []
        self._times: list[float] = []  # when each frame's picture was taken (s)
        self._last: np.ndarray | None = None  # last found landmarks
        self._width = 0.0
        self._lost = 0
        self._thumb_prev: np.ndarray | None = None
        self._anchor: np.ndarray | None = None  # thumbnail before a candidate cut
        self._candidate = -1  # frame of a candidate cut, -1 none
        self._shot_end = -1  # confirmed end of the presenter's shot
        self._candidate_confirmed = -1
        self._census_at = 0
        self._second_at = -1.0  # when a second face was first seen (s), -1 never

    # -- feeding --------------------------------------------------------------------------

    def add(self, image: np.ndarray, time: float | None = None) -> bool:
        """Track one frame (``time``: when its picture was taken, for a re-timed clip); False
        once the presenter's shot has ended (stop feeding)."""
        k = self.k
        self.k += 1
        self._times.append(k / self.fps if time is None else float(time))
        if self._cut_at(image, k):
            self._shot_end = self._candidate_confirmed
            return False
        pts = self._follow(image, k) if self._last is not None else self._acquire(image, k)
        self._lm.append(pts)
        if pts is not None:
            self._last = pts
            self._lost = 0
            w = float(np.ptp(pts[:, 0]))
            self._width = w if self._width == 0 else 0.9 * self._width + 0.1 * w
        elif self._last is not None:
            self._lost += 1
        return True

    def _cut_at(self, image: np.ndarray, k: int) -> bool:
        """Whether a shot change is now confirmed (its frame in ``_candidate_confirmed``)."""
        h, w = image.shape[:2]
        step = max(1, min(h // 54, w // 96))  # every few pixels: the thumbnail is tiny
        small = cv2.resize(image[::step, ::step, :3], (48, 27), interpolation=cv2.INTER_AREA)
        thumb = (cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), _histogram(small))
        prev, self._thumb_prev = self._thumb_prev, thumb
        if prev is None:
            return False
        confirm = max(2, int(round(CUT_CONFIRM_S * self.fps)))
        if self._candidate >= 0:
            assert self._anchor is not None
            if not _different(thumb, self._anchor, 0.5):  # the old picture is back (a flash, a hand)
                self._candidate = -1
            elif k - self._candidate >= confirm:
                self._candidate_confirmed = self._candidate
                self.cuts.append(self._candidate)
                self._candidate = -1
                cut = self._candidate_confirmed
                before = any(lm is not None for lm in self._lm[self.shot_start : cut])
                if not before:  # no presenter before the cut: the new shot starts there
                    self.shot_start = cut
                    return False
                return True
            return False
        if _different(thumb, prev):
            self._candidate, self._anchor = k, prev
        return False

    def _acquire(self, image: np.ndarray, k: int) -> np.ndarray | None:
        """The main face, chosen like a photo's, once something face-like is in view."""
        if k % max(1, SEARCH_EVERY) and k > 0:
            return None
        if not _run(image):
            # FaceMesh sees a large frame at low resolution: look closer (tiles) now and then
            if max(image.shape[:2]) < 1024 or k % max(1, int(round(0.5 * self.fps))):
                return None
        try:
            face = find_face(image, policy=self.multi_face)
        except PipelineError as exc:
            if self.main_error is None:
                self.main_error = exc
            return None
        self.notes.extend(face.notes)
        if face.faces_found > 1:
            self._second_at = k / self.fps
        self._width = float(np.ptp(face.landmarks[:, 0]))
        return face.landmarks.astype(np.float32)

    def _follow(self, image: np.ndarray, k: int) -> np.ndarray | None:
        assert self._last is not None
        last = self._last
        cx, cy = last[:, 0].mean(), last[:, 1].mean()
        side = CROP_SCALE * max(np.ptp(last[:, 0]), np.ptp(last[:, 1]))
        s = CROP / side
        m = np.array([[s, 0, CROP / 2 - s * cx], [0, s, CROP / 2 - s * cy]], np.float32)
        crop = cv2.warpAffine(image[..., :3], m, (CROP, CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        found = []
        for f in _run(crop):
            f = f.copy()
            f[:, 0] = (f[:, 0] - m[0, 2]) / s
            f[:, 1] = (f[:, 1] - m[1, 2]) / s
            f[:, 2] /= s
            found.append(f)
        if (not found and self._lost >= SEARCH_EVERY and self._lost % SEARCH_EVERY == 0) or k >= self._census_at:
            whole = _run(np.ascontiguousarray(image[..., :3]))
            if k >= self._census_at:
                self._census_at = k + max(1, int(round(CENSUS_S * self.fps)))
                if len(whole) > 1 and self._second_at < 0:
                    self._second_at = k / self.fps
            if not found and self._lost >= SEARCH_EVERY:
                found = whole
        return self._pick(found, last)

    def _pick(self, found: list[np.ndarray], last: np.ndarray) -> np.ndarray | None:
        """The candidate that is the presenter: near the last position, a similar size."""
        if not found:
            return None
        c0 = last[:, :2].mean(0)
        w0 = max(self._width, 1.0)
        best = min(found, key=lambda f: float(np.linalg.norm(f[:, :2].mean(0) - c0)))
        w = float(np.ptp(best[:, 0]))
        near = np.linalg.norm(best[:, :2].mean(0) - c0) <= MAX_SHIFT * w0 * min(1 + self._lost / 4, 2.5)
        if not near or not 1 / SIZE_RATIO <= w / w0 <= SIZE_RATIO:
            return None
        return best.astype(np.float32)

    # -- result ---------------------------------------------------------------------------

    def finish(self) -> FaceTrack:
        """The track of the presenter's shot (smoothed, bridged), or the error saying why not."""
        fps = self.fps
        end = self._shot_end if self._shot_end >= 0 else len(self._lm)
        if self._candidate >= 0 and self._last is not None and self._shot_end < 0:
            end = self._candidate  # a cut seen too close to the end to be confirmed: stop there
            self.cuts.append(self._candidate)
        lms = self._lm[:end]
        idx = [i for i in range(self.shot_start, end) if lms[i] is not None]
        if not idx:
            if self.main_error is not None:
                raise type(self.main_error)(f"In the clip: {self.main_error.message}")
            raise NoFaceFound(
                "No face was found in the clip. Use a clip where one face is clearly visible, "
                "looking roughly at the camera."
            )
        # the shot starts with the presenter's first frame (a title card before it is dropped)
        start = max(self.shot_start, idx[0]) if idx[0] - self.shot_start > fps * 0.5 else self.shot_start
        n = end - start
        found = np.array([lms[i] is not None for i in range(start, end)], bool)
        lost = spans(~found)
        if n < MIN_SHOT_S * fps:
            raise NoFaceFound(
                f"The presenter is in view for only {n / fps:.2f} s ({start / fps:.2f}–{end / fps:.2f} s) "
                f"before the clip changes shot; use a clip with at least {MIN_SHOT_S:g} s of one continuous shot."
            )
        share = 1.0 - found.mean()
        if share > MAX_LOST_SHARE:
            raise NoFaceFound(
                f"The face is missing from {100 * share:.0f} % of the clip: not found at "
                f"{_fmt_spans(sorted(lost, key=lambda r: r[0] - r[1]), fps, start)}. Use a clip where the "
                "presenter's face stays in view and unobstructed."
            )
        raw = np.zeros((n, 478, 3), np.float32)
        for i in range(n):
            if found[i]:
                raw[i] = lms[start + i]
        raw = bridge(raw, found)
        width = float(np.median(np.ptp(raw[found, :, 0], axis=1)))
        times = np.asarray(self._times[start:end], np.float64)
        smooth = smooth_track(raw, fps, width, times=times)
        warnings = list(dict.fromkeys(self.notes))
        if self.cuts and (start > 0 or end < self.k):
            warnings.append(
                f"The clip changes shot at {', '.join(f'{c / fps:.2f} s' for c in self.cuts[:3])}; only the "
                f"first shot with the presenter ({start / fps:.2f}–{end / fps:.2f} s) is used."
            )
        elif start > 0:
            warnings.append(f"The presenter appears at {start / fps:.2f} s; the clip is used from there.")
        if self._second_at >= 0:
            warnings.append(
                f"A second face is in view (at {self._second_at:.1f} s); the presenter found first "
                "(the largest usable face) is the one animated."
            )
        if lost:
            warnings.append(
                f"The face was not found in {int((~found).sum())} frames ({_fmt_spans(lost, fps, start)}); "
                "there the mouth follows the head by interpolation."
            )
        return FaceTrack(smooth, raw, found, start, end, fps, width, tuple(self.cuts), times, tuple(warnings))
