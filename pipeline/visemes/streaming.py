"""Mouth poses from live audio, frame by frame, with a bounded look-ahead.

The offline acoustic path (:mod:`pipeline.visemes.acoustic`) sees the whole clip: its noise
floor, loudness range and voice activity are percentiles over all of it, and its smoothing
runs forwards and backwards. A microphone gives none of that, so this estimator keeps the
same measurements (foreground loudness after a per-bin background estimate, the share of
energy above 3.5 kHz for fricatives, the low-band centroid for rounded vowels, the same
opening and closure rules) but computes every statistic from the past alone, and lets a
frame look at most :data:`LOOKAHEAD` seconds of audio past its own time:

- a 5 ms hop's features need the 12.5 ms half window after its centre;
- voice activity of a hop also looks :data:`ACTIVITY_AHEAD_S` ahead (so the lips part at a
  word's onset, not after it) and holds 80 ms after speech (as the offline gate does);
- the curve is smoothed causally (two cascaded one-pole filters, critically damped) and
  each frame reads it :data:`ANTICIPATION_S` after the frame's start, which cancels most of
  the filter's delay.

    est = StreamingVisemes(fps=25)
    for block in microphone_blocks_16k:      # any block size
        for pose in est.push(block):          # (MOUTH_CHANNELS,) float32, in frame order
            ...

Frame ``k`` (time ``k / fps``) comes out as soon as audio up to ``k / fps + est.lookahead``
has been pushed, and never depends on audio after that (tests/test_live_mic.py checks both).
Silence and pauses close the lips; vowels open the jaw and lips with their loudness.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pipeline import timing
from pipeline.types import MOUTH_CHANNELS
from pipeline.visemes import passes
from pipeline.visemes.acoustic import BACKGROUND_PERCENTILE, BACKGROUND_S, BLOCK_S, HOP, SR, WIN

LOOKAHEAD = 0.05  # s: the most audio after a frame's time that its pose may depend on
ACTIVITY_AHEAD_S = 0.02  # voice activity looks this far ahead of a hop
ANTICIPATION_S = 0.015  # each frame reads the (causally smoothed) curve this far after its start
SMOOTH_S = 0.008  # time constant of each of the two smoothing poles
HANGOVER_S = 0.08  # speech activity is held this long after the voice stops (as offline)
FLOOR_S = 3.0  # the noise floor is the 10th percentile of this much past loudness
PEAK_S = 8.0  # the speech level is the 97th percentile of this much past loudness
WARMUP_S = 0.15  # the first sound only sets the noise floor and level (nothing to compare it with yet)
ABSOLUTE_FLOOR_DB = -75.0  # the floor never sinks below this (digital silence from a muted mic)

_HOP_S = HOP / SR
_N_FFT = 512
_FREQS = np.fft.rfftfreq(_N_FFT, 1.0 / SR)
_HI = _FREQS >= 3500
_LOW = (_FREQS >= 200) & (_FREQS <= 3000)
_WINDOW = np.hanning(WIN).astype(np.float32)
_CH = passes.CH


def _ceil_hops(seconds: float) -> int:
    return int(np.ceil(seconds / _HOP_S - 1e-9))


class StreamingVisemes:
    """Incremental audio-only mouth poses at ``fps`` (see the module docstring).

    ``push`` takes mono float32 samples at 16 kHz (``SR``) in blocks of any size and
    returns the poses of every frame that became final; ``frames_out`` counts them.
    """

    def __init__(self, fps: float = 25.0, *, mouth_scale: float = 1.0) -> None:
        self.fps = float(timing.fps_fraction(fps))
        self.mouth_scale = float(mouth_scale)
        self.ahead_hops = _ceil_hops(ACTIVITY_AHEAD_S)
        self.hang_hops = _ceil_hops(HANGOVER_S)
        # what one frame needs beyond its own time: the anticipation, the activity
        # look-ahead of the hop read there, and that hop's half window
        self.lookahead = ANTICIPATION_S + (self.ahead_hops + 0.5) * _HOP_S + (WIN // 2) / SR
        assert self.lookahead <= LOOKAHEAD + 1e-9, self.lookahead
        self._pending = np.zeros(WIN // 2, np.float32)  # samples not yet consumed; left pad as offline
        self._pending_start = -(WIN // 2)  # sample index (in the input) of _pending[0]
        self.samples_in = 0
        self.hops = 0  # hops whose features are computed
        self.decided = 0  # hops whose smoothed curve row is final
        self.frames_out = 0
        # background estimate (per-bin percentile of past 100 ms block means)
        self._block_hops = max(1, int(round(BLOCK_S / _HOP_S)))
        self._blocks: deque[np.ndarray] = deque(maxlen=max(1, int(round(BACKGROUND_S / BLOCK_S))))
        self._block_sum = np.zeros(len(_FREQS), np.float64)
        self._block_n = 0
        self._bg: np.ndarray | None = None
        # per-hop history
        self._db: deque[float] = deque(maxlen=_ceil_hops(PEAK_S))
        self._raw: list[tuple[bool, float, float, float]] = []  # (active, level, hi, centroid) per hop, trimmed
        self._raw_start = 0  # hop index of _raw[0]
        self._last_active = -(10**9)  # last hop with raw activity
        self._state = np.zeros((2, passes.N_CH), np.float64)  # the two smoothing poles
        self._alpha = float(np.exp(-_HOP_S / SMOOTH_S))
        self._curve: deque[np.ndarray] = deque(maxlen=64)  # smoothed rows of the latest decided hops
        self._peak_fallback = ABSOLUTE_FLOOR_DB
        self._warmup = _ceil_hops(WARMUP_S)

    # ------------------------------------------------------------------ input

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add 16 kHz mono samples; return the poses of the frames that became final."""
        x = np.asarray(samples, np.float32).reshape(-1)
        if len(x):
            self._pending = np.concatenate([self._pending, x])
            self.samples_in += len(x)
        self._features()
        out: list[np.ndarray] = []
        self._decide(out)
        return out

    def frames_ready(self, n_samples: int) -> int:
        """How many frames are final once ``n_samples`` samples have been pushed."""
        hops = (n_samples - WIN // 2) // HOP + 1 if n_samples >= WIN // 2 else 0
        k = 0
        while self._hop_of(k) + self.ahead_hops < hops:
            k += 1
        return k

    def _hop_of(self, frame: int) -> int:
        """The dense hop a frame reads (its last one)."""
        return int(round((frame / self.fps + ANTICIPATION_S) / _HOP_S))

    # ------------------------------------------------------------------ hop features

    def _features(self) -> None:
        # hop j is centred on input sample j * HOP and needs input up to j * HOP + WIN // 2
        while self.hops * HOP + WIN // 2 <= self.samples_in:
            a = self.hops * HOP - WIN // 2 - self._pending_start
            frame = self._pending[a : a + WIN] * _WINDOW
            spec = np.abs(np.fft.rfft(frame, n=_N_FFT)) ** 2
            self._hop(spec.astype(np.float64))
            self.hops += 1
        keep = self.hops * HOP - WIN // 2 - self._pending_start
        if keep > 0:
            self._pending = self._pending[keep:]
            self._pending_start += keep

    def _hop(self, spec: np.ndarray) -> None:
        bg = self._bg
        fg = spec if bg is None else np.maximum(spec - 2.0 * bg, 0.0) + 1e-3 * bg
        total = fg.sum() + 1e-10
        db = float(10 * np.log10(total / WIN + 1e-10))
        hi = float(fg[_HI].sum() / total)
        lb = fg[_LOW]
        centroid = float((lb * _FREQS[_LOW]).sum() / (lb.sum() + 1e-10))
        if float(10 * np.log10(spec.sum() / WIN + 1e-10)) < ABSOLUTE_FLOOR_DB:
            # digital silence (a muted or starting microphone) says nothing about the room's
            # noise or the voice's level: it stays out of the statistics
            self._raw.append((False, 0.0, hi, centroid))
            return
        # background blocks
        self._block_sum += spec
        self._block_n += 1
        if self._block_n == self._block_hops:
            self._blocks.append(self._block_sum / self._block_n)
            self._block_sum = np.zeros_like(self._block_sum)
            self._block_n = 0
            self._bg = np.percentile(np.stack(self._blocks), BACKGROUND_PERCENTILE, axis=0)
        # loudness range from the past (floor: recent quiet; peak: recent speech)
        self._db.append(db)
        hist = np.fromiter(self._db, np.float64)
        recent = hist[-_ceil_hops(FLOOR_S):]
        floor = max(float(np.percentile(recent, 10)), ABSOLUTE_FLOOR_DB)
        peak = float(np.percentile(hist, 97)) if len(hist) > 20 else max(db, self._peak_fallback)
        self._peak_fallback = max(self._peak_fallback, db)
        span = max(peak - floor, 1e-3)
        level = float(np.clip((db - floor) / span, 0.0, 1.0))
        active = bool(db > floor + max(0.35 * span, 9.0) and peak - floor > 12.0 and len(hist) > self._warmup)
        self._raw.append((active, level, hi, centroid))

    # ------------------------------------------------------------------ curve

    def _decide(self, out: list[np.ndarray]) -> None:
        """Final curve rows for hops whose activity look-ahead has arrived."""
        while self.decided + self.ahead_hops < self.hops:
            d = self.decided
            for j in range(max(d, self._last_active + 1), d + self.ahead_hops + 1):
                if self._raw[j - self._raw_start][0]:
                    self._last_active = j
            active = d - self._last_active <= self.hang_hops or self._last_active > d
            _, level, hi, centroid = self._raw[d - self._raw_start]
            row = self._row(active, level, hi, centroid)
            for k in range(2):  # two cascaded one-pole filters: critically damped
                self._state[k] = self._alpha * self._state[k] + (1 - self._alpha) * row
                row = self._state[k]
            pose = row.astype(np.float32)
            if not active:  # silence: the lips close (a hard constraint, as offline)
                pose[_CH["gap"]] = 0.0
                pose[_CH["jaw"]] = min(pose[_CH["jaw"]], 0.05)
                pose[_CH["teeth"]] = 0.0
                pose[_CH["tongue"]] = 0.0
            self._curve.append(pose)
            self.decided += 1
            self._frames(out)
        drop = self.decided - self._raw_start - 2 * self.ahead_hops - 2
        if drop > 0:
            del self._raw[:drop]
            self._raw_start += drop

    @staticmethod
    def _row(active: bool, level: float, hi: float, centroid: float) -> np.ndarray:
        """The acoustic path's pose rules (pipeline.visemes.acoustic.estimate) for one hop."""
        row = np.zeros(passes.N_CH, np.float64)
        if not active:
            return row
        opening = float(np.clip((level - 0.35) / 0.6, 0.0, 1.0)) ** 0.8
        fric = float(np.clip((hi - 0.25) / 0.4, 0.0, 1.0))
        rounded = float(np.clip((1100.0 - centroid) / 500.0, 0.0, 1.0)) * (opening > 0.2)
        row[_CH["jaw"]] = opening * (1.0 - 0.75 * fric)
        row[_CH["gap"]] = max(row[_CH["jaw"]], 0.25 * fric)
        row[_CH["teeth"]] = 0.7 * fric
        row[_CH["spread"]] = 0.4 * fric
        row[_CH["round"]] = 0.7 * rounded
        return row

    # ------------------------------------------------------------------ frames

    def _frames(self, out: list[np.ndarray]) -> None:
        """Append the frames whose hop is now decided (called after each decided hop, so the
        rows a frame averages are still held)."""
        while True:
            h = self._hop_of(self.frames_out)
            if h >= self.decided:
                return
            first = self.decided - len(self._curve)
            rows = [self._curve[j - first] for j in range(max(first, h - 2), h + 1)]
            pose = np.mean(rows, axis=0).astype(np.float32)
            if pose[_CH["gap"]] <= 1e-3:  # touching lips hold the jaw nearly shut (as offline)
                pose[_CH["jaw"]] = min(pose[_CH["jaw"]], passes.TOUCHING_JAW)
            pose[_CH["jaw"]] *= self.mouth_scale
            pose[_CH["gap"]] *= self.mouth_scale
            out.append(np.clip(pose, 0.0, 1.0))
            self.frames_out += 1


def channel(name: str) -> int:
    """Index of a mouth channel in the poses :meth:`StreamingVisemes.push` returns."""
    return MOUTH_CHANNELS.index(name)
