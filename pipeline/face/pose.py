"""Head pose (yaw, pitch, roll in degrees) from the 478 FaceMesh landmarks.

A rigid canonical face (``_canonical_data.py``, measured from FaceMesh on portraits, see
:mod:`pipeline.face.canonical`) is fitted to the landmarks of the upper face (above the
mouth, irises left out), so an open mouth or a glance does not read as a nod or a turn:

- yaw and roll from a weak-perspective fit to the image positions only (x, y);
- pitch from a 3D similarity fit that also uses FaceMesh's depth (z).

On rotated renderings of real faces this split was the most accurate: FaceMesh's depth
flattens as the head turns, so a 3D fit reads turns ~25 % short, while a nod hardly
moves the 2D outline, so a 2D fit reads nods ~35 % short. What is left of that
shortfall (FaceMesh pulls its meshes towards a frontal face) is undone by a small
calibration measured the same way (see ``_YAW_CAL`` / ``_PITCH_CAL``). On those renders
the calibrated error is 2.8° (yaw) and 3.4° (pitch) on average, within 8° and 11° for
95 % of the views; rigid rotations of real landmarks are read back within 1° (raw).

Conventions (those of the motion tracks): yaw > 0 the nose turns towards the image
right, pitch > 0 chin down, roll > 0 the head tilts clockwise in the image. 0, 0, 0 is
a face looking into the camera as in a portrait. Works on any (478, 3) landmark array
in pixels (x, y) with z in the same unit, e.g. ``FaceInfo.landmarks`` or one frame of a
tracked clip.
"""

from __future__ import annotations

import numpy as np

from pipeline.face import _canonical_data

MODEL = np.asarray(_canonical_data.MODEL, dtype=np.float64)  # (478, 3), see _canonical_data
PARTNER = np.asarray(_canonical_data.PARTNER, dtype=np.intp)  # mirror partner of each landmark
MIDLINE = np.flatnonzero(PARTNER == np.arange(len(PARTNER)))

# rigid upper face: above the point halfway between the mouth corners and the base of
# the nose, without the irises (468-477), which follow the gaze
_mouth_y = 0.5 * (MODEL[61, 1] + MODEL[2, 1])
RIGID = np.flatnonzero((MODEL[:, 1] < _mouth_y) & (np.arange(len(MODEL)) < 468))

# FaceMesh's meshes are pulled towards frontal: the raw estimate (first row) reads the
# true angle (second row) short, more so the larger it is. Measured on two portraits (and
# their mirror images) rendered as textured 3D heads turned by known angles (416 views,
# yaw +-60, pitch +-40): the mean raw reading per true angle. Yaw is symmetric; pitch is
# not (a lowered chin reads shorter than a raised one). Linear beyond the tables.
_YAW_CAL = (np.array([0.0, 20.1, 28.5, 36.5, 44.6, 49.5]), np.array([0.0, 20.0, 30.0, 40.0, 50.0, 60.0]))
_PITCH_CAL = (
    np.array([-37.6, -28.9, -20.2, 0.0, 18.6, 25.3, 30.4]),
    np.array([-40.0, -30.0, -20.0, 0.0, 20.0, 30.0, 40.0]),
)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The 3x3 rotation (camera coordinates: x right, y down, z away) of a head pose in degrees.

    ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``; ``points @ R.T`` turns a face by the pose.
    """
    a, b, c = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation made by :func:`rotation`."""
    yaw = np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return tuple(float(v) for v in np.rad2deg([yaw, pitch, roll]))  # type: ignore[return-value]


def fit_2d(landmarks: np.ndarray, idx: np.ndarray = RIGID) -> np.ndarray:
    """Rotation of the canonical face that best explains the landmarks' x, y (weak perspective)."""
    x = MODEL[idx] - MODEL[idx].mean(0)
    y = landmarks[idx, :2].astype(np.float64)
    y = y - y.mean(0)
    a, *_ = np.linalg.lstsq(x, y, rcond=None)  # x @ a ~ y, a: (3, 2)
    u, _, vt = np.linalg.svd(a.T, full_matrices=False)
    r12 = u @ vt  # nearest pair of orthonormal rows
    return np.vstack([r12, np.cross(r12[0], r12[1])])


def fit_3d(landmarks: np.ndarray, idx: np.ndarray = RIGID) -> np.ndarray:
    """Rotation of the canonical face that best explains the landmarks' x, y and z (Kabsch)."""
    x = MODEL[idx] - MODEL[idx].mean(0)
    y = landmarks[idx].astype(np.float64)
    y = y - y.mean(0)
    u, _, vt = np.linalg.svd(y.T @ x)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _interp(value: float, raw: np.ndarray, true: np.ndarray) -> float:
    """Piecewise-linear map through the table, extended linearly past both ends."""
    if value > raw[-1]:
        return float(true[-1] + (value - raw[-1]) * (true[-1] - true[-2]) / (raw[-1] - raw[-2]))
    if value < raw[0]:
        return float(true[0] + (value - raw[0]) * (true[1] - true[0]) / (raw[1] - raw[0]))
    return float(np.interp(value, raw, true))


def calibrate(yaw: float, pitch: float) -> tuple[float, float]:
    """Raw (FaceMesh-shortened) yaw and pitch to the true angles, clipped to +-180 / +-90."""
    y = float(np.copysign(_interp(abs(yaw), *_YAW_CAL), yaw))
    p = _interp(pitch, *_PITCH_CAL)
    return float(np.clip(y, -180.0, 180.0)), float(np.clip(p, -90.0, 90.0))


def raw_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Uncalibrated (yaw, pitch, roll): yaw and roll from the 2D fit, pitch from the 3D fit."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != MODEL.shape:
        raise ValueError(f"expected (478, 3) landmarks, got {pts.shape}")
    yaw, _, roll = angles(fit_2d(pts))
    _, pitch, _ = angles(fit_3d(pts))
    return yaw, pitch, roll


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of the head whose FaceMesh landmarks are given."""
    yaw, pitch, roll = raw_pose(landmarks)
    yaw, pitch = calibrate(yaw, pitch)
    return yaw, pitch, roll
