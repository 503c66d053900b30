"""The `wav2lip` engine on a presenter clip: every clip frame gets its own crop and new mouth.

This is how Wav2Lip itself dubs a video. The clip frames follow the speech with the same
duration fitting as the warp engine (:mod:`clip_fit`: the whole clip, a cut at a calm
point, or a ping-pong; parts of a streamed speech continue where the last one stopped).
For each output frame: the fitted clip frame, its face crop from the smoothed face track
(:func:`pipeline.engines.paste.face_geometry`), the network input (that crop with its lower
half blacked out, and the crop itself as reference), and the paste-back onto that frame
(feathered lower-face mask, colour match smoothed across frames, detail transfer). Eyes,
blinks and head motion are the presenter's own; frames come back RGB and the render
session mattes them one by one.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.engines import paste as P
from pipeline.engines.clip_fit import FrameCursor, head_speed
from pipeline.media.image import resize_to
from pipeline.options import RenderOptions
from pipeline.types import Avatar

log = logging.getLogger(__name__)


@dataclass
class ClipSource:
    path: str  # the prepared clip's stored frames (BlockReader)
    stored_frames: int
    first: int  # stored index of clip frame 0
    n_clip: int
    size: tuple[int, int]  # output (width, height)
    landmarks: np.ndarray  # (n_clip, 478, 3) smoothed face track at output size
    speed: np.ndarray  # head speed per clip frame (duration fitting)
    fps: float
    cursor: FrameCursor | None = None  # where the last render stopped
    reader: object | None = None

    def order(self, n: int) -> np.ndarray:
        """Clip frames for the next ``n`` output frames (the whole speech fitted on the first call)."""
        if self.cursor is None:
            self.cursor = FrameCursor(self.n_clip, self.speed, self.fps)
        return self.cursor.order(n)

    def frame(self, k: int) -> np.ndarray:
        """Clip frame ``k`` at output size (RGB, a copy)."""
        if self.reader is None:
            from pipeline.media.clip_frames import BlockReader

            self.reader = BlockReader(self.path, self.stored_frames, self.fps)
        f = self.reader[self.first + int(k)]  # type: ignore[index]
        if (f.shape[1], f.shape[0]) != self.size:
            interp = cv2.INTER_AREA if self.size[0] < f.shape[1] else cv2.INTER_LINEAR
            return cv2.resize(f, self.size, interpolation=interp)
        return f.copy()


def prepare_clip_source(avatar: Avatar, opts: RenderOptions) -> tuple[Avatar, ClipSource]:
    """The clip at the render's frame rate and output size, and its reference frame's avatar."""
    from pipeline.engines.warp_clip import clip_at_rate
    from pipeline.face.clip import manifest_of

    avatar = clip_at_rate(avatar, opts.fps)
    clip = avatar.clip
    assert clip is not None
    manifest = manifest_of(clip)
    image = avatar.image
    if opts.size and max(image.shape[:2]) != opts.size:
        image, _ = resize_to(image, opts.size)
    size = (image.shape[1], image.shape[0])
    s = size[0] / float(manifest["width"])
    lm = np.asarray(clip.landmarks, np.float32).copy()
    lm[..., :3] *= np.float32(s)
    face_w = float(manifest.get("face_width", 100.0))
    src = ClipSource(clip.path, int(manifest["stored_frames"]), int(manifest["first"]), clip.n_frames, size, lm,
                     head_speed(clip.landmarks, face_w), clip.fps)
    ref = dataclasses.replace(avatar, image=np.ascontiguousarray(image[..., :3]), matte=None,
                              face=dataclasses.replace(avatar.face, landmarks=lm[int(manifest["reference"])]))
    return ref, src


def frame_inputs(frame: np.ndarray, lm: np.ndarray, size: int) -> tuple[np.ndarray, P.PasteTarget]:
    """The network's face input for one clip frame, and where its mouth goes back."""
    geom = P.face_geometry(lm, size)
    return P.network_face(P.crop(frame, geom)), P.paste_target(frame, geom)
