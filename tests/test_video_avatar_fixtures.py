"""Synthetic presenter clips for the video-avatar tests and bench/video_avatar.py.

The bundled sample photo, its mouth already moving (the warp engine driven by a 4 Hz
"talking" jaw), moved, scaled and rotated per frame with cv2 and written with PyAV at a
variable frame rate; optionally with frames blanked (face lost), rotation metadata, a shot
change or a second face. The true similarity transform of every frame is returned, so a
test knows where each landmark really is."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

W, H = 320, 240


@dataclass
class ClipTruth:
    path: Path
    times: np.ndarray  # presentation time of each written frame (s)
    matrices: np.ndarray  # (n, 2, 3): photo pixels -> upright clip pixels
    landmarks: np.ndarray  # (478, 3) of the photo
    duration: float


_RIG: dict = {}


def _photo_rig():
    if not _RIG:
        from pipeline import prepare_avatar
        from pipeline.engines import warp
        from pipeline.options import RenderOptions

        avatar = prepare_avatar(None)
        rig = warp.prepare(avatar, RenderOptions(size=0))
        _RIG.update(avatar=avatar, rig=rig)
    return _RIG["avatar"], _RIG["rig"]


def talking_photo(t: float, mouth: bool = True) -> np.ndarray:
    """The sample photo with its mouth at the pose of a talking person at time ``t``."""
    from pipeline.engines import warp

    _, rig = _photo_rig()
    out = rig.image.copy()
    if mouth:
        jaw = 0.5 * max(0.0, np.sin(2 * np.pi * 3.7 * t)) ** 0.8 + 0.1 * max(0.0, np.sin(2 * np.pi * 1.3 * t))
        c = dict(jaw=jaw, gap=min(1.0, 2 * jaw), teeth=0.3, spread=0.0, round=0.0, press=0.0, tongue=0.0, smile=0.0)
        warp._mouth_frame(rig.mouth, rig.image, out, c)
    return out[..., :3]


FACE_CENTRE = (224.0, 123.0)  # photo pixels: about the middle of the sample's face


def motion(t: float, size: tuple[int, int] = (W, H), scale: float = 1.3, amount: float = 1.0) -> np.ndarray:
    """Photo -> clip similarity at time ``t``: a slow sway, nod and lean."""
    w, h = size
    a = np.deg2rad(amount * 4.0 * np.sin(2 * np.pi * 0.31 * t))
    s = scale * (1.0 + amount * 0.04 * np.sin(2 * np.pi * 0.23 * t))
    m = np.array([[s * np.cos(a), -s * np.sin(a), 0.0], [s * np.sin(a), s * np.cos(a), 0.0]])
    centre = np.array([w / 2 + amount * 0.06 * w * np.sin(2 * np.pi * 0.4 * t),
                       0.45 * h + amount * 0.03 * h * np.cos(2 * np.pi * 0.27 * t)])
    m[:, 2] = centre - m[:, :2] @ np.array(FACE_CENTRE)
    return m


def vfr_times(seconds: float, seed: int = 0, lo: float = 1 / 40, hi: float = 1 / 20) -> np.ndarray:
    """Frame times of a phone-like variable-rate recording (steps between ``lo`` and ``hi``)."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(lo, hi, int(seconds / lo) + 2)
    t = np.concatenate([[0.0], np.cumsum(steps)])
    return np.round(t[t < seconds] * 1000) / 1000


