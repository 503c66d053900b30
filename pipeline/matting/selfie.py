"""Person matting with MediaPipe selfie segmentation (bundled), refined and stabilised.

Model: ``model_selection=0`` ("general", 256x256 input) is the default. On head-and-torso
shots it gives a cleaner contour than the "landscape" model (144x256 input, ~1 ms faster
here) which is blockier and fires on background clutter (flags, furniture); the speed
budget is met with the general model, so quality wins. ``model_selection=1`` stays
available for callers that need the last millisecond.

The segmenter only sees a ~256 px image, so its probability map is soft and blocky at
full resolution. Refinement, in order:

1. *Certain regions*: the probability is eroded / dilated into a lower and an upper
   bound; the refined alpha is clipped between them, so it is exactly 1 deep inside the
   person and exactly 0 far outside, and only an uncertain band around the contour is
   decided by the image.
2. *Old background cut off*: inside the uncertain band, pixels that look like the
   nearby certain background (a local clean-plate difference key) lose probability, and
   their final alpha is capped; this removes strips of wall the segmenter glues to the
   person and the faint haze around them.
3. *Edges follow the image*: a colour guided filter (guide = the frame) turns the
   sharpened probability into an alpha whose transitions sit on the image's own edges.
   Radius (~1/80 of the short side) and eps scale with the resolution. For video it runs
   as a *fast* guided filter (coefficients at the segmenter's ~256 px resolution,
   evaluated on the full-resolution frame, up to 1 MP); for photos
   :func:`cv2.ximgproc.guidedFilter` runs at full resolution, on the mirror-averaged
   segmentation.
4. *Soft hair*: in the top part of the silhouette (where hair is) the uncertain band is
   wider and eps smaller, so strands and frizz get fractional alpha instead of a cut.
5. *No boiling*: for video, an exponential moving average whose weight depends on local
   motion (low-resolution frame difference) is applied to the probability and to the final
   alpha; still parts of the edge are averaged over several frames, moving parts follow
   at once. It lives in :class:`SelfieState`, passed in and returned.

Alpha within 1/255 of 0 or 1 is snapped to it (invisible in 8 bits; lets compositing
copy whole regions).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline import models
from pipeline.matting._buffers import Workspace, thread_workspace
from pipeline.matting._ops import box as _box
from pipeline.matting._ops import shrink
from pipeline.matting.base import check_frame

log = logging.getLogger(__name__)

SEG_SIDE = 256  # long side of the image handed to the segmenter for video frames
REFINE_MAX_PIXELS = 1_000_000  # video: guided refinement evaluated at most at this size
PHOTO_MAX_PIXELS = 4_200_000  # larger photos are refined with the fast guided filter

# guided filter eps (guide in [0, 1]): body edges / hair zone
EPS_BODY = 2e-3
EPS_HAIR = 2e-4


def _segmenter(model_selection: int) -> models.Entry:
    def load():
        from pipeline.face.mp_import import mediapipe

        mp = mediapipe()

        return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)

    return models.get(f"mediapipe.selfie_segmentation.model={model_selection}", load)


def segment(image: np.ndarray, model_selection: int = 0) -> np.ndarray:
    """Raw person probability (float32 HxW in [0, 1]) at the size of ``image``."""
    entry = _segmenter(model_selection)
    with entry.lock:
        result = entry.model.process(np.ascontiguousarray(image))
    mask = result.segmentation_mask
    if mask is None:
        return np.zeros(image.shape[:2], np.float32)
    return np.clip(np.array(mask, dtype=np.float32, copy=True), 0.0, 1.0)


# --- small helpers ---------------------------------------------------------------------


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _odd(n: float) -> int:
    return 2 * max(1, int(math.ceil(n))) + 1


def radius_for(shape: tuple[int, ...]) -> int:
    """Guided-filter radius in full-resolution pixels: ~1/80 of the short side."""
    return max(2, int(round(min(shape[:2]) / 80.0)))


def hair_weight(prob: np.ndarray) -> np.ndarray:
    """Per-row weight (H x 1) of the hair zone: 1 over the top quarter of the silhouette,
    fading to 0 by 40% of its height. Zero everywhere when no person is found."""
    h = prob.shape[0]
    rows = np.flatnonzero((prob > 0.5).any(axis=1))
    y = np.arange(h, dtype=np.float32)[:, None]
    if rows.size == 0:
        return np.zeros((h, 1), np.float32)
    top, bottom = float(rows[0]), float(rows[-1] + 1)
    height = max(bottom - top, 1.0)
    return 1.0 - _smoothstep(y, top + 0.25 * height, top + 0.40 * height)


def bounds(prob: np.ndarray, band: float, hair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper alpha bounds from the probability (same size as ``prob``).

    ``band`` is the half-width in pixels of ``prob`` of the uncertain zone around the
    contour; it is 1.6x wider (and leans outwards) in the hair zone.
    """
    k_in = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(band), _odd(band)))
    k_out_hair = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(1.6 * band), _odd(1.6 * band)))
    lower = _smoothstep(cv2.erode(prob, k_in), 0.55, 0.95)
    upper = _smoothstep(cv2.dilate(prob, k_in), 0.05, 0.45)
    upper_hair = _smoothstep(cv2.dilate(prob, k_out_hair), 0.05, 0.45)
    upper = upper + hair * (np.maximum(upper, upper_hair) - upper)
    return lower.astype(np.float32), upper.astype(np.float32)


