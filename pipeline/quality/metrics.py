"""Lip-sync and stability metrics from a :class:`MouthTrack` and the phoneme timeline.

(The report that gathers them is :mod:`.report`; phoneme timing files are read by
:mod:`.phonemes`.)

All metrics are engine-independent: they use only what FaceMesh sees in the frames
(``MouthTrack.gap``, the inner-lip gap divided by the mouth width) and the phoneme
times of the audio. Symbols may be canonical IPA or ARPAbet; they are normalised with
:func:`pipeline.phones.canonical`.

Thresholds (gap ratios, i.e. fractions of the mouth width):

* **closed level**: the lips count as closed at or below
  ``clip(p10 + CLOSED_MARGIN, CLOSED_MIN, CLOSED_MAX)`` = ``clip(p10 + 0.035, 0.05, 0.06)``,
  where ``p10`` is the 10th percentile of the gap over the frames that should be closed
  (frames whose centre lies in a /p b m/ or in a pause of at least ``LONG_PAUSE``); with
  fewer than 3 such frames it is the 5th percentile of all frames. Why these numbers:
  on H.264 renders of the warp engine (astronaut photo, 5 sentences) the frames rendered
  with the lips touching read median 0.02, 99th percentile 0.048 (a brief bilabial
  closure between vowels, with a pressed, darker seam, reads higher than lips resting in
  a pause), so the level never goes below 0.05. FaceMesh compresses small openings (a
  third of slightly parted frames also read < 0.06), so a sharper threshold would only
  add noise. The 0.06 ceiling means a video whose lips never meet cannot earn closures
  by raising the bar.
* **open level**: ``closed level + OPEN_MARGIN`` (0.10): a clearly visible opening.

AV offset sign: **positive = video late** (the mouth moves after the sound).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.quality.measure import MouthTrack
from pipeline.phones import BILABIALS, OPEN_VOWELS, PAUSE, canonical, classify
from pipeline.types import Phoneme

log = logging.getLogger(__name__)

OPEN_SET = OPEN_VOWELS | {"ə", "ɐ"}  # ARPAbet AA AE AH AO AW AY; schwa counts as AH
CLOSED_MIN = 0.05  # lowest closed level (gap / mouth width)
CLOSED_MAX = 0.06  # highest closed level: above this the lips are not touching
CLOSED_MARGIN = 0.035  # added to the low percentile of the should-be-closed frames
CLOSED_PERCENTILE = 10.0  # percentile of the should-be-closed frames taken as "closed"
OPEN_MARGIN = 0.10  # open level = closed level + this
LONG_PAUSE = 0.12  # s; pauses at least this long should show closed lips
MAX_LAG = 0.2  # s; AV offset search range, both directions
LAG_STEP = 0.001  # s; lag grid before peak interpolation
DENSE_RATE = 1000.0  # Hz of the expected-openness curve
EXPECT_SIGMA = 0.025  # s; Gaussian smoothing of the expected openness (zero phase)
DRIFT_MIN_DURATION = 20.0  # s; drift is measured on longer clips only
MIN_OFFSET_FRAMES = 8  # fewest frames with a face needed to estimate an offset

# Expected openness of each phone kind (phones.PhoneClass.kind), 0 closed .. 1 open.
OPENNESS: dict[str, float] = {
    "open": 1.0,  # open vowels (OPEN_SET)
    "vowel": 0.7,
    "weak": 0.5,  # h, glottal stop: the mouth is already shaped for the next vowel
    "consonant": 0.45,
    "glide": 0.4,
    "labiodental": 0.25,
    "bilabial": 0.0,
    "pause": 0.0,
}


def normalize(phonemes: Sequence[Phoneme]) -> list[Phoneme]:
    """Phones with canonical IPA symbols, positive length, in time order."""
    out = []
    for p in phonemes:
        if not (p.end > p.start):
            continue
        sym = canonical(p.symbol)
        out.append(p if sym == p.symbol else Phoneme(sym, p.start, p.end, p.stress, p.word))
    return sorted(out, key=lambda p: p.start)


def phone_kind(symbol: str) -> str:
    """"open" for open vowels, else the phones.py kind of the (canonical) symbol."""
    if symbol in OPEN_SET:
        return "open"
    if symbol == PAUSE:
        return "pause"
    return classify(symbol).kind


# ---------------------------------------------------------------- frame windows


def frame_window(track: MouthTrack, start: float, end: float, pad: int = 1) -> slice | None:
    """Frames on screen during [start, end), widened by ``pad`` frames each side.

    None when the span is outside the video.
    """
    t = track.times
    n = len(t)
    if n == 0 or end <= t[0] or start >= track.end:
        return None
    a = max(0, int(np.searchsorted(t, start, side="right")) - 1)
    b = max(a, int(np.searchsorted(t, end, side="left")) - 1)
    return slice(max(0, a - pad), min(n, b + 1 + pad))


def _centres(track: MouthTrack) -> np.ndarray:
    return track.times + 0.5 * track.durations


def _span_mask(track: MouthTrack, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    c = _centres(track)
    mask = np.zeros(len(c), bool)
    for s, e in spans:
        mask |= (c >= s) & (c < e)
    return mask


# ---------------------------------------------------------------- closed / open levels


def closed_level(track: MouthTrack, phonemes: Sequence[Phoneme] | None = None) -> float:
    """Gap ratio at or below which the lips count as closed (see the module doc)."""
    finite = np.isfinite(track.gap)
    if not finite.any():
        return CLOSED_MAX
    values = np.zeros(0)
    if phonemes:
        spans = [
            (p.start, p.end)
            for p in normalize(phonemes)
            if p.symbol in BILABIALS or (p.symbol == PAUSE and p.duration >= LONG_PAUSE)
        ]
        values = track.gap[_span_mask(track, spans) & finite]
    if len(values) >= 3:
        base = float(np.percentile(values, CLOSED_PERCENTILE))
    else:
        base = float(np.percentile(track.gap[finite], 5.0))
    return float(np.clip(base + CLOSED_MARGIN, CLOSED_MIN, CLOSED_MAX))


def open_level(closed: float) -> float:
    """Gap ratio above which the mouth is clearly open."""
    return closed + OPEN_MARGIN


@dataclass(frozen=True)
class RateResult:
    """Share of phones that met a criterion."""

    rate: float | None  # hits / count; None when no phone could be checked
    count: int  # phones checked (inside the video, with a face on some frame of the window)
    misses: tuple[str, ...]  # "symbol@start" of the phones that failed


def _rate(track: MouthTrack, phones: list[Phoneme], passed) -> RateResult:
    hits = 0
    count = 0
    misses: list[str] = []
    for p in phones:
        w = frame_window(track, p.start, p.end)
        if w is None:
            continue
        g = track.gap[w]
        g = g[np.isfinite(g)]
        if len(g) == 0:
            continue
        count += 1
        if passed(g):
            hits += 1
        else:
            misses.append(f"{p.symbol}@{p.start:.2f}s")
    return RateResult(hits / count if count else None, count, tuple(misses))


def bilabial_closure(track: MouthTrack, phonemes: Sequence[Phoneme], level: float | None = None) -> RateResult:
    """Share of /p b m/ whose gap reaches ``level`` (default: :func:`closed_level`) on some
    frame within +-1 frame of the phone's span."""
    level = closed_level(track, phonemes) if level is None else level
    phones = [p for p in normalize(phonemes) if p.symbol in BILABIALS]
    return _rate(track, phones, lambda g: float(g.min()) <= level)


