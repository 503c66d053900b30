"""The viseme passes. Each is a pure function with its own tests.

Dense curves are sampled at ``RATE`` Hz (5 ms) before frame sampling, so the result
does not depend on the output frame rate except through the final ``sample`` pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from pipeline import timing
from pipeline.types import MOUTH_CHANNELS, Phoneme
from pipeline.phones import classify

RATE = 200.0  # Hz of the dense internal curves
N_CH = len(MOUTH_CHANNELS)
CH = {c: i for i, c in enumerate(MOUTH_CHANNELS)}


@dataclass(frozen=True)
class Key:
    """One phone's mouth target over its span."""

    start: float
    end: float
    symbol: str
    target: np.ndarray  # (N_CH,) float32
    dominance: float
    kind: str
    stress: int = 0

    @property
    def center(self) -> float:
        return 0.5 * (self.start + self.end)


@dataclass(frozen=True)
class Closure:
    """An interval in which the lips must be fully closed (bilabials, silence)."""

    start: float
    end: float


# --- pass 1: phonemes -> targets -------------------------------------------------

def targets(phonemes: Sequence[Phoneme]) -> list[Key]:
    """One key per phone with its mouth target; stressed vowels open a little more."""
    keys: list[Key] = []
    for ph in phonemes:
        if ph.end <= ph.start:
            continue
        cls = classify(ph.symbol)
        tgt = cls.pose.as_array().copy()
        if cls.kind == "vowel" and ph.stress == 1:
            tgt[CH["jaw"]] = min(1.0, tgt[CH["jaw"]] * 1.12)
            tgt[CH["gap"]] = min(1.0, tgt[CH["gap"]] * 1.1)
        keys.append(Key(ph.start, ph.end, ph.symbol, tgt, cls.dominance, cls.kind, ph.stress))
    return keys


def hedge_vowels(keys: Sequence[Key], share: float) -> list[Key]:
    """Vowels whose identity is a guess (phones recognised without a transcript) open at
    least ``share`` of the way to the neutral vowel /ə/: the recogniser often names a
    reduced vowel /ɪ/ or /ʊ/ where a schwa or /ʌ/ was said, and a mouth that stays nearly
    shut through a vowel is the worse error. Wider vowels keep their own opening."""
    ref = classify("ə").pose.as_array()
    out: list[Key] = []
    for k in keys:
        if k.kind == "vowel" and share > 0:
            tgt = k.target.copy()
            for ch in ("jaw", "gap"):
                i = CH[ch]
                tgt[i] = max(tgt[i], tgt[i] + share * (ref[i] - tgt[i]))
            k = replace(k, target=tgt)
        out.append(k)
    return out


# --- pass 2: pauses ---------------------------------------------------------------

SHORT_PAUSE = 0.12  # s; word gaps shorter than this do not close the mouth


def pauses(keys: Sequence[Key]) -> list[Key]:
    """Short pauses between words lose their dominance so speech flows through them;
    long pauses keep a closed, relaxed mouth."""
    merged: list[Key] = []
    for k in keys:  # adjacent pauses (word gap + punctuation + sentence gap) are one pause
        if merged and k.kind == "pause" and merged[-1].kind == "pause" and k.start - merged[-1].end < 1e-3:
            merged[-1] = replace(merged[-1], end=k.end)
        else:
            merged.append(k)
    out: list[Key] = []
    for i, k in enumerate(merged):
        edge = i == 0 or i == len(merged) - 1
        if k.kind == "pause" and (k.end - k.start) < SHORT_PAUSE and not edge:
            out.append(replace(k, dominance=0.05, kind="weak"))
        else:
            out.append(k)
    return out


# --- pass 3: co-articulation -------------------------------------------------------

ANTICIPATION = 0.05  # s; lips start closing for /p b m/ this much before the phone
DECAY = 0.045  # s; time constant of a phone's influence outside its span
TOUCHING_JAW = 0.08  # most jaw opening on a frame whose lips touch (the engine seals up to ~0.12)
INFLUENCE = 20.0  # time constants after which a phone's influence (< e^-20) is left out


def speed_factor(keys: Sequence[Key]) -> float:
    """>1 for fast speech: shortens influence so targets are not averaged away."""
    spoken = [k.end - k.start for k in keys if k.kind != "pause"]
    if not spoken:
        return 1.0
    mean = float(np.median(spoken))
    return float(np.clip(0.075 / max(mean, 1e-3), 0.7, 1.8))


