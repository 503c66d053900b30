"""How sure we are that a FaceMesh mesh sits on a real, visible face.

FaceMesh reports no score and fits a face-shaped mesh to whatever its detector hands it,
hair and the back of a head included. Three checks, each cheap (one photo, not per frame):

1. detector: MediaPipe's short-range face detector (``solutions.face_detection``, in the
   wheel) run on a crop around the mesh gives a score;
2. agreement: its eye, nose-tip and mouth keypoints must sit where the mesh has them
   (error as a fraction of the face size) -- a mesh on hair next to a real face, or a
   mesh the detector places elsewhere, disagrees;
3. appearance: eyes, brows and lips have more contrast than the skin between them
   (median intensity spread in the feature polygons over that in the cheek and forehead
   patches); hair, fur, fabric and background are about as busy everywhere (ratio < 1).

``confidence = score * agreement * appearance``, each in [0, 1]. On the test set (real
portraits, 3D-rendered turns to 60 degrees, downscaled, blurred, JPEG 20, noisy and dark
versions) real faces scored >= 0.64; meshes placed on hair, a back of a head, fur, a
suit, background or a cartoon scored <= 0.45.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline import models
from pipeline.face import regions

CROP = 256  # side of the square crop the checks run on
CROP_SCALES = (2.0, 1.5)  # crop side over face size; the second is tried when the first scores low
KEY_ERR_OK, KEY_ERR_BAD = 0.10, 0.20  # keypoint error (of the face size): full agreement .. none
CONTRAST_BAD, CONTRAST_OK = 0.6, 1.0  # feature/skin contrast ratio: none .. full
RETRY_BELOW = 0.6  # try the second crop scale when the first gives less


@dataclass(frozen=True)
class FaceCheck:
    """The parts of a face's confidence (see the module doc)."""

    confidence: float  # 0..1, product of the three terms below
    detection: float  # score of the detection that agrees best with the mesh, 0 when none agrees
    key_error: float  # detector vs mesh keypoints, fraction of the face size (inf: no detection)
    contrast: float  # feature / skin contrast ratio (> 1 on faces)

    @property
    def agreement(self) -> float:
        return float(np.clip((KEY_ERR_BAD - self.key_error) / (KEY_ERR_BAD - KEY_ERR_OK), 0.0, 1.0))

    @property
    def appearance(self) -> float:
        return float(np.clip((self.contrast - CONTRAST_BAD) / (CONTRAST_OK - CONTRAST_BAD), 0.0, 1.0))


def _detector():
    def load():
        from pipeline.face.mp_import import mediapipe

        mp = mediapipe()

        return mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.05)

    return models.get("mediapipe.face_detection.short", load)


def _crop(image: np.ndarray, pts: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of side k * face size around the mesh, scaled to CROP; mesh x, y in it."""
    cx, cy = float(pts[:, 0].mean()), float(pts[:, 1].mean())
    side = k * max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 1.0)
    s = CROP / side
    m = np.array([[s, 0, CROP / 2 - s * cx], [0, s, CROP / 2 - s * cy]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, m, (CROP, CROP), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(127, 127, 127))
    return crop, pts[:, :2] * s + m[:, 2]


def _mesh_keys(q: np.ndarray) -> np.ndarray:
    """The detector's first four keypoints as the mesh has them: right eye, left eye, nose tip, mouth."""
    return np.array([q[[33, 133]].mean(0), q[[362, 263]].mean(0), q[1], q[[13, 14]].mean(0)])


def _detect(crop: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """(score, keypoint error) of the detection that agrees best with the mesh."""
    entry = _detector()
    with entry.lock:
        result = entry.model.process(np.ascontiguousarray(crop))
    if not result.detections:
        return 0.0, float("inf")
    keys = _mesh_keys(q)
    size = max(float(np.ptp(q[:, 0])), float(np.ptp(q[:, 1])), 1.0)
    best = (0.0, float("inf"))
    for d in result.detections:
        kp = np.array([(p.x * CROP, p.y * CROP) for p in d.location_data.relative_keypoints[:4]])
        err = float(np.linalg.norm(kp - keys, axis=1).max()) / size
        score = float(d.score[0])
        if _combine(score, err) > _combine(*best):
            best = (score, err)
    return best


def _combine(score: float, err: float) -> float:
    return score * float(np.clip((KEY_ERR_BAD - err) / (KEY_ERR_BAD - KEY_ERR_OK), 0.0, 1.0))


def _poly(shape: tuple[int, int], q: np.ndarray, idx: tuple[int, ...], grow: int = 0) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(q[list(idx)]).astype(np.int32)], 1)
    if grow:
        m = cv2.dilate(m, np.ones((grow, grow), np.uint8))
    return m.astype(bool)


def contrast_ratio(crop: np.ndarray, q: np.ndarray) -> float:
    """Median intensity spread in the eyes and lips over that in the cheeks and forehead."""
    g = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sh = g.shape[:2]
    feats = [_poly(sh, q, regions.RIGHT_EYE, 4), _poly(sh, q, regions.LEFT_EYE, 4), _poly(sh, q, regions.OUTER_LIPS, 4)]
    skins = [_poly(sh, q, idx) for idx in (regions.RIGHT_CHEEK, regions.LEFT_CHEEK, regions.FOREHEAD)]
    f = [float(g[m].std()) for m in feats if m.sum() > 10]
    s = [float(g[m].std()) for m in skins if m.sum() > 10]
    if not f or not s:
        return 0.0
    return float(np.median(f) / (np.median(s) + 2.0))


def check_face(image: np.ndarray, landmarks: np.ndarray) -> FaceCheck:
    """Confidence that ``landmarks`` (478, 3 pixels) lie on a real, visible face in ``image``."""
    best: FaceCheck | None = None
    for k in CROP_SCALES:
        crop, q = _crop(image, landmarks, k)
        score, err = _detect(crop, q)
        contrast = contrast_ratio(crop, q) if best is None else best.contrast
        check = FaceCheck(0.0, score, err, contrast)
        check = FaceCheck(score * check.agreement * check.appearance, score, err, contrast)
        if best is None or check.confidence > best.confidence:
            best = check
        if best.confidence >= RETRY_BELOW:
            break
    assert best is not None
    return best
