"""Preview images for the UI: the photo with what the face finder saw drawn on it."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.types import Avatar


def landmarks_overlay(avatar: Avatar) -> np.ndarray:
    """The source image with the detected landmarks and face box drawn on it."""
    img = avatar.image.copy()
    r = max(1, int(round(avatar.face.width / 160)))
    for x, y in avatar.face.xy.astype(int):
        cv2.circle(img, (int(x), int(y)), r, (80, 255, 120), -1, cv2.LINE_AA)
    x0, y0, x1, y1 = avatar.face.box
    cv2.rectangle(img, (x0, y0), (x1, y1), (255, 200, 0), max(1, r), cv2.LINE_AA)
    return img
