"""Face detection and 478-point landmarks with MediaPipe FaceMesh (bundled model).

The model is loaded once per process through :mod:`pipeline.models`. A face found in
the full image is refined by running FaceMesh again on an upscaled crop around it,
which makes landmarks of small faces in large photos much more precise.

:func:`find_face` assesses every face found (:func:`assess_face`: head pose from
:mod:`pipeline.face.pose`, confidence from :mod:`pipeline.face.confidence`) and refuses
faces the engine cannot animate -- turned away, seen from behind, not clearly a face --
instead of painting a mouth on them; among several, the largest frontal, confident
face wins. All of it runs once per photo (a few ms), never per rendered frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from pipeline import models
from pipeline.errors import FaceTooSmall, FaceTurnedAway, MultipleFaces, NoFaceFound, PipelineError
from pipeline.face.confidence import FaceCheck, check_face
from pipeline.face.pose import head_pose
from pipeline.types import FaceInfo

log = logging.getLogger(__name__)

MIN_FACE_PX = 64  # narrower faces (in source pixels) are refused: too few pixels to animate
REFINE_SIZE = 384  # crop size for the second, precise landmark pass
MAX_FACES = 4
# The warp engine animates turns up to ~30° well; past ~45° yaw the far half of the face is
# hidden (and FaceMesh's mesh there is guessed), past ~40° pitch the mouth or the eyes are
# foreshortened away. On 3D-rendered turns of real portraits (pose.py) no head within 30°
# yaw and 30° pitch was refused (0/193), 57/63 at 50° yaw were; a real profile reads ~70°.
MAX_YAW = 45.0  # degrees
MAX_PITCH = 40.0  # degrees
MIN_CONFIDENCE = 0.5  # real faces >= 0.64 on the test set, hair / backs of heads / fur <= 0.45

MultiFacePolicy = Literal["largest", "refuse"]


def _facemesh(static: bool = True):
    def load():
        from pipeline.face.mp_import import mediapipe

        mp = mediapipe()

        return mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=MAX_FACES,
            refine_landmarks=True,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )

    return models.get(f"mediapipe.face_mesh.static={static}", load)


def _run(image: np.ndarray) -> list[np.ndarray]:
    """All faces in ``image`` as (478, 3) pixel arrays."""
    entry = _facemesh(True)
    with entry.lock:
        result = entry.model.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        return []
    h, w = image.shape[:2]
    faces = []
    for lms in result.multi_face_landmarks:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
        faces.append(pts)
    return faces


def _box(pts: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0, y0 = np.floor(pts[:, :2].min(0)).astype(int)
    x1, y1 = np.ceil(pts[:, :2].max(0)).astype(int)
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def _refine(image: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Re-run FaceMesh on a square crop around the face scaled to REFINE_SIZE."""
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
    side = 2.0 * max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
    scale = REFINE_SIZE / side
    # affine: crop centre -> REFINE_SIZE/2, scaled
    m = np.array([[scale, 0, REFINE_SIZE / 2 - scale * cx], [0, scale, REFINE_SIZE / 2 - scale * cy]], np.float32)
    crop = cv2.warpAffine(image, m, (REFINE_SIZE, REFINE_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    found = _run(crop)
    if not found:
        return pts
    # take the face whose centre is nearest the crop centre
    best = min(found, key=lambda f: float(np.hypot(*(f[:, :2].mean(0) - REFINE_SIZE / 2))))
    out = best.copy()
    out[:, 0] = (best[:, 0] - m[0, 2]) / scale
    out[:, 1] = (best[:, 1] - m[1, 2]) / scale
    out[:, 2] = best[:, 2] / scale
    if np.abs(out[:, :2].mean(0) - pts[:, :2].mean(0)).max() > 0.2 * side:
        return pts  # refinement latched onto something else; keep the first pass
    if not 0.7 < np.ptp(out[:, 0]) / max(np.ptp(pts[:, 0]), 1e-6) < 1.4:
        return pts  # a face of another size (e.g. a mesh fitted to hair inside the first one)
    return out


def _tiles(h: int, w: int, side: int) -> list[tuple[int, int, int]]:
    """Overlapping square tiles (x, y, side) covering the image."""
    side = min(side, h, w)
    step = max(1, side // 2)
    xs = list(range(0, max(1, w - side) + 1, step)) + ([w - side] if w > side else [])
    ys = list(range(0, max(1, h - side) + 1, step)) + ([h - side] if h > side else [])
    return [(x, y, side) for y in sorted(set(ys)) for x in sorted(set(xs))]


def _tile_sides(h: int, w: int) -> list[int]:
    """Tile sizes from coarse to fine: halving down to ~6x the smallest face we accept."""
    sides = []
    side = max(256, min(h, w, max(512, max(h, w) // 2)))
    while side >= 6 * MIN_FACE_PX:
        sides.append(side)
        side //= 2
    return sides or [min(h, w)]


def _dedupe(faces: list[np.ndarray]) -> list[np.ndarray]:
    """Drop faces found twice (in overlapping tiles), keeping the larger detection."""
    faces = sorted(faces, key=lambda f: -float(np.ptp(f[:, 0]) * np.ptp(f[:, 1])))
    kept: list[np.ndarray] = []
    for f in faces:
        c = f[:, :2].mean(0)
        if all(np.linalg.norm(c - k[:, :2].mean(0)) > 0.5 * np.ptp(k[:, 0]) for k in kept):
            kept.append(f)
    return kept


def detect_faces(image: np.ndarray) -> list[np.ndarray]:
    """Every face FaceMesh finds, largest first, as (478, 3) pixel arrays (no refinement).

    FaceMesh's detector sees the image at low resolution, so small faces in large or
    wide photos are looked for again in overlapping square tiles.
    """
    faces = _run(image)
    h, w = image.shape[:2]
    if not faces or max(h, w) > 1.4 * min(h, w) or max(h, w) >= 1024:
        for side in _tile_sides(h, w):
            found = []
            for x, y, s in _tiles(h, w, side):
                for f in _run(image[y : y + s, x : x + s]):
                    f = f.copy()
                    f[:, 0] += x
                    f[:, 1] += y
                    found.append(f)
            faces += found
            if faces:  # the coarsest level that finds faces is enough
                break
    return _dedupe(faces)


@dataclass(frozen=True)
class FaceAssessment:
    """One candidate face: its pose, confidence, and what (if anything) rules it out."""

    landmarks: np.ndarray  # (478, 3) pixels
    width: float  # px
    yaw: float  # degrees (pipeline.face.pose conventions)
    pitch: float
    roll: float
    check: FaceCheck | None  # None when the face is too small to bother
    problem: str = ""  # "" usable, else "too_small" | "turned_away" | "unclear"

    @property
    def confidence(self) -> float:
        return self.check.confidence if self.check is not None else 0.0

    @property
    def score(self) -> float:
        """Which usable face to animate: size x frontality x confidence."""
        front = max(0.0, 1.0 - 0.5 * (self.yaw / MAX_YAW) ** 2) * max(0.0, 1.0 - 0.5 * (self.pitch / MAX_PITCH) ** 2)
        return self.width * front * self.confidence

    def describe(self) -> str:
        """What is wrong with the face, as a phrase ("turned away (about 70°)")."""
        if self.problem == "too_small":
            return f"too small ({self.width:.0f} px wide, at least {MIN_FACE_PX} px is needed)"
        if self.problem == "turned_away":
            if abs(self.yaw) > MAX_YAW:
                return f"turned away (about {abs(self.yaw):.0f}°)"
            return f"{'looking down' if self.pitch > 0 else 'looking up'} too far (about {abs(self.pitch):.0f}°)"
        if self.problem == "unclear":
            return (
                f"not clearly a face (confidence {self.confidence:.2f}; "
                "it may be hair, the back of a head or a covered face)"
            )
        return "usable"


def assess_face(image: np.ndarray, pts: np.ndarray) -> FaceAssessment:
    """Pose, confidence and usability of the face whose landmarks are ``pts``."""
    width = float(np.ptp(pts[:, 0]))
    yaw, pitch, roll = head_pose(pts)
    if width < MIN_FACE_PX:
        return FaceAssessment(pts, width, yaw, pitch, roll, None, "too_small")
    check = check_face(image, pts)
    problem = ""
    if abs(yaw) > MAX_YAW or abs(pitch) > MAX_PITCH:
        problem = "turned_away"  # also when unclear: a turned head is the likelier, more useful reason
    elif check.confidence < MIN_CONFIDENCE:
        problem = "unclear"
    return FaceAssessment(pts, width, yaw, pitch, roll, check, problem)


def _refuse(faces: list[FaceAssessment]) -> PipelineError:
    """The error for a photo none of whose faces can be animated; named after the largest."""
    main = faces[0]
    if len(faces) == 1:
        what = f"{'What was found' if main.problem == 'unclear' else 'The face'} is {main.describe()}"
    else:
        others = "; ".join(f"another is {f.describe()}" for f in faces[1:4])
        what = f"{len(faces)} faces were found but none can be animated: the largest is {main.describe()}; {others}"
    if main.problem == "too_small":
        return FaceTooSmall(f"{what}. Use a larger or closer photo of the face.")
    if main.problem == "turned_away":
        return FaceTurnedAway(f"{what}; use a photo that looks toward the camera.", main.yaw, main.pitch)
    return NoFaceFound(
        f"{what}. Use a photo where one face is clearly visible, looking toward the camera, "
        "with the eyes and mouth unobstructed."
    )


def find_face(image: np.ndarray, policy: MultiFacePolicy = "largest") -> FaceInfo:
    """The face to animate in ``image``, with precise landmarks, pose and confidence.

    Every face found is assessed (size, head pose, confidence); faces turned away (more
    than MAX_YAW / MAX_PITCH), unclear (confidence below MIN_CONFIDENCE: hair, a back of
    a head) or too small are passed over, and of the rest the one with the best size x
    frontality x confidence is used. Policy "refuse" refuses several usable faces.

    Raises NoFaceFound, FaceTooSmall, FaceTurnedAway (the largest face's reason, when no
    face is usable) or MultipleFaces (policy "refuse").
    """
    meshes = detect_faces(image)
    if not meshes:
        raise NoFaceFound(
            "No face was found in the image. Use a photo with one clearly visible face, "
            "looking roughly at the camera, with the mouth and eyes unobstructed."
        )
    if len(meshes) == 1:  # nothing to choose: assess the precise mesh only
        faces, precise = [assess_face(image, _refine(image, meshes[0]))], True
    else:
        faces, precise = [assess_face(image, pts) for pts in meshes], False
    usable = [f for f in faces if not f.problem]
    if len(usable) > 1 and policy == "refuse":
        raise MultipleFaces(f"{len(usable)} faces were found. Crop the photo to the person who should speak.")
    for i in sorted((i for i, f in enumerate(faces) if not f.problem), key=lambda i: -faces[i].score):
        fine = faces[i] if precise else assess_face(image, _refine(image, faces[i].landmarks))
        if fine.problem:  # the precise mesh disagrees: keep its reason and try the next face
            faces[i] = fine
            continue
        notes = tuple(
            f"a {'larger' if f.width > fine.width else 'smaller'} face was not used: {f.describe()}"
            for j, f in enumerate(faces)
            if j != i and f.problem
        )
        return FaceInfo(
            landmarks=fine.landmarks,
            box=_box(fine.landmarks, image.shape),
            faces_found=len(faces),
            yaw=fine.yaw,
            pitch=fine.pitch,
            roll=fine.roll,
            confidence=fine.confidence,
            detection_score=fine.check.detection if fine.check else 0.0,
            notes=notes,
        )
    raise _refuse(faces)


def mouth_gap_ratio(pts: np.ndarray) -> float:
    """Inner-lip gap (landmarks 13/14) divided by mouth width (61/291)."""
    gap = float(np.linalg.norm(pts[13, :2] - pts[14, :2]))
    width = float(np.linalg.norm(pts[61, :2] - pts[291, :2]))
    return gap / max(width, 1e-6)