def open_vowel_rate(track: MouthTrack, phonemes: Sequence[Phoneme], level: float | None = None) -> RateResult:
    """Share of open vowels (AA AE AH AO AW AY, schwa) whose largest gap within +-1 frame of
    the span exceeds ``level`` (default: closed level + OPEN_MARGIN)."""
    level = open_level(closed_level(track, phonemes)) if level is None else level
    phones = [p for p in normalize(phonemes) if p.symbol in OPEN_SET]
    return _rate(track, phones, lambda g: float(g.max()) > level)


# ---------------------------------------------------------------- AV offset


@dataclass(frozen=True)
class Openness:
    """Expected mouth openness sampled densely: value ``values[k]`` at ``t0 + k / rate``."""

    t0: float
    rate: float
    values: np.ndarray  # float64

    def integral(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, cumulative integral) for averaging the curve over any interval."""
        t = self.t0 + np.arange(len(self.values) + 1) / self.rate
        c = np.concatenate([[0.0], np.cumsum(self.values) / self.rate])
        return t, c


def expected_openness(
    phonemes: Sequence[Phoneme], rate: float = DENSE_RATE, sigma: float = EXPECT_SIGMA, margin: float = 1.0
) -> Openness:
    """How open the mouth should be over time: open vowels 1, other vowels 0.7, consonants
    in between, bilabials and silence 0 (see OPENNESS), smoothed with a zero-phase Gaussian
    of ``sigma`` seconds. Time not covered by any phone is silence."""
    from scipy.ndimage import gaussian_filter1d

    phones = normalize(phonemes)
    t0 = (min(0.0, phones[0].start) if phones else 0.0) - margin
    t1 = (phones[-1].end if phones else 0.0) + margin
    n = int(math.ceil((t1 - t0) * rate)) + 1
    values = np.zeros(n, np.float64)
    for p in phones:
        a = int(round((p.start - t0) * rate))
        b = int(round((p.end - t0) * rate))
        values[a:b] = OPENNESS.get(phone_kind(p.symbol), 0.45)
    if sigma > 0:
        values = gaussian_filter1d(values, sigma * rate, mode="constant")
    return Openness(t0, rate, values)


def _expected(times: np.ndarray, durations: np.ndarray, curve: Openness, lags: np.ndarray) -> np.ndarray:
    """(len(lags), len(times)): mean of ``curve`` over [t - lag, t + d - lag) per frame."""
    t, c = curve.integral()
    d = np.maximum(durations, 1e-9)[None, :]
    a = np.asarray(times, np.float64)[None, :] - np.asarray(lags, np.float64)[:, None]
    return (np.interp(a + d, t, c, left=0.0, right=c[-1]) - np.interp(a, t, c, left=0.0, right=c[-1])) / d


def expected_per_frame(track: MouthTrack, curve: Openness, lag: float | np.ndarray = 0.0) -> np.ndarray:
    """Mean expected openness over each frame's display interval, for the video being
    ``lag`` seconds late (scalar lag: (n,); array of lags: (len(lag), n))."""
    out = _expected(track.times, track.durations, curve, np.atleast_1d(np.asarray(lag, np.float64)))
    return out[0] if np.ndim(lag) == 0 else out


@dataclass(frozen=True)
class Offset:
    """Result of the AV offset search."""

    ms: float  # lag of the correlation peak; positive = video late
    corr: float  # Pearson correlation at the peak (how well the mouth follows the speech)
    at_edge: bool  # the peak is at the end of the search range: the true offset may be larger


def _pearson_rows(e: np.ndarray, g: np.ndarray) -> np.ndarray:
    ec = e - e.mean(axis=1, keepdims=True)
    gc = g - g.mean()
    den = np.sqrt((ec**2).sum(axis=1) * (gc**2).sum())
    return np.where(den > 0, (ec @ gc) / np.maximum(den, 1e-300), -1.0)


def av_offset(
    track: MouthTrack,
    phonemes: Sequence[Phoneme],
    *,
    max_lag: float = MAX_LAG,
    frames: np.ndarray | slice | None = None,
    curve: Openness | None = None,
) -> Offset | None:
    """Lag (ms, positive = video late) maximising the correlation between the expected
    openness (averaged over each frame's display interval) and the measured gap, searched
    on a 1 ms grid within +-``max_lag`` and refined by a parabola through the peak.

    ``frames`` restricts the frames used (a slice or boolean mask). None when fewer than
    MIN_OFFSET_FRAMES frames have a face or either signal is flat.
    """
    curve = curve if curve is not None else expected_openness(phonemes)
    use = np.isfinite(track.gap)
    if frames is not None:
        sel = np.zeros(len(use), bool)
        sel[frames] = True
        use &= sel
    if use.sum() < MIN_OFFSET_FRAMES:
        return None
    g = track.gap[use]
    if float(np.ptp(g)) <= 1e-9:
        return None
    lags = np.arange(-max_lag, max_lag + LAG_STEP / 2, LAG_STEP)
    times, durations = track.times[use], track.durations[use]  # each frame keeps its own display time
    chunk = max(1, int(4_000_000 // max(1, len(g))))  # bound memory on long clips
    r = np.concatenate(
        [_pearson_rows(_expected(times, durations, curve, lags[i : i + chunk]), g) for i in range(0, len(lags), chunk)]
    )
    if float(np.max(r)) <= -1.0:
        return None  # the expected openness is flat over these frames
    k = int(np.argmax(r))
    lag = float(lags[k])
    peak = float(r[k])
    at_edge = k == 0 or k == len(lags) - 1
    if not at_edge:
        y0, y1, y2 = r[k - 1], r[k], r[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            delta = 0.5 * (y0 - y2) / den
            lag += float(np.clip(delta, -0.5, 0.5)) * LAG_STEP
            peak = float(y1 - 0.25 * (y0 - y2) * delta)
    return Offset(lag * 1000.0, peak, at_edge)


@dataclass(frozen=True)
class Drift:
    start_ms: float  # AV offset over the first third of the clip
    end_ms: float  # AV offset over the last third
    ms: float  # end - start: positive = the video falls further behind the audio


def drift(track: MouthTrack, phonemes: Sequence[Phoneme], min_duration: float = DRIFT_MIN_DURATION) -> Drift | None:
    """AV offset over the first third vs the last third, for clips longer than
    ``min_duration`` seconds (None otherwise, or when either third has no offset)."""
    if track.n_frames == 0:
        return None
    t0, t1 = float(track.times[0]), track.end
    if t1 - t0 <= min_duration:
        return None
    curve = expected_openness(phonemes)
    c = _centres(track)
    third = (t1 - t0) / 3.0
    first = av_offset(track, phonemes, frames=c < t0 + third, curve=curve)
    last = av_offset(track, phonemes, frames=c >= t1 - third, curve=curve)
    if first is None or last is None:
        return None
    return Drift(first.ms, last.ms, last.ms - first.ms)


# ---------------------------------------------------------------- stability


def landmark_jitter(track: MouthTrack) -> float | None:
    """Mean over the stable points (eye corners, nose bridge) of each point's RMS distance
    from its own temporal median position, in pixels. A still-photo avatar should score
    well under 1 px; head motion, if the engine adds any, counts as jitter too."""
    pts = np.asarray(track.stable, np.float64)
    ok = np.isfinite(pts).all(axis=(1, 2))
    if ok.sum() < 2:
        return None
    pts = pts[ok]
    med = np.median(pts, axis=0)
    rms = np.sqrt(((pts - med[None]) ** 2).sum(axis=2).mean(axis=0))
    return float(rms.mean())


PSNR_CAP = 100.0  # dB reported for frames identical to the source outside the mask
JAW_SWEEP = 0.5  # mouth widths the lower-face mask extends downwards (the jaw drops)
MASK_DILATE = 0.15  # mouth widths the lower-face mask is dilated by


def lower_face_mask(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the lower face: the jaw contour (cheek to cheek through the
    chin) closed through the subnasale, swept down by JAW_SWEEP mouth widths (the chin
    drops when the mouth opens) and dilated by MASK_DILATE mouth widths."""
    import cv2

    from pipeline.face import regions as R

    h, w = shape[:2]
    xy = np.asarray(landmarks, np.float64)[:, :2]
    mouth_w = float(np.linalg.norm(xy[R.MOUTH_CORNERS[0]] - xy[R.MOUTH_CORNERS[1]]))
    poly = xy[list(R.JAW) + [R.SUBNASALE]]
    swept = np.vstack([poly, poly + [0.0, JAW_SWEEP * mouth_w]])
    hull = cv2.convexHull(np.round(swept).astype(np.int32))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    r = max(1, int(round(MASK_DILATE * mouth_w)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask, kernel).astype(bool)


def psnr_outside_mouth(frames_or_video, source_image, landmarks: np.ndarray | None = None) -> float | None:
    """PSNR (dB) of the frames against the source image outside the lower face.

    ``frames_or_video``: a video path or an iterable of RGB frames. ``source_image``: path
    or array. ``landmarks``: FaceMesh points of the source in its pixels (found with
    ``find_face`` when omitted). Frames of another size are compared with the source
    resized to them (a frame at most 1 px larger, from even-size padding, is cropped).
    The PSNR is of the mean squared error over all frames; blinks and head motion lower
    it, as they should. None when there are no frames.
    """
    import cv2

    from pipeline.media.image import load_image

    src = load_image(source_image)
    if landmarks is None:
        from pipeline.face.landmarks import find_face

        landmarks = find_face(src).landmarks
    lm = np.asarray(landmarks, np.float64)[:, :2]
    if isinstance(frames_or_video, (str, bytes)) or hasattr(frames_or_video, "__fspath__"):
        from pipeline.quality.measure import VideoFrames

        frames_or_video = VideoFrames(frames_or_video)  # type: ignore[arg-type]
    total = 0.0
    count = 0
    ref: np.ndarray | None = None
    keep: np.ndarray | None = None
    for frame in frames_or_video:
        frame = np.asarray(frame)[:, :, :3]
        fh, fw = frame.shape[:2]
        sh, sw = src.shape[:2]
        if fh - sh in (0, 1) and fw - sw in (0, 1):
            frame = frame[:sh, :sw]
        if ref is None or ref.shape[:2] != frame.shape[:2]:
            h, w = frame.shape[:2]
            if (h, w) == (sh, sw):
                ref, pts = src, lm
            else:
                ref = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
                pts = lm * [w / sw, h / sh]
            keep = ~lower_face_mask(ref.shape, pts)
            ref = ref.astype(np.float64)
        assert keep is not None
        diff = frame.astype(np.float64)[keep] - ref[keep]
        total += float(np.mean(diff**2))
        count += 1
    if count == 0:
        return None
    mse = total / count
    return PSNR_CAP if mse <= 0 else float(min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse)))


__all__ = [
    "CLOSED_MAX",
    "CLOSED_MIN",
    "OPEN_MARGIN",
    "OPEN_SET",
    "Drift",
    "Offset",
    "Openness",
    "RateResult",
    "av_offset",
    "bilabial_closure",
    "closed_level",
    "drift",
    "expected_openness",
    "expected_per_frame",
    "frame_window",
    "landmark_jitter",
    "lower_face_mask",
    "normalize",
    "open_level",
    "open_vowel_rate",
    "phone_kind",
    "psnr_outside_mouth",
]