def coarticulate(keys: Sequence[Key], duration: float, rate: float = RATE) -> np.ndarray:
    """Dominance blending (Cohen-Massaro style): each phone pulls the mouth towards its
    target with a weight that is flat over its span and decays exponentially outside.
    Returns a dense (n, N_CH) curve at ``rate`` Hz."""
    n = max(1, int(np.ceil(duration * rate)) + 1)
    t = np.arange(n) / rate
    if not keys:
        return np.zeros((n, N_CH), np.float32)
    tau = DECAY / speed_factor(keys)
    num = np.zeros((n, N_CH), np.float64)
    den = np.zeros(n, np.float64)
    for k in keys:
        # influence is flat over the phone's span and decays outside; bilabials reach
        # further ahead (anticipatory lip rounding/closing) without owning the vowel before
        before = tau * (1.0 + ANTICIPATION / DECAY if k.kind == "bilabial" else 1.0)
        # beyond INFLUENCE time constants a weight is below e^-20 of the phone's own: skipped
        a = max(0, int(np.floor((k.start - INFLUENCE * before) * rate)))
        b = min(n, int(np.ceil((k.end + INFLUENCE * tau) * rate)) + 1)
        if b <= a:
            continue
        tt = t[a:b]
        dist_before = np.maximum(0.0, k.start - tt) / before
        dist_after = np.maximum(0.0, tt - k.end) / tau
        w = k.dominance * np.exp(-(dist_before + dist_after))
        num[a:b] += w[:, None] * k.target[None, :]
        den[a:b] += w
    curve = num / np.maximum(den, 1e-9)[:, None]
    # before the first and after the last phone the mouth rests closed
    first, last = keys[0].start, keys[-1].end
    rest = (t < first - 0.1) | (t > last + 0.1)
    curve[rest] = 0.0
    return curve.astype(np.float32)


# --- pass 4: smoothing -------------------------------------------------------------

_BLOCK = 32  # samples per block of the one-pole filter (a^-BLOCK stays far from overflow)


def _one_pole(x: np.ndarray, a: float) -> np.ndarray:
    """y[i] = a * y[i-1] + (1 - a) * x[i] along axis 0, starting from y[-1] = x[0].

    Exact, vectorised within blocks of _BLOCK samples: inside a block that starts from
    state s, y[j] = a^(j+1) s + (1 - a) a^j sum_{k<=j} a^-k x[k]; blocks run in order."""
    n = len(x)
    y = np.empty_like(x)
    j = np.arange(_BLOCK, dtype=np.float64)
    up = (a ** j)[:, None]  # a^j
    down = (a ** -j)[:, None]  # a^-j
    state = x[0].astype(np.float64)
    for s0 in range(0, n, _BLOCK):
        blk = x[s0 : s0 + _BLOCK]
        m = len(blk)
        acc = np.cumsum(blk * down[:m], axis=0)
        y[s0 : s0 + m] = a * up[:m] * state + (1 - a) * up[:m] * acc
        state = y[s0 + m - 1]
    return y


def smooth(curve: np.ndarray, rate: float = RATE, time_constant: float = 0.018) -> np.ndarray:
    """Zero-phase critically damped smoothing (second-order, run forward and backward)."""
    if len(curve) < 3 or time_constant <= 0:
        return curve.copy()
    a = float(np.exp(-1.0 / (time_constant * rate)))

    def run(x: np.ndarray) -> np.ndarray:
        y = x.astype(np.float64)
        for _ in range(2):  # two cascaded first-order poles = critically damped
            y = _one_pole(y, a)
        return y

    fwd = run(curve)
    return run(fwd[::-1])[::-1].astype(np.float32)


def closures(keys: Sequence[Key], min_len: float = 0.0, settle: float = 0.04) -> list[Closure]:
    """Intervals where the lips must touch: bilabial phones and long pauses, which close
    ``settle`` seconds after the speech before them ends."""
    out: list[Closure] = []
    for i, k in enumerate(keys):
        if k.kind == "bilabial":
            dur = k.end - k.start
            # the lips meet at the start of the phone and part for the release
            out.append(Closure(k.start, k.end - 0.25 * dur))
        elif k.kind == "pause" and ((k.end - k.start) >= max(min_len, SHORT_PAUSE) or i in (0, len(keys) - 1)):
            # (before the first word and after the last the lips rest, however short the pause)
            # leave room to close after speech and to open before it, except at the ends
            a = k.start if i == 0 else k.start + settle
            b = k.end + 1.0 if i == len(keys) - 1 else k.end - 0.04
            out.append(Closure(a, b))
    return [c for c in out if c.end > c.start]


def apply_closures(curve: np.ndarray, cl: Sequence[Closure], rate: float = RATE) -> np.ndarray:
    """Force the lip gap and jaw to zero inside each closure (a hard constraint that
    survives smoothing), keeping the press channel."""
    out = curve.copy()
    n = len(out)
    for c in cl:
        a, b = int(np.floor(c.start * rate)), int(np.ceil(c.end * rate))
        a, b = max(0, a), min(n, b + 1)
        if b > a:
            out[a:b, CH["gap"]] = 0.0
            out[a:b, CH["jaw"]] = np.minimum(out[a:b, CH["jaw"]], 0.05)
            out[a:b, CH["teeth"]] = 0.0
            out[a:b, CH["tongue"]] = 0.0
    return out


