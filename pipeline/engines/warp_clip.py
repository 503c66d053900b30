"""The `warp` engine on a presenter clip: the clip's own motion, a new mouth.

Prepare once per render (:class:`ClipRig`): the warp engine's mouth rig is built on the
clip's reference frame (its most closed, most frontal mouth; parted lips sealed as on a
photo), so the mouth controls are exactly the photo's -- the lips seal on /p b m/ the
same way. For every clip frame an affine map takes the reference's face onto that frame's
(least squares over stable landmarks of the smoothed track: eyes, nose, forehead,
cheekbones; never the mouth or the jaw, which the source's own speech moves).

Per output frame: the clip frame that duration fitting picked (:mod:`clip_fit`), the
reference's lower face animated by the frame's mouth controls (one remap of the mouth
region, the interior painted), carried onto the frame by its affine map and blended in
with a feathered mask that covers the source's lips, chin and jaw travel (so the
source's own mouth movements are gone), its colour matched to the frame around the mask's
edge. Eyes, blinks, brows and head motion are the presenter's own: the blink, brow, gaze
and head channels of the tracks are not used.

Teeth colour comes from the clip frame whose mouth is widest open when it shows teeth
(the lip colour from the reference), else the photo defaults.

Speed (720p on two cores): a mouth at least :data:`COARSE_W` px wide has its flow computed
on every second pixel (``warp.coarse_mouth``), and every output frame carries the clip
frame's decoded I420 planes with only the pasted rectangle converted in
(:mod:`pipeline.export.yuv`), so an H.264 writer does no whole-frame RGB->YUV.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

import cv2
import numpy as np

from pipeline.engines.clip_fit import STABLE, FrameCursor, head_speed
from pipeline.errors import InvalidOption
from pipeline.export.yuv import I420Patcher, with_i420
from pipeline.face import regions as R
from pipeline.media.clip_frames import BlockReader
from pipeline.media.image import resize_to
from pipeline.options import RenderOptions
from pipeline.types import Avatar, Frame, Tracks

log = logging.getLogger(__name__)

MOUTH_CHANNELS = ("jaw", "gap", "teeth", "spread", "round", "press", "tongue", "smile")
MASK_TOP = 0.05  # mask top edge below the subnasale, mouth widths
MASK_DROP = (0.4, 0.8)  # how far below the chin the mask reaches, mouth widths: the source's own jaw travel
JAW_GAIN, JAW_MARGIN = 1.5, 0.35  # ... times this plus this (FaceMesh's chin point under-reads a dropping jaw),
# within these bounds (the less of the neck the better: it moves with the body, not the head)
MASK_INSET = 0.92  # the mask's sides at this share of the jaw's half width (stays on the face)
FEATHER = 0.07  # mask feather (Gaussian sigma), mouth widths
GAIN_LIMIT = 0.15  # colour match: at most +-15 % per channel
GAIN_EMA = 0.3  # colour match smoothing over frames
PREFETCH = 8  # frames decoded ahead on a second thread
COARSE_W = 100.0  # px: mouths at least this wide have their flow computed on every second pixel
STEADY_CUTOFF = 3.0  # Hz: One Euro cut-off of the pasted region's corners at rest ...
STEADY_BETA = 20.0  # ... rising this much per face width per second of motion (follows fast turns)
STEADY_D_CUTOFF = 4.0  # Hz: cut-off of the speed estimate (quick to notice motion)
OCCLUDED = 28.0  # grey levels: a frame without a detected face that differs this much at the mask's
# edge from the reference is covered (a hand, a flash): it is shown as it is, without a mouth


@dataclass
class ClipRig:
    path: str  # the prepared clip's stored frames (BlockReader)
    stored_frames: int
    first: int  # stored index of clip frame 0
    n_clip: int
    size: tuple[int, int]  # output (width, height)
    stored: tuple[int, int]  # (width, height) of the stored frames
    mouth: object  # warp.MouthRig of the reference
    ref: np.ndarray  # sealed reference frame at output size (RGB)
    buf: np.ndarray  # working copy: the mouth region is redrawn into it per frame
    rect: tuple[int, int, int, int]  # what the reference supplies (mask bounds), reference pixels
    mask: np.ndarray  # float32 blend weight over ``rect``
    affines: np.ndarray  # (n_clip, 2, 3) reference -> clip frame, output pixels
    speed: np.ndarray  # head speed per clip frame (duration fitting)
    found: np.ndarray  # bool per clip frame: the face was detected there
    fps: float
    mouth_frame: Callable[..., None]  # the warp engine's mouth renderer
    fitted: str = ""  # how the first render fitted the clip (for logs and tests)
    cursor: FrameCursor | None = None  # where the last render stopped: parts continue there
    reader: BlockReader | None = None  # kept open across renders (part by part, frame by frame)

    def order(self, n: int) -> np.ndarray:
        """Clip frames for the next ``n`` output frames: the whole speech fitted on the first
        call; later calls (a streamed speech's parts) continue where the last one stopped."""
        if self.cursor is None:
            self.cursor = FrameCursor(self.n_clip, self.speed, self.fps)
        order = self.cursor.order(n)
        self.fitted = self.cursor.fitted
        return order

    def frames(self) -> BlockReader:
        if self.reader is None:
            self.reader = BlockReader(self.path, self.stored_frames, self.fps)
        return self.reader


def _affines(ref: np.ndarray, track: np.ndarray) -> np.ndarray:
    """Least-squares affine maps from ``ref`` (P, 2) onto each ``track[t]`` (P, 2)."""
    x = np.hstack([ref, np.ones((len(ref), 1))]).astype(np.float64)
    pinv = np.linalg.pinv(x)  # (3, P)
    b = np.einsum("ij,tjk->tik", pinv, track.astype(np.float64))  # (n, 3, 2)
    return np.transpose(b, (0, 2, 1)).astype(np.float32)  # (n, 2, 3)


def _steady(affines: np.ndarray, rect: tuple[int, int, int, int], times: np.ndarray, face_w: float,
            fps: float) -> np.ndarray:
    """The per-frame maps with detector noise removed but the head's motion kept: three
    corners of the pasted region are followed through the raw maps, smoothed with a One Euro
    filter on the source's clock (it follows fast turns: a high cut-off under motion), and the
    maps refitted through them."""
    from pipeline.face.track_filter import smooth_track

    x0, y0, x1, y1 = rect
    src = np.array([[x0, y0], [x1, y0], [x0, y1]], np.float32)
    pts = np.einsum("tij,kj->tki", affines[:, :, :2], src) + affines[:, None, :, 2]  # (n, 3, 2)
    pts = smooth_track(pts, fps, face_w, times=times, min_cutoff=STEADY_CUTOFF, beta=STEADY_BETA,
                       d_cutoff=STEADY_D_CUTOFF)
    return np.stack([cv2.getAffineTransform(src, p.astype(np.float32)) for p in pts]).astype(np.float32)


def jaw_travel(raw: np.ndarray, affines: np.ndarray, ref_chin: np.ndarray, down: np.ndarray, W: float) -> float:
    """How far the source's own chin drops below the reference's (98th percentile over the clip,
    mouth widths), each frame's chin taken back into the reference by its map."""
    lin, t = affines[:, :, :2].astype(np.float64), affines[:, :, 2].astype(np.float64)
    chin = raw[:, 152, :2].astype(np.float64) - t
    back = np.einsum("tij,tj->ti", np.linalg.inv(lin), chin)
    drops = (back - ref_chin) @ down / max(W, 1.0)
    return float(np.percentile(drops, 98)) if len(drops) else 0.0


def _mask(lm: np.ndarray, rig, shape: tuple[int, int], drop: float = MASK_DROP[0]) -> np.ndarray:
    """The lower face the reference supplies: from just under the nose to past the chin,
    inside the jaw line, feathered (full image size, float32)."""
    fr = rig.field.frame
    xy = lm[:, :2].astype(np.float64)
    loc = fr.to_local(xy)
    W = rig.W
    top = loc[R.SUBNASALE, 1] + MASK_TOP * W
    jaw = loc[list(R.JAW)]
    chin_u = loc[R.CHIN, 0]
    half = max(float(np.abs(jaw[:, 0] - chin_u).max()), 1.0)
    pts = []
    for u, v in jaw:
        if v < top:
            continue
        w = max(0.0, 1.0 - abs(u - chin_u) / half) ** 1.5
        pts.append((chin_u + MASK_INSET * (u - chin_u), v + drop * W * w))
    order = np.argsort([p[0] for p in pts])
    pts = [pts[i] for i in order]
    left = min(jaw[:, 0]) * MASK_INSET
    right = max(jaw[:, 0]) * MASK_INSET
    poly = np.array([(left, top)] + pts + [(right, top)], np.float64)
    img = fr.to_image(poly)
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(img * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    sigma = max(1.0, FEATHER * W)
    k = int(np.ceil(3 * sigma)) * 2 + 1
    er = max(1, int(round(1.2 * sigma)))
    m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * er + 1, 2 * er + 1)))
    return cv2.GaussianBlur(m.astype(np.float32) / 255.0, (k, k), sigma)


