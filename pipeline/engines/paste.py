"""Face crops for crop-based lip-sync networks (Wav2Lip-class) and their paste-back.

Crop (:func:`face_geometry`): a square, upright box from the FaceMesh landmarks, as
Wav2Lip's face detector box plus its pads: cheek to cheek (the face oval's width), its
bottom a little below the chin (the pad that keeps the chin in), rotated with the eye line
so a tilted head comes upright into the network. One similarity transform maps image pixels
to the S x S crop (96 or 256) and back.

Paste-back (:func:`paste`): the generated crop is warped back onto the frame inside a
region of interest only, and blended with a feathered mask of the lower face -- under the
nose, inside the jaw line, a little past the chin for the jaw's travel -- never the whole
box, so no box edge or seam shows. Before blending:

- colour: the generated pixels' mean and spread in Lab are matched to the source's in the
  mask's feathered ring (where the two meet), smoothed over frames (:class:`ColourState`);
- detail: a 96 px crop upscaled to a 200 px face is soft. Outside the lips the source's
  own fine detail (the frame minus its blur at the upscale's scale: skin texture, stubble,
  pores; clipped, so no strong edge is copied) is added back; on the lips and the mouth
  opening, where the source's detail would be wrong, the generated pixels get an unsharp
  mask instead. A 256 px network (``wav2lip_256``) is preferred when its weights are present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.face import regions as R

BOX_SCALE = 1.15  # box side / face-oval width (the eyes land about a quarter down, as in Wav2Lip's crops)
CHIN_PAD = 0.08  # box bottom below the chin, in box sides (Wav2Lip pads its detector box down)
MASK_TOP = -0.04  # mask top edge below the subnasale, mouth widths (above it: the feather ends on the upper lip)
TOP_DROP = 0.35  # how much lower the mask's top edge sits at the cheeks than under the nose, mouth widths
MASK_INSET = 0.88  # mask sides at this share of the jaw's half width
MASK_DROP = 0.3  # how far the mask reaches below the chin, mouth widths (the jaw's travel)
FEATHER = 0.06  # feather sigma, mouth widths
LIP_GROW = 0.12  # lip zone (no source detail, unsharp instead) beyond the outer lip, mouth widths
UNSHARP = 0.6  # unsharp amount on the lips
DETAIL_LIMIT = 12.0  # source detail added back, at most this many grey levels
STD_LIMIT = (0.6, 1.6)  # colour match: bounds of the std ratio per Lab channel
SHIFT_LIMIT = 25.0  # ... and of the mean shift (Lab units, 8-bit scaled)
COLOUR_EMA = 0.35  # smoothing of the colour statistics over frames


@dataclass(frozen=True)
class FaceGeometry:
    """Where a face's crop lies and what of it is pasted back (crop-space masks)."""

    size: int  # crop side S
    M: np.ndarray  # (2, 3) float64: image -> crop pixels
    Minv: np.ndarray  # (2, 3): crop -> image pixels
    scale: float  # image pixels per crop pixel
    mask: np.ndarray  # (S, S) float32: paste weight
    lips: np.ndarray  # (S, S) float32: 1 on the lips and opening (unsharp), 0 elsewhere (source detail)

    def image_rect(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The frame rectangle the mask can touch (x0, y0, x1, y1), clipped."""
        ys, xs = np.nonzero(self.mask > 1.0 / 255)
        if len(xs) == 0:
            return 0, 0, 0, 0
        corners = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.min(), ys.max() + 1],
                            [xs.max() + 1, ys.max() + 1]], np.float64)
        pts = corners @ self.Minv[:, :2].T + self.Minv[:, 2]
        x0, y0 = np.floor(pts.min(0)).astype(int) - 2
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def _face_axes(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along the eye line (image left to right) and down the face."""
    right = xy[list(R.RIGHT_EYE)].mean(0)  # the subject's right eye: the image's left
    left = xy[list(R.LEFT_EYE)].mean(0)
    ex = left - right
    n = float(np.linalg.norm(ex))
    ex = ex / n if n > 1e-6 else np.array([1.0, 0.0])
    if ex[0] < 0:
        ex = -ex
    return ex, np.array([-ex[1], ex[0]])


def crop_transform(lm: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(2, 3) image -> crop affine of the face box, and image pixels per crop pixel."""
    xy = lm[:, :2].astype(np.float64)
    ex, ey = _face_axes(xy)
    o = xy[list(R.FACE_OVAL)].mean(0)
    oval = (xy[list(R.FACE_OVAL)] - o) @ np.stack([ex, ey], 1)
    u0, u1 = float(oval[:, 0].min()), float(oval[:, 0].max())
    side = max(BOX_SCALE * (u1 - u0), 8.0)
    v_chin = float((xy[R.CHIN] - o) @ ey)
    v1 = v_chin + CHIN_PAD * side
    uc = 0.5 * (u0 + u1)
    tl = o + (uc - side / 2) * ex + (v1 - side) * ey
    tr = tl + side * ex
    bl = tl + side * ey
    M = cv2.getAffineTransform(np.float32([tl, tr, bl]), np.float32([[0, 0], [size, 0], [0, size]]))
    return M.astype(np.float64), side / size


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:, :2].T + M[:, 2]


def _feather(mask: np.ndarray, sigma: float, erode: bool = True) -> np.ndarray:
    sigma = max(0.6, sigma)
    if erode:  # the feather's middle, not its outer edge, sits on the polygon
        r = max(1, int(round(1.1 * sigma)))
        mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    k = int(np.ceil(3 * sigma)) * 2 + 1
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (k, k), sigma)


def face_geometry(lm: np.ndarray, size: int) -> FaceGeometry:
    """The crop of the face with landmarks ``lm`` (image pixels) and its paste masks."""
    M, scale = crop_transform(lm, size)
    Minv = cv2.invertAffineTransform(M).astype(np.float64)
    c = _apply(M, lm[:, :2].astype(np.float64))  # landmarks in crop pixels (upright)
    W = max(float(np.linalg.norm(c[291] - c[61])), 2.0)
    top = c[R.SUBNASALE, 1] + MASK_TOP * W
    jaw = c[list(R.JAW)]
    chin_u = c[R.CHIN, 0]
    half = max(float(np.abs(jaw[:, 0] - chin_u).max()), 1.0)
    pts = []
    for u, v in jaw:
        if v < top:
            continue
        w = max(0.0, 1.0 - abs(u - chin_u) / half) ** 1.5
        pts.append((chin_u + MASK_INSET * (u - chin_u), v + MASK_DROP * W * w))
    pts.sort()
    left = chin_u + MASK_INSET * (jaw[:, 0].min() - chin_u)
    right = chin_u + MASK_INSET * (jaw[:, 0].max() - chin_u)
    # the top edge is flat only under the nose: it drops towards the cheeks, so no straight line
    # runs across the face
    drop = TOP_DROP * W
    ml, mr = c[61, 0] - 0.15 * W, c[291, 0] + 0.15 * W
    poly = np.array([(left, top + drop)] + pts + [(right, top + drop), (mr, top), (ml, top)], np.float64)
    # the feather fades out inside the crop: the crop's own edges never show
    edge = 2.5 * max(0.6, FEATHER * W) + 1.0
    poly = np.clip(poly, edge, size - edge)
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [np.round(poly * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    mask = _feather(m, FEATHER * W)
    lips = np.zeros((size, size), np.uint8)
    outer = c[list(R.UPPER_OUTER_LIP + R.LOWER_OUTER_LIP[::-1])]
    cv2.fillPoly(lips, [np.round(outer * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    r = max(1, int(round(LIP_GROW * W)))
    lips = cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lip_w = _feather(lips, 0.5 * LIP_GROW * W, erode=False)
    return FaceGeometry(size, M, Minv, scale, mask, lip_w)


def crop(image: np.ndarray, geom: FaceGeometry) -> np.ndarray:
    """The S x S RGB crop (anti-aliased when the face is larger than the crop)."""
    src = image[..., :3]
    if geom.scale > 1.5:  # pre-blur so the downscale does not alias
        src = cv2.GaussianBlur(src, (0, 0), 0.45 * geom.scale)
    return cv2.warpAffine(np.ascontiguousarray(src), geom.M, (geom.size, geom.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def network_face(face: np.ndarray) -> np.ndarray:
    """(6, S, S) float32 network input of an RGB crop: BGR in [0, 1], lower half blacked out, then
    the crop itself as the reference."""
    bgr = face[..., ::-1].astype(np.float32) * np.float32(1 / 255.0)
    chw = np.transpose(bgr, (2, 0, 1))
    masked = chw.copy()
    masked[:, face.shape[0] // 2:] = 0.0
    return np.ascontiguousarray(np.concatenate([masked, chw], 0))


@dataclass
class PasteTarget:
    """What pasting onto one source frame needs (computed once for a photo)."""

    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 of the region of interest
    M_roi: np.ndarray  # (2, 3) crop -> ROI pixels
    alpha: np.ndarray  # (h, w, 1) float32 paste weight
    lips: np.ndarray  # (h, w, 1) float32 unsharp weight (1 - it: source detail weight)
    src: np.ndarray  # (h, w, 3) float32 source pixels
    detail: np.ndarray  # (h, w, 3) float32 source detail (source minus its blur)
    ring: np.ndarray  # (h, w) uint8: where the colours are compared
    sigma: float  # blur of the detail split, ROI pixels
    detail_amount: float  # 0 when the crop is as fine as the frame (no detail is missing) .. 1 from 2x upscaling


def paste_target(image: np.ndarray, geom: FaceGeometry) -> PasteTarget:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = geom.image_rect(w, h)
    M_roi = geom.Minv.copy()
    M_roi[:, 2] -= (x0, y0)
    size = (max(1, x1 - x0), max(1, y1 - y0))
    alpha = cv2.warpAffine(geom.mask, M_roi, size, flags=cv2.INTER_LINEAR, borderValue=0)
    lips = cv2.warpAffine(geom.lips, M_roi, size, flags=cv2.INTER_LINEAR, borderValue=0)
    src = image[y0:y1, x0:x1, :3].astype(np.float32)
    sigma = max(0.8, 0.6 * geom.scale)
    # texture only: strong edges (the chin's contour) are clipped, so a jaw that drops in the
    # generated face leaves no ghost of the source's edge behind
    detail = np.clip(src - cv2.GaussianBlur(src, (0, 0), sigma), -DETAIL_LIMIT, DETAIL_LIMIT)
    ring = ((alpha > 0.15) & (alpha < 0.85)).astype(np.uint8)
    amount = float(np.clip(geom.scale - 1.0, 0.0, 1.0))
    return PasteTarget((x0, y0, x1, y1), M_roi, alpha[..., None], lips[..., None], src, detail, ring, sigma, amount)


@dataclass
class ColourState:
    """Colour statistics carried from frame to frame (smoothing)."""

    shift: np.ndarray | None = None  # (3,) Lab mean of the source minus the generated
    gain: np.ndarray | None = None  # (3,) std ratio
    frames: int = field(default=0)


def _lab(rgb01: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb01, cv2.COLOR_RGB2Lab)


def match_colour(gen: np.ndarray, target: PasteTarget, state: ColourState) -> np.ndarray:
    """``gen`` (float32 RGB 0..255 over the ROI) with its Lab mean/std matched to the source's
    in the feathered ring, the statistics smoothed over frames in ``state``."""
    ring = target.ring
    if int(ring.sum()) < 20:
        return gen
    g = _lab(np.clip(gen, 0, 255) * np.float32(1 / 255.0))
    s = _lab(target.src * np.float32(1 / 255.0))
    gm, gs = cv2.meanStdDev(g, mask=ring)
    sm, ss = cv2.meanStdDev(s, mask=ring)
    gm, gs, sm, ss = (a.ravel() for a in (gm, gs, sm, ss))
    gain = np.clip(ss / np.maximum(gs, 1e-3), *STD_LIMIT)
    shift = np.clip(sm - gm, -SHIFT_LIMIT, SHIFT_LIMIT)
    if state.shift is None or state.gain is None:
        state.shift, state.gain = shift, gain
    else:
        state.shift = state.shift + COLOUR_EMA * (shift - state.shift)
        state.gain = state.gain + COLOUR_EMA * (gain - state.gain)
    state.frames += 1
    out = (g - gm.astype(np.float32)) * state.gain.astype(np.float32) + (gm + state.shift).astype(np.float32)
    return cv2.cvtColor(out.astype(np.float32), cv2.COLOR_Lab2RGB) * np.float32(255.0)


def paste(frame: np.ndarray, generated: np.ndarray, target: PasteTarget, state: ColourState) -> None:
    """Blend the generated RGB crop (S x S uint8) into ``frame`` in place (RGB or RGBA: the alpha
    channel is left as it is)."""
    x0, y0, x1, y1 = target.rect
    if x1 <= x0 or y1 <= y0:
        return
    w, h = x1 - x0, y1 - y0
    gen = cv2.warpAffine(generated, target.M_roi, (w, h), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    gen = match_colour(gen, target, state)
    if target.detail_amount > 0:
        # the fine band the crop cannot carry: the source's outside the lips (the generated
        # band replaced, not added to), the generated pixels sharpened on the lips
        soft = cv2.GaussianBlur(gen, (0, 0), target.sigma)
        lips = target.lips
        fine = gen - soft
        gen = gen + np.float32(target.detail_amount) * ((1.0 - lips) * (target.detail - fine) + (UNSHARP * lips) * fine)
    out = target.src + target.alpha * (gen - target.src)
    frame[y0:y1, x0:x1, :3] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
