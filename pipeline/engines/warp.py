"""The `warp` engine: a still photo animated by band warps of the mouth, jaw and eyelids.

Prepare once per avatar (:class:`WarpRig`): local frames, per-pixel coordinates and
feature curves of the lower face and both eyes, colours of lips, teeth and throat.
Per frame: move the knots from the frame's controls, one ``cv2.remap`` per region,
and paint the mouth interior (throat, upper and lower teeth, tongue) inside the
deformed inner-lip contour with anti-aliased edges. Pixels outside the moving
regions are copied from the source untouched.

A source photo with an open mouth is closed at rest: the lips' inner edges meet on
the seam halfway between them, so "closed" always means lips touching (what lay between
them, teeth and the dark corners of the opening, is painted over with lip once, at
prepare time, so the seam shows lip only).

Lip closure: the lips touch whenever the frame's ``gap`` is 0, also with a little jaw
opening (the lower lip stretches, the chin drops a little), and part smoothly as ``gap``
grows (:func:`lip_opening`); ``press`` thins the touching lips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Iterator

import cv2
import numpy as np

from pipeline.engines import EngineInfo, check_source
from pipeline.engines.bands import BandField, LocalFrame, clip_rect, curve_fn, half, half_field, piecewise, up2
from pipeline.face import regions as R
from pipeline.media.image import resize_to
from pipeline.options import RenderOptions
from pipeline.types import AudioClip, Avatar, Frame, Tracks

log = logging.getLogger(__name__)

# Motion amplitudes as fractions of the mouth width W.
PLANES = True  # frames of an RGB still carry their I420, only the redrawn rectangle converted (pipeline.export.yuv)
JAW_DROP = 0.48  # lower lip / chin drop at jaw = 1
JAW_EASE = 0.8  # jaw drop ~ jaw ** JAW_EASE: everyday openings read clearly, the widest stay natural
LIP_PART = 0.07  # extra lip parting at gap = 1 (each lip)
TEETH_RAISE = 0.05  # upper lip raise at teeth = 1
PRESS = 0.035  # lip thinning at press = 1
SEAL_JAW = 0.08  # jaw drop the closed lips hold back by stretching (jaw ~0.12)
SEAL_GAP = 0.12  # lip gap at which the lips no longer hold back the jaw
SEAL_STRETCH = 0.25  # share of the held-back jaw drop that moves the lower lip's outer edge
SEAL_CHIN = 0.25  # share of the held-back jaw drop that still moves the chin (more reads as parted lips)
SPREAD = 0.06  # corner outward shift at spread = 1
ROUND = 0.10  # corner inward shift at round = 1
SMILE_LIFT = 0.08  # corner lift at smile = 1
SMILE_WIDEN = 0.05  # corner outward shift at smile = 1
BROW_LIFT = 0.16  # brow raise at brow = 1, as a fraction of the eye width
GAZE_SHIFT = 0.06  # sideways iris shift at gaze = +-1, as a fraction of the eye width


def _smoothstep01(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class MouthRig:
    field: BandField
    W: float
    # per-pixel source knots (functions of u only)
    Ns: np.ndarray
    UOs: np.ndarray
    Us: np.ndarray
    S: np.ndarray
    Ls: np.ndarray
    LOs: np.ndarray
    Cs: np.ndarray
    Fe: np.ndarray
    hw: np.ndarray  # per-pixel half width of the inner mouth on this side
    jw: np.ndarray  # jaw influence per pixel column
    hx: np.ndarray  # horizontal corner-motion weight
    cw: np.ndarray  # corner weight for smiles (0 at the centre, 1 at the corners)
    hv: np.ndarray  # vertical falloff of corner motion
    inner: tuple[slice, slice]  # sub-rectangle (of the field) that can contain the interior
    lip_rgb: np.ndarray
    teeth_rgb: np.ndarray
    throat_rgb: np.ndarray
    tongue_rgb: np.ndarray
    coarse: "MouthRig | None" = None  # the rig at half resolution: the flow is computed there (large faces)


def coarse_mouth(rig: MouthRig) -> MouthRig:
    """``rig`` with its flow computed on every second pixel and interpolated (a large face: ~4x
    fewer pixels for the knots and band maps; the remap and the mouth interior stay at full size)."""
    arrays = {k: half(getattr(rig, k)) for k in ("Ns", "UOs", "Us", "S", "Ls", "LOs", "Cs", "Fe", "hw", "jw", "hx",
                                                 "cw", "hv")}
    small = replace(rig, field=half_field(rig.field), inner=(slice(0, 0), slice(0, 0)), **arrays)
    return replace(rig, coarse=small)


@dataclass
class EyeRig:
    field: BandField
    Ts: np.ndarray  # forehead knot (fixed)
    Brs: np.ndarray  # brow line
    ULs: np.ndarray  # upper lid margin
    LLs: np.ndarray  # lower lid margin
    Ks: np.ndarray  # cheek knot (fixed)
    pe: np.ndarray  # lid motion profile across the eye
    pb: np.ndarray  # brow motion profile
    pg: np.ndarray  # gaze (iris shift) profile across the eye: 1 in the middle, 0 at the corners
    ew: float  # eye width in pixels


@dataclass
class HeadRig:
    field: BandField  # local frame = image axes, origin at the pivot (neck)
    weight: np.ndarray  # 1 on the head (face and hair), 0 on background and shoulders
    inner: np.ndarray  # weight of the inner face (nose, eyes, mouth) for yaw parallax
    face_w: float
    face_h: float
    wpx: np.ndarray  # weight * (x - pivot x), precomputed for the rotation
    wpy: np.ndarray  # weight * (y - pivot y)


@dataclass
class WarpRig:
    image: np.ndarray
    landmarks: np.ndarray
    mouth: MouthRig
    eyes: list[EyeRig]
    head: HeadRig

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _median_rgb(image: np.ndarray, mask: np.ndarray, fallback: tuple[int, int, int]) -> np.ndarray:
    px = image[mask > 0]
    if len(px) < 5:
        return np.array(fallback, np.float32)
    return np.median(px, axis=0).astype(np.float32)


def _mouth_colours(image: np.ndarray, lm: np.ndarray, W: float) -> tuple[np.ndarray, ...]:
    h, w = image.shape[:2]
    lips = np.zeros((h, w), np.uint8)
    outer = np.array([lm[i, :2] for i in R.UPPER_OUTER_LIP + R.LOWER_OUTER_LIP[::-1]], np.int32)
    inner = np.array([lm[i, :2] for i in R.UPPER_INNER_LIP + R.LOWER_INNER_LIP[::-1]], np.int32)
    cv2.fillPoly(lips, [outer], 1)
    cv2.fillPoly(lips, [inner], 0)
    lip = _median_rgb(image, lips, (170, 90, 90))
    gap = np.zeros((h, w), np.uint8)
    cv2.fillPoly(gap, [inner], 1)
    skin_mask = np.zeros((h, w), np.uint8)
    cheek = np.array([lm[i, :2] for i in (50, 101, 118, 117, 123, 147, 187, 205)], np.int32)
    cv2.fillPoly(skin_mask, [cheek], 1)
    skin = _median_rgb(image, skin_mask, (200, 160, 140))
    light = float(np.clip(skin.mean() / 170.0, 0.55, 1.15))
    teeth = np.array([236, 230, 218], np.float32) * light
    open_px = float(np.linalg.norm(lm[13, :2] - lm[14, :2]))
    if open_px > 0.05 * W and gap.sum() > 20:
        px = image[gap > 0].astype(np.float32)
        lum = px.mean(1)
        bright = px[lum >= np.percentile(lum, 70)]
        cand = np.median(bright, axis=0)
        if cand.mean() > 1.15 * lip.mean() and cand.mean() > 110:  # looks like real teeth
            teeth = 0.5 * teeth + 0.5 * cand
    teeth = np.clip(teeth, 0, 255)
    throat = np.clip(lip * np.array([0.32, 0.16, 0.16]) + 6, 0, 255).astype(np.float32)
    tongue = np.clip(lip * np.array([0.85, 0.62, 0.62]) + np.array([10, 0, 0]), 0, 255).astype(np.float32)
    return lip, teeth.astype(np.float32), throat, tongue


def _prepare_mouth(image: np.ndarray, lm: np.ndarray) -> MouthRig:
    h, w = image.shape[:2]
    xy = lm[:, :2].astype(np.float64)
    W = float(np.linalg.norm(xy[291] - xy[61]))
    origin = 0.5 * (xy[78] + xy[308])
    fr = LocalFrame.from_points(xy[61], xy[291], origin)
    loc = fr.to_local(xy)
    v_nose = loc[R.SUBNASALE, 1]
    jaw_loc = loc[list(R.JAW)]
    v_chin = loc[R.CHIN, 1]
    fade = 0.55 * W
    u_face = (jaw_loc[:, 0].min(), jaw_loc[:, 0].max())
    corners_uv = np.array(
        [[u_face[0], v_nose], [u_face[1], v_nose], [u_face[0], v_chin + fade], [u_face[1], v_chin + fade]]
    )
    img_pts = fr.to_image(corners_uv)
    rect = clip_rect(img_pts[:, 0].min(), img_pts[:, 1].min(), img_pts[:, 0].max() + 1, img_pts[:, 1].max() + 1, w, h)
    field = BandField(fr, rect)
    u = field.u
    f_ui, f_li = curve_fn(loc[list(R.UPPER_INNER_LIP)]), curve_fn(loc[list(R.LOWER_INNER_LIP)])
    f_uo, f_lo = curve_fn(loc[list(R.UPPER_OUTER_LIP)]), curve_fn(loc[list(R.LOWER_OUTER_LIP)])
    f_jaw = curve_fn(jaw_loc)
    Us, Ls = f_ui(u), f_li(u)
    Us, Ls = np.minimum(Us, Ls), np.maximum(Us, Ls)
    S = 0.5 * (Us + Ls)
    UOs = np.minimum(f_uo(u), Us - 0.5)
    LOs = np.maximum(f_lo(u), Ls + 0.5)
    Ns = np.minimum(np.full_like(u, v_nose), UOs - 1.0)
    # the knot sits a little below the landmark contour so the real chin edge moves rigidly
    Cs = np.maximum(f_jaw(u) + 0.07 * W, LOs + 0.15 * W)
    Fe = Cs + np.float32(fade)
    u_in_l, u_in_r = loc[78, 0], loc[308, 0]
    hw = np.where(u < 0, -u_in_l, u_in_r).astype(np.float32)
    hw = np.maximum(hw, 1.0)
    # jaw influence: full under the mouth, fading to zero at the jaw angles
    face_half = np.where(u < 0, -u_face[0], u_face[1]).astype(np.float32)
    t = np.clip((np.abs(u) - 0.45 * face_half) / (0.55 * face_half), 0, 1)
    jw = (1 - t * t * (3 - 2 * t)).astype(np.float32)
    a = np.abs(u) / np.maximum(np.where(u < 0, -loc[61, 0], loc[291, 0]), 1.0)
    hx = (np.sign(u) * np.minimum(a, 1.0) * np.clip(2.0 - a, 0.0, 1.0)).astype(np.float32)
    dv = np.maximum(UOs - field.v, field.v - LOs)
    hv = np.clip(1.0 - np.maximum(dv, 0) / (0.5 * W), 0, 1).astype(np.float32)
    # the interior can only appear between the inner corners, above the lowest lip drop
    span_uv = np.array(
        [[u_in_l, loc[list(R.UPPER_OUTER_LIP), 1].min() - 0.2 * W], [u_in_r, loc[list(R.LOWER_OUTER_LIP), 1].max() + 0.6 * W]]
    )
    box = fr.to_image(np.array([[span_uv[0, 0], span_uv[0, 1]], [span_uv[1, 0], span_uv[0, 1]], [span_uv[0, 0], span_uv[1, 1]], [span_uv[1, 0], span_uv[1, 1]]]))
    x0, y0, x1, y1 = clip_rect(box[:, 0].min() - 2, box[:, 1].min() - 2, box[:, 0].max() + 3, box[:, 1].max() + 3, w, h)
    fx0, fy0, fx1, fy1 = rect
    inner = (slice(max(0, y0 - fy0), max(0, min(fy1, y1) - fy0)), slice(max(0, x0 - fx0), max(0, min(fx1, x1) - fx0)))
    cw = (np.minimum(a, 1.0) ** 2 * np.clip(1.8 - a, 0.0, 0.8) / 0.8).astype(np.float32)
    lip, teeth, throat, tongue = _mouth_colours(image[..., :3], lm, W)
    return MouthRig(field, W, Ns, UOs, Us, S, Ls, LOs, Cs, Fe, hw, jw, hx, cw, hv, inner, lip, teeth, throat, tongue)


def _prepare_eye(
    image: np.ndarray, lm: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...], brow: tuple[int, ...], brow_low: tuple[int, ...]
) -> EyeRig:
    h, w = image.shape[:2]
    xy = lm[:, :2].astype(np.float64)
    a, b = xy[upper[0]], xy[upper[-1]]
    left, right = (a, b) if a[0] < b[0] else (b, a)
    ew = float(np.linalg.norm(b - a))
    fr = LocalFrame.from_points(left, right, 0.5 * (a + b))
    loc = fr.to_local(xy)
    up, lo = loc[list(upper)], loc[list(lower)]
    br = 0.5 * (loc[list(brow)] + loc[list(brow_low)])
    top = min(br[:, 1].min() - 0.5 * ew, up[:, 1].min() - 0.9 * ew)
    bottom = lo[:, 1].max() + 0.45 * ew
    half = 0.5 * ew
    span = max(1.5 * half, float(np.abs(br[:, 0]).max()) * 1.15)
    corners = fr.to_image(np.array([[-span, top], [span, top], [-span, bottom], [span, bottom]]))
    rect = clip_rect(corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max() + 1, corners[:, 1].max() + 1, w, h)
    field = BandField(fr, rect)
    u = field.u
    ULs, LLs = curve_fn(up)(u), curve_fn(lo)(u)
    ULs, LLs = np.minimum(ULs, LLs), np.maximum(ULs, LLs)
    Brs = np.minimum(curve_fn(br)(u), ULs - 0.2 * ew)
    Ts = np.minimum(Brs - 0.45 * ew, np.float32(top + 1))
    Ks = np.maximum(LLs + 0.35 * ew, np.float32(bottom - 1))
    pe = np.clip(1.0 - (u / half) ** 2, 0.0, 1.0) ** 0.5
    bspan = float(np.abs(br[:, 0]).max())
    pb = 1.0 - _smoothstep01((np.abs(u) - bspan) / (0.15 * span + 1e-6))
    pg = np.clip(1.0 - (u / (0.5 * ew)) ** 2, 0.0, 1.0)
    return EyeRig(field, Ts.astype(np.float32), Brs.astype(np.float32), ULs, LLs, Ks.astype(np.float32),
                  pe.astype(np.float32), pb.astype(np.float32), pg.astype(np.float32), ew)


def _prepare_head(image: np.ndarray, lm: np.ndarray) -> HeadRig:
    """Head region: an ellipse over face and hair with a soft border; pivot at the neck."""
    h, w = image.shape[:2]
    xy = lm[:, :2].astype(np.float64)
    oval = xy[list(R.FACE_OVAL)]
    fx0, fy0 = oval.min(0)
    fx1, fy1 = oval.max(0)
    face_w, face_h = fx1 - fx0, fy1 - fy0
    center = np.array([0.5 * (fx0 + fx1), fy0 + 0.42 * face_h])
    ax, ay = 0.78 * face_w, 0.78 * face_h  # ellipse semi-axes: face plus hair
    band = 0.45 * face_w
    pivot = np.array([0.5 * (fx0 + fx1), fy1 + 0.35 * face_h])
    x0, y0 = center[0] - ax - band, center[1] - ay - band
    x1, y1 = center[0] + ax + band, max(center[1] + ay + band, pivot[1] + 0.2 * face_h)
    rect = clip_rect(x0, y0, x1, y1, w, h)
    field = BandField(LocalFrame(pivot, np.array([1.0, 0.0]), np.array([0.0, 1.0])), rect)
    ex = (field.X - center[0]) / ax
    ey = (field.Y - center[1]) / ay
    r = np.sqrt(ex * ex + ey * ey)  # 1 on the ellipse
    weight = 1.0 - _smoothstep01((r - 1.0) / (band / min(ax, ay)))
    # below the jaw line the head's pull fades out over the neck; the jaw line itself
    # (and the chin) moves fully with the head
    jaw = xy[list(R.JAW)]
    order = np.argsort(jaw[:, 0])
    jaw_y = np.interp(field.X, jaw[order, 0], jaw[order, 1], left=jaw[order[0], 1], right=jaw[order[-1], 1])
    below = field.Y - jaw_y
    weight = weight * (1.0 - _smoothstep01(below / (0.3 * face_h)))
    neck = np.clip(1.0 - np.abs(field.X - pivot[0]) / (0.45 * face_w), 0, 1) * (
        1.0 - _smoothstep01(below / (0.5 * face_h))
    )
    weight = np.maximum(weight, np.where(below > 0, 0.6 * neck, 0.0)).astype(np.float32)
    nose = xy[R.NOSE_TIP]
    inner = np.exp(-(((field.X - nose[0]) / (0.32 * face_w)) ** 2 + ((field.Y - nose[1]) / (0.38 * face_h)) ** 2))
    wpx = (weight * (field.X - pivot[0])).astype(np.float32)
    wpy = (weight * (field.Y - pivot[1])).astype(np.float32)
    return HeadRig(field, weight, inner.astype(np.float32), float(face_w), float(face_h), wpx, wpy)


def _seal_source_lips(image: np.ndarray, lm: np.ndarray, rig: MouthRig) -> np.ndarray:
    """A photo with parted lips: paint lip over what lies between them (teeth, the dark
    cavity, its corners) so that the closed mouth, whose lips meet on the seam, shows lip
    and nothing of the opening. Closed-mouth photos are returned as they are."""
    xy = lm[:, :2].astype(np.float64)
    W = rig.W
    if float(np.linalg.norm(xy[13] - xy[14])) < 0.03 * W:
        return image
    h, w = image.shape[:2]
    inner = np.round(xy[list(R.UPPER_INNER_LIP + R.LOWER_INNER_LIP[::-1])]).astype(np.int32)
    outer = xy[list(R.UPPER_OUTER_LIP + R.LOWER_OUTER_LIP[::-1])]
    pad = int(np.ceil(0.15 * W)) + 3
    x0, y0 = np.maximum(np.floor(outer.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(outer.max(0)).astype(int) + pad, [w, h])
    hole = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(hole, [inner - [x0, y0]], 1)
    rgb = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
    # the opening and a pixel around it (teeth edges), and the dark cavity where its
    # corners reach past the landmark contour
    dark = rgb.astype(np.float32).mean(2) < 0.6 * float(rig.lip_rgb.mean())
    fill = (_grow(hole, 1.0) > 0) | ((_grow(hole, 0.12 * W) > 0) & dark)
    out = image.copy()
    out[y0:y1, x0:x1, :3] = cv2.inpaint(rgb, fill.astype(np.uint8), 2.0, cv2.INPAINT_TELEA)
    return out


def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` dilated by a disc of ``radius`` pixels (at least 1)."""
    r = max(1, int(round(radius)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def working_image(avatar: Avatar, opts: RenderOptions) -> tuple[np.ndarray, np.ndarray]:
    """The avatar's image at the output size (``opts.size``) with even sides, and its landmarks
    at that scale; a person matte rides along as a fourth channel, so every warp moves it with
    the pixels (shared by the engines that animate a photo)."""
    image, lm = avatar.image, avatar.face.landmarks.copy()
    if avatar.matte is not None:
        alpha = np.clip(np.asarray(avatar.matte, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = np.dstack([image, alpha])
    if opts.size and max(image.shape[:2]) != opts.size:
        image, scale = resize_to(image, opts.size)
        lm[:, :3] *= scale
    elif image.shape[0] % 2 or image.shape[1] % 2:
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
    return np.ascontiguousarray(image), lm


def prepare_motion(image: np.ndarray, lm: np.ndarray) -> tuple[list[EyeRig], HeadRig]:
    """The eye (blinks, gaze, brows) and head rigs of a photo: what the neural engines, which
    redraw only the mouth, borrow from this one."""
    eyes = [
        _prepare_eye(image, lm, R.RIGHT_EYE_UPPER, R.RIGHT_EYE_LOWER, R.RIGHT_BROW, R.RIGHT_BROW_LOW),
        _prepare_eye(image, lm, R.LEFT_EYE_UPPER, R.LEFT_EYE_LOWER, R.LEFT_BROW, R.LEFT_BROW_LOW),
    ]
    return eyes, _prepare_head(image, lm)


def prepare(avatar: Avatar, opts: RenderOptions) -> WarpRig:
    """Everything per-avatar that the frame loop needs."""
    image, lm = working_image(avatar, opts)
    mouth = _prepare_mouth(image, lm)
    image = _seal_source_lips(image, lm, mouth)
    eyes, head = prepare_motion(image, lm)
    return WarpRig(image, lm, mouth, eyes, head)


def lip_opening(W: float, jaw: float, gap: float) -> tuple[np.float32, float, float]:
    """How far the jaw drops and how much of that the lips hold back, in pixels.

    Returns ``(jaw_px, held, k)``: the chin drops ``jaw_px``; the lower inner lip drops
    ``jaw_px - held`` (plus the lip part of ``gap``); ``k`` in [0, 1] says how far the lips
    have let go of each other. With ``gap = 0`` the lips stay sealed over a jaw opening up to
    ``SEAL_JAW`` (the lower lip stretches, as in a real /m/); as ``gap`` grows to ``SEAL_GAP``
    the seal fades smoothly, so the inner-lip separation is continuous in (jaw, gap).
    """
    jaw_px = JAW_DROP * W * jaw**JAW_EASE if jaw > 0 else 0.0
    k = float(_smoothstep01(np.float32(gap / SEAL_GAP))) if gap > 0 else 0.0
    held = (1.0 - k) * min(jaw_px, SEAL_JAW * W)
    return np.float32(jaw_px), held, k


def _lip_lines(rig: MouthRig, c: dict[str, float], sl: tuple[slice, slice]) -> tuple:
    """The deformed inner lip lines ``(Uo, Lo)`` over ``sl`` of the rig's field before a smile's
    lift, their column profile ``pw``, ``lip_opening``'s ``(jaw_px, held)`` and the lift (or None)."""
    jaw, gap, teeth = c["jaw"], c["gap"], c["teeth"]
    W = rig.W
    # lip-opening profile across the mouth; rounding narrows the opening
    narrow = 1.0 - 0.18 * c["round"] + 0.05 * c["spread"]
    q = np.clip(1.0 - np.square(rig.field.u[sl] * np.float32(1.0 / narrow) / rig.hw[sl]), 0.0, 1.0)
    pw = np.sqrt(q * np.sqrt(q))  # q ** 0.75: the opening tapers into the corners
    jaw_px, held, k = lip_opening(W, jaw, gap)
    up = np.float32(W * (LIP_PART * gap + TEETH_RAISE * teeth * k)) * pw
    lo = np.float32(jaw_px - held + LIP_PART * W * gap) * pw
    Uo = rig.S[sl] - up
    Lo = rig.S[sl] + lo
    smile = c.get("smile", 0.0)
    lift = np.float32(SMILE_LIFT * W * smile) * rig.cw[sl] if smile else None  # the corners rise
    return Uo, Lo, pw, jaw_px, held, lift


def _mouth_flow(rig: MouthRig, c: dict[str, float]) -> tuple:
    """``(Uo, Lo, vs, du, jaw_px)``: the inner lip lines and the band map (source v, shift along u)."""
    f, W = rig.field, rig.W
    spread, rnd, press = c["spread"], c["round"], c["press"]
    everything = (slice(None), slice(None))
    Uo, Lo, pw, jaw_px, held, lift = _lip_lines(rig, c, everything)
    # pressed lips thin; the lower lip stretches over the jaw drop it holds back (its outer
    # edge and the chin go a quarter of that way down)
    pr = np.float32(PRESS * W * press)
    UOo = rig.UOs + (Uo - rig.Us) + pr * pw
    LOo = rig.LOs + (Lo - rig.Ls) + (np.float32(SEAL_STRETCH * held) - pr) * pw
    Co = rig.Cs + np.float32(jaw_px - (1.0 - SEAL_CHIN) * held) * rig.jw
    if lift is not None:
        Uo, Lo, UOo, LOo = Uo - lift, Lo - lift, UOo - lift, LOo - lift
    UOo = np.minimum(UOo, Uo - 0.25)
    LOo = np.clip(LOo, Lo + 0.25, Co - 0.25)
    v = f.v
    # below the chin the neck stays where it is and the dropping chin slides over it
    # (occlusion, not a squeezed strip of neck): a 1.5 px band Co..seam takes the source
    # from the chin edge back to the neck's own position
    seam = np.minimum(Co + np.float32(1.5), rig.Fe)  # 1.5 px of blend keeps the chin edge smooth
    vs = piecewise(
        v,
        [rig.Ns, UOo, Uo, Lo, LOo, Co, seam, rig.Fe],
        [rig.Ns, rig.UOs, rig.Us, rig.Ls, rig.LOs, rig.Cs, seam, rig.Fe],
    )
    shift = np.float32(W * (SPREAD * spread - ROUND * rnd + SMILE_WIDEN * c.get("smile", 0.0)))
    du = -shift * rig.hx * rig.hv if shift != 0 else 0.0
    return Uo, Lo, vs, du, jaw_px


def _mouth_frame(rig: MouthRig, src: np.ndarray, out: np.ndarray, c: dict[str, float]) -> None:
    f = rig.field
    iy, ix = rig.inner
    if rig.coarse is None:
        Uo, Lo, vs, du, jaw_px = _mouth_flow(rig, c)
        mx, my = f.maps(du, vs - f.v)
        Ui, Li = Uo[iy, ix], Lo[iy, ix]
    else:  # the flow at half resolution, interpolated; the lip lines of the interior at full
        _, _, vs, du, jaw_px = _mouth_flow(rig.coarse, c)
        dv = up2(vs - rig.coarse.field.v, f.shape)
        mx, my = f.maps(up2(du, f.shape) if isinstance(du, np.ndarray) else du, dv)
        Ui, Li, _, _, _, lift = _lip_lines(rig, c, (iy, ix))
        if lift is not None:
            Ui, Li = Ui - lift, Li - lift
    x0, y0, x1, y1 = f.rect
    region = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # mouth interior inside the deformed inner-lip contour
    vi = f.v[iy, ix]
    # share of each pixel row [v - 0.5, v + 0.5] between the lips: 0 where they touch
    mask = np.clip(np.minimum(vi + 0.5, Li) - np.maximum(vi - 0.5, Ui), 0, 1)
    rows = np.flatnonzero(mask.max(1) > 0.004)
    if len(rows):
        # paint only the bounding box of the opening
        cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].max(0) > 0.004)
        by = slice(iy.start + rows[0], iy.start + rows[-1] + 1)
        bx = slice(ix.start + cols[0], ix.start + cols[-1] + 1)
        ly, lx = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        interior = _interior(rig, by, bx, Ui[ly, lx], Li[ly, lx], vi[ly, lx], jaw_px, c)
        sub = region[by, bx, :3].astype(np.float32)
        m = mask[ly, lx, None]
        region[by, bx, :3] = (sub + (interior - sub) * m + 0.5).astype(np.uint8)
        if region.shape[2] == 4:  # the mouth is part of the person
            a = region[by, bx, 3]
            np.maximum(a, (m[..., 0] * 255).astype(np.uint8), out=a)
    out[y0:y1, x0:x1] = region


def _interior(rig: MouthRig, iy: slice, ix: slice, Ui, Li, vi, jaw_px, c: dict[str, float]) -> np.ndarray:
    """Colour of the mouth interior: throat, tongue, lower and upper teeth."""
    W = rig.W
    u = rig.field.u[iy, ix]
    S = rig.S[iy, ix]
    hw = rig.hw[iy, ix]
    depth = np.clip((vi - Ui) / np.maximum(Li - Ui, 1.0), 0, 1)
    side = np.clip(np.abs(u) / hw, 0, 1)
    # throat: darkest in the middle of the opening, a little lighter at the lips
    shade = 0.6 + 0.4 * (np.abs(depth - 0.5) * 2) ** 2 + 0.25 * side**2
    col = rig.throat_rgb[None, None, :] * shade[..., None]
    # tongue: a rounded mound rising from the floor of the mouth
    tongue_top = Li - (0.34 + 0.4 * c["tongue"]) * np.maximum(Li - Ui, 0) * (1 - side**2)
    tg = _smoothstep01((vi - tongue_top) / max(0.04 * W, 1.5))[..., None] * (1 - side**1.5)[..., None]
    col = col * (1 - tg) + rig.tongue_rgb[None, None, :] * tg * (0.5 + 0.4 * depth[..., None])
    # lower teeth move with the jaw; shown on wide openings
    lower_edge = S + jaw_px * rig.jw[iy, ix] - 0.015 * W
    lt = _smoothstep01((vi - lower_edge) / 1.2) * (side < 0.8)
    lt = lt * (1 - _smoothstep01((side - 0.55) / 0.3))
    lt_col = rig.teeth_rgb * 0.82
    col = col * (1 - lt[..., None]) + lt_col[None, None, :] * lt[..., None]
    # upper teeth are fixed to the skull: their edge sits just below the rest seam
    # (they hang from the upper lip line, covering at most a third of the opening, so
    # the dark cavity keeps reading as an open mouth)
    upper_edge = Ui + np.minimum(0.12 * W, 0.3 * (Li - Ui)) * (1 - side**2)
    ut = _smoothstep01((upper_edge - vi) / 1.2) * (1 - _smoothstep01((side - 0.65) / 0.3))
    tshade = (0.72 + 0.28 * _smoothstep01((vi - Ui) / max(0.05 * W, 1.0))) * (1 - 0.45 * side**2)
    ut_col = rig.teeth_rgb[None, None, :] * tshade[..., None]
    col = col * (1 - ut[..., None]) + ut_col * ut[..., None]
    # soft shadow of the lips at the contour
    edge = np.clip(np.minimum(vi - Ui, Li - vi) / 1.5, 0, 1)
    return col * (0.75 + 0.25 * edge[..., None])


def _eye_frame(rig: EyeRig, out: np.ndarray, blink: float, brow: float, gaze: float = 0.0) -> None:
    f = rig.field
    gap = rig.LLs - rig.ULs
    lift = np.float32(BROW_LIFT * rig.ew * brow) * rig.pb
    Bro = rig.Brs - lift
    ULo = rig.ULs - 0.25 * lift * rig.pe + np.float32(0.93 * blink) * gap * rig.pe
    LLo = rig.LLs - np.float32(0.07 * blink) * gap * rig.pe
    LLo = np.maximum(LLo, ULo + 0.01)
    vs = piecewise(f.v, [rig.Ts, Bro, ULo, LLo, rig.Ks], [rig.Ts, rig.Brs, rig.ULs, rig.LLs, rig.Ks])
    du: np.ndarray | float = 0.0
    if gaze:
        # the eyeball turns: what lies between the lids slides sideways, the lids stay
        inside = np.clip(f.v - ULo + 0.5, 0, 1) * np.clip(LLo - f.v + 0.5, 0, 1)
        du = np.float32(-GAZE_SHIFT * rig.ew * gaze) * rig.pg * inside
    mx, my = f.maps(du, vs - f.v)
    x0, y0, x1, y1 = f.rect
    # sample from the current frame so regions already drawn (mouth) are kept
    out[y0:y1, x0:x1] = cv2.remap(out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _head_frame(rig: HeadRig, out: np.ndarray, yaw: float, pitch: float, roll: float) -> None:
    """Small rigid head motion (roll about the neck, shifts for nod and turn) blended
    into the still body with the head weight; the inner face shifts a little more on
    a turn (parallax)."""
    f = rig.field
    th = np.deg2rad(roll)
    c1, s_ = np.float32(np.cos(th) - 1.0), np.float32(np.sin(th))
    tx = np.float32(np.deg2rad(yaw) * 0.35 * rig.face_w)
    ty = np.float32(np.deg2rad(pitch) * 0.45 * rig.face_h)
    par = np.float32(np.deg2rad(yaw) * 0.12 * rig.face_w)
    # source = p - weight * (R (p - pivot) + t - p) - inner * parallax
    mx = f.X - (c1 * rig.wpx - s_ * rig.wpy + tx * rig.weight + par * rig.inner)
    my = f.Y - (s_ * rig.wpx + c1 * rig.wpy + ty * rig.weight)
    x0, y0, x1, y1 = f.rect
    out[y0:y1, x0:x1] = cv2.remap(out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class WarpEngine:
    """Default CPU animator (see module docstring): photos, driven by the tracks alone; a
    presenter clip keeps its own motion and gets the new mouth (:mod:`warp_clip`). Photos
    carry the matte as alpha; clip frames come back RGB and are matted frame by frame."""

    info = EngineInfo(
        "warp", sources=("photo", "clip"), carries_matte=True, device="cpu",
        summary="band warps of a photo's mouth, jaw, eyes and head, or a clip's mouth (CPU, no model weights)",
    )

    def prepare(self, avatar: Avatar, opts: RenderOptions):
        check_source(self, avatar)
        if avatar.kind == "clip":
            import sys

            from pipeline.engines import warp_clip

            return warp_clip.prepare(avatar, opts, sys.modules[__name__])
        return prepare(avatar, opts)

    def output_size(self, rig) -> tuple[int, int]:
        return rig.size

    def render(self, rig, tracks: Tracks, audio: AudioClip | None = None) -> Iterator[Frame]:
        """Frames from the tracks; the warp engine does not listen to ``audio``."""
        if not isinstance(rig, WarpRig):
            from pipeline.engines import warp_clip

            yield from warp_clip.render(rig, tracks)
            return
        names = (
            "jaw", "gap", "teeth", "spread", "round", "press", "tongue", "smile", "blink", "brow", "gaze",
            "yaw", "pitch", "roll",
        )
        chans = {name: tracks.get(name) for name in names}
        src = rig.image
        planes = PLANES and src.ndim == 3 and src.shape[2] == 3  # an RGB still: frames carry their I420
        if planes:
            from pipeline.export.yuv import I420Patcher, to_i420, with_i420

            patch, base = I420Patcher(), to_i420(src)
        for i in range(tracks.n_frames):
            c = {k: float(v[i]) for k, v in chans.items()}
            out = src.copy()
            _mouth_frame(rig.mouth, src, out, c)
            rects = [rig.mouth.field.rect]
            if c["blink"] > 0.01 or c["brow"] > 0.01 or abs(c["gaze"]) > 0.01:
                for eye in rig.eyes:
                    _eye_frame(eye, out, c["blink"], c["brow"], c["gaze"])
                    rects.append(eye.field.rect)
            if abs(c["yaw"]) + abs(c["pitch"]) + abs(c["roll"]) > 0.01:
                _head_frame(rig.head, out, c["yaw"], c["pitch"], c["roll"])
                rects.append(rig.head.field.rect)
            if planes:
                x0, y0 = min(r[0] for r in rects), min(r[1] for r in rects)
                x1, y1 = max(r[2] for r in rects), max(r[3] for r in rects)
                yield with_i420(out, patch(base, out, (x0, y0, x1, y1)))
            else:
                yield out