def guided_coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: np.ndarray | float) -> np.ndarray:
    """Colour guided filter (He et al.) coefficients, averaged: float32 HxWx4 (a_r, a_g, a_b, b).

    ``guide`` float32 HxWx3 in [0, 1], ``p`` float32 HxW, ``eps`` scalar or HxW map.
    The filtered output is ``a . guide + b``, which can be evaluated on a larger,
    upsampled guide (fast guided filter). Works on contiguous planes throughout
    (strided channel views are several times slower in numpy).
    """
    R, G, B = cv2.split(guide)
    p = np.ascontiguousarray(p, dtype=np.float32)
    mr, mg, mb, mp = (_box(x, r) for x in (R, G, B, p))
    cr = _box(R * p, r) - mr * mp
    cg = _box(G * p, r) - mg * mp
    cb = _box(B * p, r) - mb * mp
    vrr = _box(R * R, r) - mr * mr + eps
    vrg = _box(R * G, r) - mr * mg
    vrb = _box(R * B, r) - mr * mb
    vgg = _box(G * G, r) - mg * mg + eps
    vgb = _box(G * B, r) - mg * mb
    vbb = _box(B * B, r) - mb * mb + eps
    # inverse of the symmetric 3x3 covariance by cofactors
    i_rr = vgg * vbb - vgb * vgb
    i_rg = vgb * vrb - vrg * vbb
    i_rb = vrg * vgb - vgg * vrb
    i_gg = vrr * vbb - vrb * vrb
    i_gb = vrb * vrg - vrr * vgb
    i_bb = vrr * vgg - vrg * vrg
    inv_det = 1.0 / np.maximum(vrr * i_rr + vrg * i_rg + vrb * i_rb, 1e-12)
    ar = (i_rr * cr + i_rg * cg + i_rb * cb) * inv_det
    ag = (i_rg * cr + i_gg * cg + i_gb * cb) * inv_det
    ab = (i_rb * cr + i_gb * cg + i_bb * cb) * inv_det
    b = mp - ar * mr - ag * mg - ab * mb
    return _box(cv2.merge([x.astype(np.float32, copy=False) for x in (ar, ag, ab, b)]), r)


def _up(plane: np.ndarray, size: tuple[int, int], cover: tuple[int, int], dst: np.ndarray | None) -> np.ndarray:
    """Bilinear upsampling of a coarse grid that spans ``cover`` (w, h) pixels of an image
    of ``size``; the uncovered right/bottom strip (left out by an integer shrink) repeats
    the last values."""
    if cover == size:
        return cv2.resize(plane, size, dst=dst, interpolation=cv2.INTER_LINEAR)
    big = cv2.resize(plane, cover, interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, 0, size[1] - cover[1], 0, size[0] - cover[0], cv2.BORDER_REPLICATE)
    if dst is None:
        return big
    np.copyto(dst, big)
    return dst


