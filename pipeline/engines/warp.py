"""The `warp` engine: a still photo animated by band warps of the mouth, jaw and eyelids.

Prepare once per avatar (:class:`WarpRig`): local frames, per-pixel coordinates and
feature curves of the lower face and both eyes, colours of lips, teeth and throat.
Per frame: move the knots from the frame's controls, one ``cv2.remap`` per region,
and paint the mouth interior (throat, upper and lower teeth, tongue) inside the
deformed inner-lip contour with anti-aliased edges. Pixels outside the moving
regions are copied from the source untouched.

A source photo with an open mouth is closed at rest: the lips' inner edges meet on
the seam halfway between them, so "closed" always means lips touching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from pipeline.engines.bands import BandField, LocalFrame, clip_rect, curve_fn, piecewise
from pipeline.face import regions as R
from pipeline.media.image import resize_to
from pipeline.options import RenderOptions
from pipeline.types import Avatar, Frame, Tracks

log = logging.getLogger(__name__)

# Motion amplitudes as fractions of the mouth width W.
JAW_DROP = 0.42  # lower lip / chin drop at jaw = 1
LIP_PART = 0.06  # extra lip parting at gap = 1 (each lip)
TEETH_RAISE = 0.05  # upper lip raise at teeth = 1
PRESS = 0.035  # lip thinning at press = 1
SPREAD = 0.06  # corner outward shift at spread = 1
ROUND = 0.10  # corner inward shift at round = 1


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
    hv: np.ndarray  # vertical falloff of corner motion
    inner: tuple[slice, slice]  # sub-rectangle (of the field) that can contain the interior
    lip_rgb: np.ndarray
    teeth_rgb: np.ndarray
    throat_rgb: np.ndarray
    tongue_rgb: np.ndarray


@dataclass
class EyeRig:
    field: BandField
    Bs: np.ndarray
    ULs: np.ndarray
    LLs: np.ndarray
    Ks: np.ndarray
    pe: np.ndarray  # lid motion profile across the eye


@dataclass
class WarpRig:
    image: np.ndarray
    landmarks: np.ndarray
    mouth: MouthRig
    eyes: list[EyeRig]

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
    lip, teeth, throat, tongue = _mouth_colours(image, lm, W)
    return MouthRig(field, W, Ns, UOs, Us, S, Ls, LOs, Cs, Fe, hw, jw, hx, hv, inner, lip, teeth, throat, tongue)


def _prepare_eye(image: np.ndarray, lm: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> EyeRig:
    h, w = image.shape[:2]
    xy = lm[:, :2].astype(np.float64)
    a, b = xy[upper[0]], xy[upper[-1]]
    left, right = (a, b) if a[0] < b[0] else (b, a)
    ew = float(np.linalg.norm(b - a))
    fr = LocalFrame.from_points(left, right, 0.5 * (a + b))
    loc = fr.to_local(xy)
    up, lo = loc[list(upper)], loc[list(lower)]
    top, bottom = up[:, 1].min() - 0.55 * ew, lo[:, 1].max() + 0.45 * ew
    half = 0.5 * ew
    corners = fr.to_image(np.array([[-half * 1.15, top], [half * 1.15, top], [-half * 1.15, bottom], [half * 1.15, bottom]]))
    rect = clip_rect(corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max() + 1, corners[:, 1].max() + 1, w, h)
    field = BandField(fr, rect)
    u = field.u
    ULs, LLs = curve_fn(up)(u), curve_fn(lo)(u)
    ULs, LLs = np.minimum(ULs, LLs), np.maximum(ULs, LLs)
    Bs = np.minimum(ULs - 0.45 * ew, np.float32(top + 1))
    Ks = np.maximum(LLs + 0.35 * ew, np.float32(bottom - 1))
    pe = np.clip(1.0 - (u / half) ** 2, 0.0, 1.0) ** 0.5
    return EyeRig(field, Bs.astype(np.float32), ULs, LLs, Ks.astype(np.float32), pe.astype(np.float32))


def prepare(avatar: Avatar, opts: RenderOptions) -> WarpRig:
    """Everything per-avatar that the frame loop needs."""
    image, lm = avatar.image, avatar.face.landmarks.copy()
    if opts.size and max(image.shape[:2]) != opts.size:
        image, scale = resize_to(image, opts.size)
        lm[:, :3] *= scale
    elif image.shape[0] % 2 or image.shape[1] % 2:
        h2, w2 = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = image[:h2, :w2]
    image = np.ascontiguousarray(image)
    mouth = _prepare_mouth(image, lm)
    eyes = [
        _prepare_eye(image, lm, R.RIGHT_EYE_UPPER, R.RIGHT_EYE_LOWER),
        _prepare_eye(image, lm, R.LEFT_EYE_UPPER, R.LEFT_EYE_LOWER),
    ]
    return WarpRig(image, lm, mouth, eyes)


def _smoothstep01(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _mouth_frame(rig: MouthRig, src: np.ndarray, out: np.ndarray, c: dict[str, float]) -> None:
    f, W = rig.field, rig.W
    jaw, gap, teeth = c["jaw"], c["gap"], c["teeth"]
    spread, rnd, press = c["spread"], c["round"], c["press"]
    # lip-opening profile across the mouth; rounding narrows the opening
    narrow = 1.0 - 0.18 * rnd + 0.05 * spread
    pw = np.clip(1.0 - (f.u / (rig.hw * narrow)) ** 2, 0.0, 1.0) ** 0.55
    jaw_px = np.float32(JAW_DROP * W * jaw)
    up = np.float32(W * (LIP_PART * gap + TEETH_RAISE * teeth)) * pw
    lo = (jaw_px + np.float32(LIP_PART * W * gap)) * pw
    Uo = rig.S - up
    Lo = rig.S + lo
    pr = np.float32(PRESS * W * press) * pw
    UOo = rig.UOs + (Uo - rig.Us) + pr
    LOo = rig.LOs + (Lo - rig.Ls) - pr
    Co = rig.Cs + jaw_px * rig.jw
    UOo = np.minimum(UOo, Uo - 0.25)
    LOo = np.clip(LOo, Lo + 0.25, Co - 0.25)
    v = f.v
    vs = piecewise(v, [rig.Ns, UOo, Uo, Lo, LOo, Co, rig.Fe], [rig.Ns, rig.UOs, rig.Us, rig.Ls, rig.LOs, rig.Cs, rig.Fe])
    shift = np.float32(W * (SPREAD * spread - ROUND * rnd))
    du = -shift * rig.hx * rig.hv if shift != 0 else 0.0
    mx, my = f.maps(du, vs - v)
    x0, y0, x1, y1 = f.rect
    region = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # mouth interior inside the deformed inner-lip contour
    iy, ix = rig.inner
    Ui, Li, vi = Uo[iy, ix], Lo[iy, ix], v[iy, ix]
    mask = np.clip(vi - Ui + 0.5, 0, 1) * np.clip(Li - vi + 0.5, 0, 1)
    if float(mask.max()) > 0.01:
        interior = _interior(rig, iy, ix, Ui, Li, vi, jaw_px, c)
        sub = region[iy, ix].astype(np.float32)
        m = mask[..., None]
        region[iy, ix] = (sub * (1 - m) + interior * m + 0.5).astype(np.uint8)
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
    tongue_top = Li - (0.28 + 0.45 * c["tongue"]) * np.maximum(Li - Ui, 0) * (1 - side**2)
    tg = _smoothstep01((vi - tongue_top) / 2.0)[..., None] * (1 - side**1.5)[..., None]
    col = col * (1 - tg) + (rig.tongue_rgb * 0.8)[None, None, :] * tg * (0.55 + 0.45 * depth[..., None])
    # lower teeth move with the jaw; shown on wide openings
    lower_edge = S + jaw_px * rig.jw[iy, ix] - 0.015 * W
    lt = _smoothstep01((vi - lower_edge) / 1.2) * (side < 0.8)
    lt = lt * (1 - _smoothstep01((side - 0.55) / 0.3))
    lt_col = rig.teeth_rgb * 0.82
    col = col * (1 - lt[..., None]) + lt_col[None, None, :] * lt[..., None]
    # upper teeth are fixed to the skull: their edge sits just below the rest seam
    # (they hang from the upper lip line, covering at most a third of the opening, so
    # the dark cavity keeps reading as an open mouth)
    upper_edge = Ui + np.minimum(0.09 * W, 0.33 * (Li - Ui)) * (1 - side**2)
    ut = _smoothstep01((upper_edge - vi) / 1.2) * (1 - _smoothstep01((side - 0.65) / 0.3))
    tshade = (0.72 + 0.28 * _smoothstep01((vi - Ui) / max(0.05 * W, 1.0))) * (1 - 0.45 * side**2)
    ut_col = rig.teeth_rgb[None, None, :] * tshade[..., None]
    col = col * (1 - ut[..., None]) + ut_col * ut[..., None]
    # soft shadow of the lips at the contour
    edge = np.clip(np.minimum(vi - Ui, Li - vi) / 1.5, 0, 1)
    return col * (0.75 + 0.25 * edge[..., None])


def _eye_frame(rig: EyeRig, out: np.ndarray, blink: float) -> None:
    f = rig.field
    gap = rig.LLs - rig.ULs
    ULo = rig.ULs + np.float32(0.93 * blink) * gap * rig.pe
    LLo = rig.LLs - np.float32(0.07 * blink) * gap * rig.pe
    LLo = np.maximum(LLo, ULo + 0.01)
    vs = piecewise(f.v, [rig.Bs, ULo, LLo, rig.Ks], [rig.Bs, rig.ULs, rig.LLs, rig.Ks])
    mx, my = f.maps(0.0, vs - f.v)
    x0, y0, x1, y1 = f.rect
    # sample from the current frame so regions already drawn (mouth) are kept
    region = cv2.remap(out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out[y0:y1, x0:x1] = region


class WarpEngine:
    """Default CPU animator (see module docstring)."""

    name = "warp"

    def prepare(self, avatar: Avatar, opts: RenderOptions) -> WarpRig:
        return prepare(avatar, opts)

    def output_size(self, rig: WarpRig) -> tuple[int, int]:
        return rig.size

    def render(self, rig: WarpRig, tracks: Tracks) -> Iterator[Frame]:
        chans = {name: tracks.get(name) for name in ("jaw", "gap", "teeth", "spread", "round", "press", "tongue", "blink")}
        src = rig.image
        for i in range(tracks.n_frames):
            c = {k: float(v[i]) for k, v in chans.items()}
            out = src.copy()
            _mouth_frame(rig.mouth, src, out, c)
            if c["blink"] > 0.01:
                for eye in rig.eyes:
                    _eye_frame(eye, out, c["blink"])
            yield out