def make_clip(
    path: Path, seconds: float = 3.0, *, size: tuple[int, int] = (W, H), vfr: bool = True, fps: float = 30.0,
    blank: tuple[tuple[float, float], ...] = (), cover: tuple[tuple[float, float], ...] = (), rotation: int = 0,
    cut_at: float | None = None,
    second_face: bool = False, mouth: bool = True, codec: str = "libx264", seed: int = 0, amount: float = 1.0,
    scale: float = 1.3, audio: bool | str = False, speed: float = 1.0,
) -> ClipTruth:
    """Write a presenter clip (see the module docstring); ``blank`` spans (s) are flat grey,
    in ``cover`` spans a box hides the face; ``audio`` True (AAC) or an encoder name adds a tone."""
    avatar, _ = _photo_rig()
    times = vfr_times(seconds, seed) if vfr else np.arange(int(round(seconds * fps))) / fps
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    backdrop = np.dstack([60 + 40 * xx / w, 70 + 30 * yy / h, 90 + 0 * xx]).astype(np.uint8)
    other = np.dstack([120 + 50 * np.sin(xx / 7.0), 100 + 40 * np.cos(yy / 5.0), 80 + 0 * xx]).astype(np.uint8)
    k_rot = int(round(rotation / 90)) % 4
    sw, sh = (h, w) if k_rot % 2 else (w, h)
    mats = []
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=int(fps))
        s.width, s.height = sw, sh
        s.pix_fmt = {"prores_ks": "yuv422p10le", "mjpeg": "yuvj420p"}.get(codec, "yuv420p")
        if vfr:
            s.codec_context.time_base = Fraction(1, 1000)
            s.time_base = Fraction(1, 1000)
        if rotation:
            s.set_display_rotation(rotation)
        a = c.add_stream("aac" if audio is True else audio, rate=48000) if audio else None
        for i, t in enumerate(times):
            m = motion(float(t) * speed, size, scale, amount)
            mats.append(m)
            frame = cv2.warpAffine(talking_photo(float(t), mouth), m, (w, h), borderMode=cv2.BORDER_REFLECT)
            if second_face:
                small = cv2.resize(talking_photo(float(t) + 0.4, mouth), (w // 3, w // 3), interpolation=cv2.INTER_AREA)
                frame[4 : 4 + w // 3, w - 4 - w // 3 : w - 4] = small
            if cut_at is not None and t >= cut_at:
                frame = other.copy()
            if any(a0 <= t < a1 for a0, a1 in cover):  # something in front of the face, the room as it was
                fc = m[:, :2] @ np.array(FACE_CENTRE) + m[:, 2]
                r = int(0.55 * 92 * m[0, 0] / np.cos(np.arctan2(m[1, 0], m[0, 0])))
                x, y = int(fc[0]), int(fc[1])
                cv2.rectangle(frame, (x - r, y - int(1.3 * r)), (x + r, y + int(1.3 * r)), (150, 120, 100), -1)
            if any(a0 <= t < a1 for a0, a1 in blank):
                frame = np.full_like(frame, 128)
            frame = np.ascontiguousarray(np.rot90(frame, -k_rot)) if k_rot else frame
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if vfr:
                vf.pts, vf.time_base = int(round(t * 1000)), Fraction(1, 1000)
            else:
                vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
        if a is not None:
            cc = a.codec_context
            n, step = int(48000 * seconds), cc.frame_size or 1024
            tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(n) / 48000)
            planar = cc.format.is_planar
            for i0 in range(0, n - step + 1, step):
                x = tone[i0 : i0 + step]
                x = (x * 32767).astype(np.int16) if cc.format.name.startswith("s16") else x.astype(np.float32)
                af = av.AudioFrame.from_ndarray(x[None] if planar else x[None, :], format=cc.format.name, layout="mono")
                af.sample_rate, af.pts = 48000, i0
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    del backdrop
    return ClipTruth(path, np.asarray(times), np.asarray(mats), avatar.face.landmarks.copy(), float(seconds))


def true_points(truth: ClipTruth, t: float, idx: list[int]) -> np.ndarray:
    """Where landmarks ``idx`` of the photo are in the clip's frame on screen at ``t``."""
    i = max(0, int(np.searchsorted(truth.times, t + 1e-6, side="right")) - 1)
    m = truth.matrices[i]
    p = truth.landmarks[idx, :2]
    return p @ m[:, :2].T + m[:, 2]


def test_make_clip_writes_a_variable_rate_clip(tmp_path):
    from pipeline.media.video import VideoReader

    truth = make_clip(tmp_path / "c.mp4", 2.2, rotation=90)
    with VideoReader(truth.path) as video:
        assert video.is_vfr and video.rotation == 90 and video.size == (H, W)
        assert video.frame_count == len(truth.times)
