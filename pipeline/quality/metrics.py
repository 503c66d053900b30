"""Lip-sync and stability metrics from a :class:`MouthTrack` and the phoneme timeline.

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
from pipeline.types import Phoneme
from pipeline.phones import BILABIALS, OPEN_VOWELS, PAUSE, canonical, classify

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


# ---------------------------------------------------------------- phoneme files

_SYMBOL_KEYS = ("phoneme", "symbol", "phone", "label", "text", "value")
_START_KEYS = ("start", "begin", "xmin", "t0", "from")
_END_KEYS = ("end", "stop", "xmax", "t1", "to")


def _phone(symbol: str, start: float, end: float) -> Phoneme:
    sym = str(symbol).strip()
    stress = 0
    if len(sym) > 1 and sym[-1] in "012" and sym[:-1].isalpha() and sym[:-1].isupper():  # ARPAbet stress digit
        stress = int(sym[-1])
    return Phoneme(canonical(sym) if sym else PAUSE, float(start), float(end), stress)


def _first(d: dict, keys: Sequence[str]):
    for k in keys:
        if k in d:
            return d[k]
    return None


def _from_json(data, name: str) -> list[Phoneme]:
    from pipeline.errors import UnsupportedMedia

    if isinstance(data, dict):
        if "mouthCues" in data:
            raise UnsupportedMedia(
                f"{name} holds Rhubarb mouth cues (visemes), not phonemes; export phoneme times instead."
            )
        items = _first(data, ("phonemes", "phones", "segments", "items"))
        if items is None:
            raise UnsupportedMedia(f"{name}: expected a list of phonemes or a 'phonemes' key.")
        data = items
    if not isinstance(data, list):
        raise UnsupportedMedia(f"{name}: expected a JSON list of phonemes.")
    out = []
    for i, item in enumerate(data):
        try:
            if isinstance(item, dict):
                sym = _first(item, _SYMBOL_KEYS)
                start = _first(item, _START_KEYS)
                end = _first(item, _END_KEYS)
                if end is None and "duration" in item and start is not None:
                    end = float(start) + float(item["duration"])
                if sym is None or start is None or end is None:
                    raise KeyError("symbol/start/end")
                out.append(_phone(sym, start, end))
            elif isinstance(item, (list, tuple)) and len(item) >= 3:
                if isinstance(item[0], str):
                    out.append(_phone(item[0], item[1], item[2]))
                else:
                    out.append(_phone(item[2], item[0], item[1]))
            else:
                raise ValueError(repr(item)[:40])
        except (KeyError, ValueError, TypeError) as exc:
            raise UnsupportedMedia(f"{name}: phoneme {i} is not understood ({exc}).") from exc
    return out


def _from_textgrid(text: str, name: str) -> list[Phoneme]:
    """Praat TextGrid (long format, as written by forced aligners): the tier named
    phones/phonemes, else the last interval tier. Empty intervals are silence."""
    import re

    from pipeline.errors import UnsupportedMedia

    tiers = re.split(r"\n\s*item\s*\[\d+\]\s*:", text)[1:]
    interval_re = re.compile(
        r'intervals\s*\[\d+\]\s*:\s*xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*"((?:[^"]|"")*)"'
    )
    parsed = []
    for tier in tiers:
        m = re.search(r'name\s*=\s*"([^"]*)"', tier)
        if "IntervalTier" not in tier[:200]:
            continue
        rows = interval_re.findall(tier)
        parsed.append(((m.group(1) if m else "").strip().lower(), rows))
    if not parsed:
        raise UnsupportedMedia(f"{name}: no interval tier found (only long-format TextGrids are read).")
    chosen = next((rows for tier_name, rows in parsed if tier_name in ("phones", "phonemes", "phone")), parsed[-1][1])
    return [_phone(t.replace('""', '"'), a, b) for a, b, t in chosen]


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _from_lines(text: str, name: str) -> list[Phoneme]:
    """Whitespace/tab columns: ``start end symbol`` (Audacity labels), ``symbol start end``,
    or onset-only ``start symbol`` (each phone ends where the next starts; the last lasts
    the median phone length). '#' comments, blank lines and a header line are skipped."""
    from pipeline.errors import UnsupportedMedia

    full: list[Phoneme] = []
    onsets: list[tuple[float, str]] = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tok = line.split()
        if len(tok) >= 2 and _is_float(tok[0]) and _is_float(tok[1]):
            full.append(_phone(tok[2] if len(tok) > 2 else "", tok[0], tok[1]))
        elif len(tok) >= 3 and _is_float(tok[1]) and _is_float(tok[2]):
            full.append(_phone(tok[0], tok[1], tok[2]))
        elif len(tok) == 2 and _is_float(tok[0]):
            onsets.append((float(tok[0]), tok[1]))
        elif not full and not onsets:
            continue  # a header line
        else:
            raise UnsupportedMedia(f"{name} line {no}: expected 'start end symbol', got {line[:40]!r}.")
    if full and onsets:
        raise UnsupportedMedia(f"{name}: mixes 'start end symbol' and 'start symbol' lines.")
    if onsets:
        onsets.sort()
        ends = [b for (b, _) in onsets[1:]]
        lengths = [b - a for (a, _), b in zip(onsets, ends) if b > a]
        ends.append(onsets[-1][0] + (float(np.median(lengths)) if lengths else 0.1))
        full = [_phone(sym, a, e) for (a, sym), e in zip(onsets, ends)]
    return full


def load_phonemes(path) -> list[Phoneme]:
    """Read timed phonemes from a file; symbols become canonical IPA (ARPAbet accepted).

    Formats: JSON (a list of ``{"phoneme"|"symbol": ..., "start": s, "end": s}``, of
    ``[start, end, symbol]``, or an object with a ``"phonemes"`` list), Praat TextGrid
    (long format; tier "phones"), and text columns (see ``_from_lines``). Times in seconds.
    """
    import json
    from pathlib import Path

    from pipeline.errors import UnsupportedMedia

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnsupportedMedia(f"Cannot read the phoneme file {p.name} ({exc}).") from exc
    head = text.lstrip()[:64]
    if p.suffix.lower() == ".json" or head[:1] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnsupportedMedia(f"{p.name} is not valid JSON ({exc}).") from exc
        phones = _from_json(data, p.name)
    elif "ooTextFile" in head or p.suffix.lower() == ".textgrid":
        phones = _from_textgrid(text, p.name)
    else:
        phones = _from_lines(text, p.name)
    phones = [ph for ph in phones if ph.end > ph.start]
    if not phones:
        raise UnsupportedMedia(f"{p.name} contains no timed phonemes.")
    return sorted(phones, key=lambda ph: ph.start)


def save_phonemes(phonemes: Sequence[Phoneme], path) -> None:
    """Write phonemes as JSON that :func:`load_phonemes` reads back."""
    import json
    from pathlib import Path

    rows = [{"phoneme": p.symbol, "start": round(p.start, 6), "end": round(p.end, 6)} for p in phonemes]
    Path(path).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Report:
    """Every lip-sync and stability number for one video; None where not measurable."""

    video: str = ""  # file name (or "" for in-memory frames)
    frames: int = 0  # frames measured
    fps: float = 0.0  # nominal frame rate (1 / median frame duration)
    duration: float = 0.0  # seconds of video
    face_rate: float = 0.0  # share of frames with a face
    phonemes: int = 0  # timed phones given
    closed_level: float | None = None  # gap ratio counted as closed lips
    open_level: float | None = None  # gap ratio counted as a clearly open mouth
    bilabials: int = 0  # /p b m/ checked
    bilabial_closure_rate: float | None = None  # share of them closing within +-1 frame
    open_vowels: int = 0  # open vowels checked
    open_vowel_rate: float | None = None  # share of them clearly open within +-1 frame
    av_offset_ms: float | None = None  # lag of the openness/gap correlation peak; + = video late
    av_offset_corr: float | None = None  # correlation at that peak (0..1; < 0.3 unreliable)
    offset_start_ms: float | None = None  # offset over the first third (clips > 20 s)
    offset_end_ms: float | None = None  # offset over the last third (clips > 20 s)
    drift_ms: float | None = None  # end - start offset; + = video falls behind
    duration_diff_ms: float | None = None  # video minus audio stream duration in the file
    jitter_px: float | None = None  # RMS of stable points about their median, px
    psnr_outside_mouth_db: float | None = None  # vs the source image, lower face masked
    missed_closures: tuple[str, ...] = ()  # bilabials that did not close ("b@1.23s")
    missed_openings: tuple[str, ...] = ()  # open vowels that did not open
    notes: tuple[str, ...] = ()  # warnings about the measurement itself

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes None, tuples become lists)."""
        from dataclasses import asdict

        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
            elif isinstance(v, tuple):
                out[k] = list(v)
        return out

    def format(self) -> str:
        """The report as an aligned text table."""

        def pct(rate: float | None, n: int, what: str) -> tuple[str, str]:
            if rate is None:
                return "n/a", f"no {what} to check"
            return f"{100 * rate:.1f} %", f"{round(rate * n)}/{n} {what}"

        def num(v: float | None, fmt: str, unit: str) -> str:
            return "n/a" if v is None else f"{v:{fmt}} {unit}"

        closed = "" if self.closed_level is None else f"gap <= {self.closed_level:.3f}"
        opened = "" if self.open_level is None else f"gap > {self.open_level:.3f}"
        win = ", +-1 frame"
        corr = "" if self.av_offset_corr is None else f"; peak corr {self.av_offset_corr:.2f}"
        if self.drift_ms is None:
            drift_note = "clips > 20 s only"
        else:
            drift_note = f"offset {self.offset_start_ms:+.1f} ms (first third) -> {self.offset_end_ms:+.1f} ms (last)"
        rows = [
            ("bilabial closure", *pct(self.bilabial_closure_rate, self.bilabials, f"/p b m/ closed ({closed}{win})")),
            ("open vowels", *pct(self.open_vowel_rate, self.open_vowels, f"open vowels open ({opened}{win})")),
            ("AV offset", num(self.av_offset_ms, "+.1f", "ms"), "positive = video late" + corr),
            ("drift", num(self.drift_ms, "+.1f", "ms"), drift_note),
            ("duration diff", num(self.duration_diff_ms, "+.1f", "ms"), "video - audio stream duration"),
            ("landmark jitter", num(self.jitter_px, ".2f", "px"), "RMS of eye corners + nose bridge about median"),
            ("PSNR outside mouth", num(self.psnr_outside_mouth_db, ".2f", "dB"), "vs source image, lower face masked"),
        ]
        head = (
            f"Lip-sync quality: {self.video or '(frames)'} - {self.frames} frames, {self.fps:.2f} fps, "
            f"{self.duration:.2f} s, face in {100 * self.face_rate:.0f}% of frames, {self.phonemes} phonemes"
        )
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [head] + [f"  {a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
        if self.missed_closures:
            lines.append(f"  missed closures: {' '.join(self.missed_closures)}")
        if self.missed_openings:
            lines.append(f"  missed openings: {' '.join(self.missed_openings)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def score(
    track: MouthTrack,
    phonemes: Sequence[Phoneme] | None = None,
    *,
    video: str = "",
    duration_diff_ms: float | None = None,
    psnr: float | None = None,
) -> Report:
    """All metrics of a measured track (phonemes optional: without them only stability)."""
    notes: list[str] = []
    face_rate = track.face_rate
    if track.n_frames and face_rate < 0.9:
        notes.append(f"no face in {100 * (1 - face_rate):.0f}% of frames; those frames are skipped")
    fields: dict = {}
    phones = normalize(phonemes) if phonemes else []
    if phonemes is not None and not phones:
        notes.append("the phoneme list is empty")
    if phones and track.n_frames:
        closed = closed_level(track, phones)
        opened = open_level(closed)
        bil = bilabial_closure(track, phones, closed)
        vow = open_vowel_rate(track, phones, opened)
        off = av_offset(track, phones)
        dr = drift(track, phones)
        fields.update(
            closed_level=closed,
            open_level=opened,
            bilabials=bil.count,
            bilabial_closure_rate=bil.rate,
            missed_closures=bil.misses,
            open_vowels=vow.count,
            open_vowel_rate=vow.rate,
            missed_openings=vow.misses,
        )
        if off is not None:
            fields.update(av_offset_ms=off.ms, av_offset_corr=off.corr)
            if off.at_edge:
                notes.append(f"the offset is at the edge of the +-{MAX_LAG * 1000:.0f} ms search: it may be larger")
            if off.corr < 0.3:
                notes.append(f"weak correlation ({off.corr:.2f}): the offset is unreliable")
        if dr is not None:
            fields.update(offset_start_ms=dr.start_ms, offset_end_ms=dr.end_ms, drift_ms=dr.ms)
        overhang = phones[-1].end - track.end
        if overhang > 0.1:
            notes.append(f"the phonemes run {overhang:.2f} s past the end of the video")
    elif phonemes is None:
        notes.append("no phoneme timing given: lip-sync metrics need it (--phonemes)")
    return Report(
        video=video,
        frames=track.n_frames,
        fps=track.fps,
        duration=float(track.end - track.times[0]) if track.n_frames else 0.0,
        face_rate=face_rate,
        phonemes=len(phones),
        duration_diff_ms=duration_diff_ms,
        jitter_px=landmark_jitter(track),
        psnr_outside_mouth_db=psnr,
        notes=tuple(notes),
        **fields,
    )


def _probe(path) -> dict:
    """``pipeline.export.probe(path)``; also when the ``pipeline/export/probe.py`` submodule,
    once imported, has replaced the package's ``probe`` function attribute."""
    from pipeline import export

    fn = export.probe
    if not callable(fn):
        fn = fn.probe
    return fn(path)


def evaluate(
    video_path, phonemes=None, text: str | None = None, source_image=None, *, progress=None, language: str = "en"
) -> Report:
    """Measure a video file and score it against ``phonemes`` (a list of Phoneme or a
    phoneme file path). With only ``text``, the video's own audio is force-aligned to
    the text (pipeline.load_speech: pocketsphinx or alignment by espeak-ng synthesis, in
    ``language``) to get the phoneme times. ``source_image`` adds the
    PSNR outside the mouth.
    """
    from pathlib import Path

    from pipeline.errors import InvalidOption
    from pipeline.quality.measure import mouth_track

    if phonemes is None and text:
        import pipeline

        speech = pipeline.load_speech(video_path, text=text, timing="auto", language=language)
        if speech.source not in ("align", "synth") or not speech.phonemes:
            raise InvalidOption("Could not align the text to the video's audio; pass --phonemes instead.")
        phonemes = speech.phonemes
    if isinstance(phonemes, (str, Path)):
        phonemes = load_phonemes(phonemes)
    path = Path(video_path)
    track = mouth_track(path, progress=progress)
    info = _probe(path)
    diff = None
    if info.get("video_duration") is not None and info.get("audio_duration") is not None:
        diff = 1000.0 * (float(info["video_duration"]) - float(info["audio_duration"]))
    psnr = psnr_outside_mouth(path, source_image) if source_image is not None else None
    return score(track, phonemes, video=path.name, duration_diff_ms=diff, psnr=psnr)


__all__ = [
    "Report",
    "evaluate",
    "load_phonemes",
    "lower_face_mask",
    "psnr_outside_mouth",
    "save_phonemes",
    "score",
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
    "normalize",
    "open_level",
    "open_vowel_rate",
    "phone_kind",
]