def apply_coefficients(
    coef: np.ndarray,
    image: np.ndarray,
    out: np.ndarray | None = None,
    ws: Workspace | None = None,
    cover: tuple[int, int] | None = None,
) -> np.ndarray:
    """``a . image/255 + b`` at the size of ``image`` (uint8 RGB), coefficients upsampled
    (their grid spanning ``cover`` (w, h) pixels of the image, all of it by default)."""
    h, w = image.shape[:2]
    cover = cover or (w, h)
    ws = ws or Workspace()
    planes = cv2.split(image, [ws.get(f"plane{c}", (h, w), np.uint8) for c in range(3)])
    cs = cv2.split(coef)
    out = _up(cs[3], (w, h), cover, out)
    a = ws.get("coef_up", (h, w))
    for c in range(3):
        _up(cs[c] * np.float32(1.0 / 255.0), (w, h), cover, a)
        cv2.multiply(a, planes[c], dst=a, dtype=cv2.CV_32F)
        cv2.add(out, a, dst=out)
    return out


def snap(alpha: np.ndarray) -> np.ndarray:
    """Values within 1/255 of 0 or 1 set to exactly 0 or 1, in place (invisible in 8-bit
    output; lets compositing treat those pixels as all person or all background)."""
    cv2.threshold(alpha, 1 / 255, 0, cv2.THRESH_TOZERO, dst=alpha)
    _, top = cv2.threshold(alpha, 254 / 255, 1, cv2.THRESH_BINARY)
    cv2.max(alpha, top, dst=alpha)
    return alpha


def _prepare_prob(prob: np.ndarray) -> np.ndarray:
    """The probability handed to the guided filter: steeper around 0.5, still smooth."""
    return _smoothstep(prob, 0.2, 0.8).astype(np.float32)