def prepare(avatar: Avatar, opts: RenderOptions, warp: ModuleType) -> ClipRig:
    """Per-render work for a clip avatar (see the module docstring); ``warp`` is the warp
    engine's module (its mouth rig, handed over so the two modules do not import each other)."""
    from pipeline.face.clip import manifest_of, open_frames

    avatar = clip_at_rate(avatar, opts.fps)
    clip = avatar.clip
    assert clip is not None
    manifest = manifest_of(clip)
    stored = (int(manifest["width"]), int(manifest["height"]))
    image = avatar.image
    scale_ref = 1.0
    if opts.size and max(image.shape[:2]) != opts.size:
        image, scale_ref = resize_to(image, opts.size)
    size = (image.shape[1], image.shape[0])
    s = size[0] / float(stored[0])
    lm = avatar.face.landmarks.copy()
    lm[:, :3] *= scale_ref
    image = np.ascontiguousarray(image[..., :3])
    mouth = warp._prepare_mouth(image, lm)
    first = int(manifest["first"])
    if manifest.get("widest_gap", 0.0) > 0.12:  # the source shows its teeth somewhere: take their colour
        k = int(manifest["widest"])
        with open_frames(clip) as frames:
            shown = frames[first + k].copy()
        if (shown.shape[1], shown.shape[0]) != size:
            shown = cv2.resize(shown, size, interpolation=cv2.INTER_AREA)
        lk = clip.landmarks[k].copy()
        lk[:, :3] *= s
        _, teeth, _, _ = warp._mouth_colours(shown, lk, mouth.W)
        mouth.teeth_rgb = teeth
    ref = warp._seal_source_lips(image, lm, mouth)
    if mouth.W >= COARSE_W:  # a large face: its mouth's flow at half resolution (visibly the same, ~2x quicker)
        mouth = warp.coarse_mouth(mouth)
    with np.load(Path(clip.path).parent / "track.npz") as data:
        raw, times, found = data["raw"], data["times"], data["found"].astype(bool)
    ref_idx = int(manifest["reference"])
    track = raw[:, list(STABLE), :2] * np.float32(s)
    affines = _affines(track[ref_idx], track)  # the reference frame maps onto itself
    travel = jaw_travel(raw * np.float32(s), affines, lm[152, :2].astype(np.float64),
                        np.asarray(mouth.field.frame.ey, np.float64), mouth.W)
    drop = float(np.clip(JAW_GAIN * travel + JAW_MARGIN, *MASK_DROP))
    log.debug("source jaw travel %.2f W: mask reaches %.2f W below the chin", travel, drop)
    mask_full = _mask(lm, mouth, image.shape[:2], drop)
    ys, xs = np.nonzero(mask_full > 1.0 / 255)
    if len(ys):  # the rectangle the reference supplies (the mouth region and the neck below it)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    else:
        x0, y0, x1, y1 = mouth.field.rect
    mask = np.ascontiguousarray(mask_full[y0:y1, x0:x1])
    affines = _steady(affines, (x0, y0, x1, y1), times, float(manifest.get("face_width", 100.0)) * s, clip.fps)
    speed = head_speed(clip.landmarks, float(manifest.get("face_width", 100.0)))
    return ClipRig(clip.path, int(manifest["stored_frames"]), first, clip.n_frames, size, stored, mouth, ref,
                   ref.copy(), (x0, y0, x1, y1), mask, affines, speed, found, clip.fps, warp._mouth_frame)


