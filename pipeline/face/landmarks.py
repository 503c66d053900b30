"""Face detection and 478-point landmarks with MediaPipe FaceMesh (bundled model).

The model is loaded once per process through :mod:`pipeline.models`. A face found in
the full image is refined by running FaceMesh again on an upscaled crop around it,
which makes landmarks of small faces in large photos much more precise.
"""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np

from pipeline import models
from pipeline.errors import FaceTooSmall, MultipleFaces, NoFaceFound
from pipeline.types import FaceInfo

log = logging.getLogger(__name__)

MIN_FACE_PX = 64  # narrower faces (in source pixels) are refused: too few pixels to animate
REFINE_SIZE = 384  # crop size for the second, precise landmark pass
MAX_FACES = 4

MultiFacePolicy = Literal["largest", "refuse"]


def _facemesh(static: bool = True):
    def load():
        import mediapipe as mp

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


def find_face(image: np.ndarray, policy: MultiFacePolicy = "largest") -> FaceInfo:
    """The face to animate in ``image``, with precise landmarks.

    Raises NoFaceFound, FaceTooSmall, or MultipleFaces (policy "refuse").
    """
    faces = detect_faces(image)
    if not faces:
        raise NoFaceFound(
            "No face was found in the image. Use a photo with one clearly visible face, "
            "looking roughly at the camera, with the mouth and eyes unobstructed."
        )
    if len(faces) > 1 and policy == "refuse":
        raise MultipleFaces(
            f"{len(faces)} faces were found. Crop the photo to the person who should speak."
        )
    pts = faces[0]
    width = float(np.ptp(pts[:, 0]))
    if width < MIN_FACE_PX:
        raise FaceTooSmall(
            f"The face is only {width:.0f} px wide; at least {MIN_FACE_PX} px is needed. "
            "Use a larger or closer photo of the face."
        )
    pts = _refine(image, pts)
    return FaceInfo(landmarks=pts, box=_box(pts, image.shape), faces_found=len(faces))


def mouth_gap_ratio(pts: np.ndarray) -> float:
    """Inner-lip gap (landmarks 13/14) divided by mouth width (61/291)."""
    gap = float(np.linalg.norm(pts[13, :2] - pts[14, :2]))
    width = float(np.linalg.norm(pts[61, :2] - pts[291, :2]))
    return gap / max(width, 1e-6)