# --- pass 5: frame sampling ----------------------------------------------------------

@dataclass(frozen=True)
class Peak:
    """A vowel whose opening must show on at least one frame."""

    start: float
    end: float
    jaw: float
    gap: float


def peaks(keys: Sequence[Key], share: float = 0.85) -> list[Peak]:
    """Vowels and their (slightly reduced) opening targets."""
    return [
        Peak(k.start, k.end, share * float(k.target[CH["jaw"]]), share * float(k.target[CH["gap"]]))
        for k in keys
        if k.kind == "vowel"
    ]


def _frames_for(start: float, end: float, starts: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Frames whose centre lies in [start, end); else the one frame overlapping it most."""
    hit = (centers >= start) & (centers < end)
    if not hit.any():
        overlap = np.minimum(starts[1:], end) - np.maximum(starts[:-1], start)
        j = int(np.argmax(overlap))
        if overlap[j] > 0:
            hit[j] = True
    return hit


def _borrow_frame(
    center: float, span: np.ndarray, closed: np.ndarray, owners: list[np.ndarray], centers: np.ndarray
) -> np.ndarray:
    """The frame nearest ``center`` among ``span`` (or its neighbours) that every closure
    holding it can give up and still keep a closed frame of its own; it is opened (removed
    from ``closed`` and its owners). Empty when no closure can spare one."""
    idx = np.flatnonzero(span)
    if len(idx):
        idx = np.unique(np.clip(np.concatenate([idx, idx - 1, idx + 1]), 0, len(closed) - 1))
    for j in idx[np.argsort(np.abs(centers[idx] - center))]:
        holders = [m for m in owners if m[j]]
        if all(m.sum() > 1 for m in holders):
            for m in holders:
                m[j] = False
            closed[j] = False
            return np.array([j])
    return np.zeros(0, int)


def sample(
    curve: np.ndarray,
    fps: float,
    n_frames: int,
    cl: Sequence[Closure] = (),
    pk: Sequence[Peak] = (),
    rate: float = RATE,
) -> np.ndarray:
    """Per-frame values: the mean of the dense curve over each frame's display interval
    [i/fps, (i+1)/fps). A frame is closed when a closure covers its centre; a closure
    that covers no frame centre closes the frame it overlaps most, so even a 20 ms /p/
    gets one closed frame at any frame rate."""
    t_dense = np.arange(len(curve)) / rate
    starts = timing.frame_times(n_frames + 1, fps)
    c = np.cumsum(np.vstack([np.zeros((1, curve.shape[1])), curve]), axis=0)
    ia = np.clip(np.searchsorted(t_dense, starts[:-1]), 0, len(curve) - 1)
    ib = np.clip(np.searchsorted(t_dense, starts[1:]), 1, len(curve))
    ib = np.maximum(ib, ia + 1)
    frames = ((c[ib] - c[ia]) / (ib - ia)[:, None]).astype(np.float32)
    centers = 0.5 * (starts[:-1] + starts[1:])
    owners = [_frames_for(cz.start, cz.end, starts, centers) for cz in cl]
    closed = np.zeros(n_frames, bool)
    for mask in owners:
        closed |= mask
    # a short vowel squeezed between closures still opens the mouth on one frame
    for p in pk:
        span = _frames_for(p.start, p.end, starts, centers)
        hit = np.flatnonzero(span & ~closed)
        if not len(hit):  # every frame it touches is some closure's: borrow one that can spare it
            hit = _borrow_frame(0.5 * (p.start + p.end), span, closed, owners, centers)
        for ch, want in ((CH["jaw"], p.jaw), (CH["gap"], p.gap)):
            have = float(frames[hit, ch].max()) if len(hit) else want
            if have < want:  # scale the vowel's frames up, keeping their shape
                frames[hit, ch] = np.maximum(frames[hit, ch] * (want / max(have, 0.05)), 0.0)
    frames[closed, CH["gap"]] = 0.0
    frames[closed, CH["jaw"]] = np.minimum(frames[closed, CH["jaw"]], 0.05)
    frames[closed, CH["teeth"]] = 0.0
    frames[closed, CH["tongue"]] = 0.0
    # lips that touch hold the jaw nearly shut, whatever raised it (e.g. a loudness-driven
    # opening over a recognised pause): a touching frame never asks for a wide jaw
    touching = frames[:, CH["gap"]] <= 1e-3
    frames[touching, CH["jaw"]] = np.minimum(frames[touching, CH["jaw"]], TOUCHING_JAW)
    return np.clip(frames, 0.0, 1.0)