def clip_at_rate(avatar: Avatar, fps: float) -> Avatar:
    """The clip avatar prepared at ``fps`` (the render's rate): itself, or prepared again from
    its source file at that rate (cached like the first time), at the size of its image."""
    from pipeline.face.clip import manifest_of, prepare_clip

    clip = avatar.clip
    assert clip is not None
    if abs(clip.fps - fps) <= 1e-6:
        return avatar
    src = manifest_of(clip)["source"].get("path", "")
    try:
        again = prepare_clip(src, fps, name=avatar.name)
    except Exception as exc:
        raise InvalidOption(
            f"The clip was prepared at {clip.fps:g} fps and its source file is no longer there to prepare it "
            f"at {fps:g} fps ({exc}); load the clip again."
        ) from exc
    return _like(again, avatar)


def _like(new: Avatar, old: Avatar) -> Avatar:
    """``new`` at the size of ``old``'s image (a resized avatar stays resized)."""
    import dataclasses

    if new.image.shape == old.image.shape:
        return new
    image, scale = resize_to(new.image, max(old.image.shape[:2]))
    lm = new.face.landmarks.copy()
    lm[:, :3] *= scale
    return dataclasses.replace(new, image=image, face=dataclasses.replace(new.face, landmarks=lm))


def _prefetch(rig: ClipRig, order: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """The clip frames in ``order`` at output size, each with its decoded I420 planes (None
    when it was resized), decoded on a second thread (a few frames: on this one)."""
    size = rig.size
    frames = rig.frames()

    def get(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        k = rig.first + int(i)
        f = frames[k]
        if (f.shape[1], f.shape[0]) != size:
            interp = cv2.INTER_AREA if size[0] < f.shape[1] else cv2.INTER_LINEAR
            return cv2.resize(f, size, interpolation=interp), None
        return f.copy(), frames.i420(k)

    if len(order) <= 2:
        for i in order:
            yield get(i)
        return
    q: "queue.Queue[object]" = queue.Queue(PREFETCH)
    stop = threading.Event()

    def work() -> None:
        try:
            for i in order:
                if stop.is_set():
                    return
                q.put(get(i))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    t = threading.Thread(target=work, name="clip-frames", daemon=True)
    t.start()
    try:
        for _ in range(len(order)):
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def render(rig: ClipRig, tracks: Tracks) -> Iterator[Frame]:
    """One frame per track frame: the fitted clip frame with the new mouth."""
    order = rig.order(tracks.n_frames)
    chans = {name: tracks.get(name) for name in MOUTH_CHANNELS}
    x0, y0, x1, y1 = rig.rect
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float32)
    W, H = rig.size
    gain = np.ones(3, np.float64)
    patch4 = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
    patch4[..., 3] = np.round(rig.mask * 255).astype(np.uint8)
    last: tuple[float, ...] | None = None
    patch = I420Patcher()
    for i, (frame, i420) in enumerate(_prefetch(rig, order)):
        c = {k: float(v[i]) for k, v in chans.items()}
        key = tuple(c.values())
        if key != last:  # the same mouth as the frame before (a pause) is not drawn again
            rig.mouth_frame(rig.mouth, rig.ref, rig.buf, c)
            patch4[..., :3] = rig.buf[y0:y1, x0:x1]
            last = key
        A = rig.affines[int(order[i])]
        dst = corners @ A.T
        dx0, dy0 = np.maximum(np.floor(dst.min(0)).astype(int) - 1, 0)
        dx1, dy1 = np.minimum(np.ceil(dst.max(0)).astype(int) + 2, [W, H])
        if dx1 <= dx0 or dy1 <= dy0:
            yield _out(frame, i420)
            continue
        M = A.copy()
        M[:, 2] = A[:, :2] @ np.array([x0, y0], np.float32) + A[:, 2] - np.array([dx0, dy0], np.float32)
        warped = cv2.warpAffine(patch4, M, (int(dx1 - dx0), int(dy1 - dy0)), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        region = frame[dy0:dy1, dx0:dx1]
        alpha = np.ascontiguousarray(warped[..., 3])
        rgb = cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)
        ring = cv2.inRange(alpha, 38, 217)  # the feathered edge: where the colours are compared
        edge = cv2.countNonZero(ring) > 20
        if edge and not rig.found[int(order[i])]:
            gained = cv2.multiply(rgb, (float(gain[0]), float(gain[1]), float(gain[2]), 0.0))
            if float(np.mean(cv2.mean(cv2.absdiff(region, gained), mask=ring)[:3])) > OCCLUDED:
                yield _out(frame, i420)  # the face is not there to draw a mouth on
                continue
        if edge:  # colour match, smoothed over frames
            have = np.array(cv2.mean(rgb, mask=ring)[:3])
            want = np.array(cv2.mean(region, mask=ring)[:3]) / np.maximum(have, 1.0)
            want = np.clip(want, 1 - GAIN_LIMIT, 1 + GAIN_LIMIT)
            gain += (GAIN_EMA if i else 1.0) * (want - gain)
        src = cv2.multiply(rgb, (float(gain[0]), float(gain[1]), float(gain[2]), 0.0))
        a = alpha.astype(np.float32)
        a *= np.float32(1 / 255.0)
        region[:] = cv2.blendLinear(src, np.ascontiguousarray(region), a, 1.0 - a)
        yield _out(frame, i420, (int(dx0), int(dy0), int(dx1), int(dy1)), patch)


def _out(frame: np.ndarray, i420: np.ndarray | None, changed: tuple[int, int, int, int] | None = None,
         patch: I420Patcher | None = None) -> Frame:
    """The output frame, carrying its I420 planes when the clip frame's are known: those with
    the ``changed`` rectangle converted in (an H.264 writer then converts nothing else)."""
    if i420 is None:
        return frame
    return with_i420(frame, patch(i420, frame, changed) if patch is not None and changed is not None else i420)