def colour_prior(
    guide: np.ndarray, p: np.ndarray, lower: np.ndarray, upper: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """``p`` corrected in the uncertain band by a local clean-plate difference key, and
    how surely each pixel is plain background (0..1).

    Near each band pixel the clean background colour B is the mean of the certain
    background pixels (``upper`` ~ 0) within ``radius``, with their spread. A band pixel
    that looks like that background loses person probability (never gains: objects next
    to the person must not be pulled in). This cuts off the strips of old background the
    low-resolution segmenter glues to the person; the second map lets the caller also cap
    the final alpha there, so no faint haze of the person's colour is left on the
    backdrop. Where the background is busy (large spread) or not visible nearby, the
    segmenter is kept (a wider search for background colour was tried: it punches holes
    in bright skin and hair highlights that resemble a bright wall).
    """
    bg = (upper < 0.02).astype(np.float32)
    planes = cv2.split(guide)

    wb = _box(bg, radius)
    inv = 1.0 / np.maximum(wb, 1e-4)
    var = np.zeros_like(p)
    dist2 = np.zeros_like(p)
    for c in planes:
        cb = c * bg
        mean = _box(cb, radius) * inv
        var += np.maximum(_box(cb * c, radius) * inv - mean * mean, 0.0)
        d = c - mean
        dist2 += d * d
    sigma = np.sqrt(var)
    dist = np.sqrt(dist2)
    t0 = 0.05 + 1.5 * sigma
    est = np.clip((dist - t0) * (1.0 / 0.12), 0.0, 1.0)
    conf = _smoothstep(wb, 0.03, 0.15) * (1.0 - _smoothstep(sigma, 0.04, 0.10))
    conf *= np.clip(upper - lower, 0.0, 1.0)  # only inside the uncertain band
    corrected = (p + 0.9 * conf * np.minimum(est - p, 0.0)).astype(np.float32)
    bg_like = (conf * (1.0 - _smoothstep(dist, t0, t0 + 0.04))).astype(np.float32)
    return corrected, bg_like


# --- photo (one-off, highest quality) ----------------------------------------------------


def _photo_prob(image: np.ndarray, model_selection: int) -> np.ndarray:
    """Segmenter probability averaged with the mirrored image (less model noise), and
    re-run on a crop when the person is small in the frame."""
    h, w = image.shape[:2]
    prob = 0.5 * (segment(image, model_selection) + segment(image[:, ::-1], model_selection)[:, ::-1])
    ys, xs = np.nonzero(prob > 0.5)
    if ys.size and (ys.ptp() + 1) * (xs.ptp() + 1) < 0.35 * h * w:
        pad = int(0.15 * max(ys.ptp(), xs.ptp())) + 8
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        sub = 0.5 * (segment(crop, model_selection) + segment(crop[:, ::-1], model_selection)[:, ::-1])
        prob = np.zeros_like(prob)  # outside the padded box nothing was a person
        prob[y0:y1, x0:x1] = sub
    return prob.astype(np.float32)


def matte_photo(image: np.ndarray, model_selection: int = 0) -> np.ndarray:
    """Alpha (float32 HxW in [0, 1], read-only) of the person in a still image, best quality.

    Computed once per avatar; a photo avatar's matte then moves with the warp. Read-only
    so that it can be shared and recognised as unchanged without comparing it.
    """
    image = check_frame(image)
    h, w = image.shape[:2]
    if h * w > PHOTO_MAX_PIXELS:
        alpha, _ = SelfieMatter(model_selection, temporal=False)._matte(image, None, photo=True)
        return alpha
    prob = _photo_prob(image, model_selection)
    r = radius_for(image.shape)
    hair = hair_weight(prob)
    band = 1.8 * r + 2
    lower, upper = bounds(prob, band=band, hair=hair)
    guide = image.astype(np.float32) * np.float32(1.0 / 255.0)
    p, bg_like = colour_prior(guide, _prepare_prob(prob), lower, upper, int(2.5 * band))
    upper *= 1.0 - bg_like
    # an 8-bit guide takes eps in 8-bit units (a float guide is not scaled the same way)
    body = cv2.ximgproc.guidedFilter(image, p, r, EPS_BODY * 255.0**2)
    fine = cv2.ximgproc.guidedFilter(image, p, r, EPS_HAIR * 255.0**2)
    alpha = body + hair * (fine - body)
    np.clip(alpha, lower, upper, out=alpha)
    alpha = snap(np.clip(alpha, 0.0, 1.0).astype(np.float32))
    alpha.flags.writeable = False  # computed once and shared; copy it to change it
    return alpha


# --- video ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfieState:
    """What the selfie matter carries from one frame of a clip to the next."""

    size: tuple[int, int]  # (h, w) of the clip's frames
    prob: np.ndarray  # stabilised segmenter probability at the segmenter's resolution
    gray: np.ndarray  # previous frame, grey, at the segmenter's resolution (motion)
    alpha: np.ndarray  # previous output alpha (full resolution, read-only)
    frames: int  # frames seen so far


class SelfieMatter:
    """MediaPipe selfie segmentation, refined at the edges and stabilised over time.

    ``temporal=False`` treats every frame as a still (no smoothing). ``w_min`` is the EMA
    weight of a new frame where nothing moves (lower: steadier edges, slower to settle);
    where the frame changes by ``motion_full`` or more (0..1 grey levels), the weight is 1.
    """

    name = "selfie"

    def __init__(
        self,
        model_selection: int = 0,
        temporal: bool = True,
        w_min: float = 0.3,
        motion_floor: float = 0.015,
        motion_full: float = 0.06,
    ) -> None:
        if model_selection not in (0, 1):
            from pipeline.errors import InvalidOption

            raise InvalidOption("model_selection is 0 (general) or 1 (landscape).")
        self.model_selection = model_selection
        self.temporal = temporal
        self.w_min = float(w_min)
        self.motion_floor = float(motion_floor)
        self.motion_full = float(motion_full)

    def matte(self, frame_rgb: np.ndarray, state: SelfieState | None = None) -> tuple[np.ndarray, SelfieState]:
        return self._matte(check_frame(frame_rgb), state if self.temporal else None)

    def matte_photo(self, image: np.ndarray) -> np.ndarray:
        return matte_photo(image, self.model_selection)

    def _sizes(self, h: int, w: int) -> tuple[int, tuple[int, int]]:
        """(integer shrink factor to the segmenter's size, refinement size (w, h))."""
        f = max(1, int(math.ceil(max(h, w) / SEG_SIDE)))
        k = math.sqrt(REFINE_MAX_PIXELS / (h * w))
        ref = (max(8, round(w * k)), max(8, round(h * k))) if k < 1 else (w, h)
        return f, ref

    def _matte(
        self, frame: np.ndarray, state: SelfieState | None, photo: bool = False
    ) -> tuple[np.ndarray, SelfieState]:
        h, w = frame.shape[:2]
        f, (rw, rh) = self._sizes(h, w)
        small = np.ascontiguousarray(shrink(frame, f))  # the segmenter's input and the guide
        sh, sw = small.shape[:2]
        prob = segment(small, self.model_selection)
        if photo:
            prob = 0.5 * (prob + segment(np.ascontiguousarray(small[:, ::-1]), self.model_selection)[:, ::-1])
        gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (3, 3), 0).astype(np.float32)
        gray *= np.float32(1 / 255.0)

        weight: np.ndarray | None = None
        if state is not None and state.size == (h, w):
            diff = cv2.absdiff(gray, state.gray)
            if float(diff.mean()) < 0.12:  # else: a cut, start afresh
                diff = cv2.GaussianBlur(cv2.dilate(diff, np.ones((3, 3), np.uint8)), (5, 5), 0)
                t = np.clip((diff - self.motion_floor) * (1.0 / (self.motion_full - self.motion_floor)), 0.0, 1.0)
                weight = (self.w_min + (1.0 - self.w_min) * t).astype(np.float32)
                prob = state.prob + weight * (prob - state.prob)

        # bounds, hair zone and guided-filter coefficients at the segmenter's resolution;
        # the coefficients are evaluated on the frame at the refinement resolution
        scale = 1.0 / f
        r_full = radius_for((h, w))
        band = max(1.5, (1.8 * r_full + 2) * scale)
        hair = hair_weight(prob)
        lower, upper = bounds(prob, band=band, hair=hair)
        guide = small.astype(np.float32)
        guide *= np.float32(1 / 255.0)
        p, bg_like = colour_prior(guide, _prepare_prob(prob), lower, upper, max(2, int(round(2.5 * band))))
        upper = upper * (1.0 - bg_like)
        eps = np.broadcast_to((EPS_BODY + hair * (EPS_HAIR - EPS_BODY)).astype(np.float32), (sh, sw))
        coef = guided_coefficients(guide, p, max(1, int(round(r_full * scale))), eps)
        ws = thread_workspace()
        full = (rw, rh) == (w, h)
        # the coarse grid spans the frame but for the rows/columns an integer shrink leaves out
        cover = (round(sw * f * rw / w), round(sh * f * rh / h))
        alpha = np.empty((h, w), np.float32)  # returned: never a workspace buffer
        if full:
            target, refined = frame, alpha
        else:
            target = ws.get("target", (rh, rw, 3), np.uint8)
            cv2.resize(frame, (rw, rh), dst=target, interpolation=cv2.INTER_AREA)
            refined = ws.get("refined", (rh, rw))
        apply_coefficients(coef, target, out=refined, ws=ws, cover=cover)
        bound = ws.get("bound", (rh, rw))
        cv2.max(refined, _up(lower, (rw, rh), cover, bound), dst=refined)
        cv2.min(refined, _up(upper, (rw, rh), cover, bound), dst=refined)
        if not full:
            cv2.resize(refined, (w, h), dst=alpha, interpolation=cv2.INTER_LINEAR)

        if weight is not None and state is not None:
            wf = _up(weight, (w, h), (sw * f, sh * f), ws.get("weight", (h, w)))
            np.subtract(alpha, state.alpha, out=alpha)
            np.multiply(alpha, wf, out=alpha)
            np.add(alpha, state.alpha, out=alpha)
        snap(alpha)
        alpha.flags.writeable = False
        frames = (state.frames + 1) if (state is not None and weight is not None) else 1
        return alpha, SelfieState(size=(h, w), prob=prob, gray=gray, alpha=alpha, frames=frames)
