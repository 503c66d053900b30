"""Smoothing and bridging of a face track: a One Euro filter over every landmark, run forwards
and backwards (no lag), and linear bridging of the frames where the face was lost.

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass whose cut-off rises
with speed: a still head keeps still (sub-pixel detector noise removed), a turning head
follows without lag. Positions are filtered in face widths so one setting suits every
resolution; the backward pass cancels the forward pass's phase lag, which a prepared clip
can afford (the whole track is known).
"""

from __future__ import annotations

import math

import numpy as np

MIN_CUTOFF = 2.0  # Hz: cut-off of a still landmark
BETA = 8.0  # cut-off rise per (face width / s) of speed
D_CUTOFF = 1.0  # Hz: cut-off of the speed estimate


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau * rate)


def one_euro(x: np.ndarray, rate: float, scale: float = 1.0, min_cutoff: float = MIN_CUTOFF,
             beta: float = BETA, d_cutoff: float = D_CUTOFF, times: np.ndarray | None = None) -> np.ndarray:
    """Causal One Euro filter along axis 0 of ``x`` (frames first, any trailing shape), sampled
    at ``rate`` Hz, or at ``times`` (seconds, non-decreasing: a sample at the time of the one
    before is the same picture again and keeps its value); ``scale`` turns values into the
    units ``beta`` is given in."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    prev = x[0].copy()
    dprev = np.zeros_like(prev)
    out[0] = prev
    for i in range(1, len(x)):
        r = rate
        if times is not None:
            dt = abs(float(times[i] - times[i - 1]))
            if dt < 1e-6:
                out[i] = prev
                continue
            r = 1.0 / dt
        dx = (x[i] - prev) * r
        dprev = dprev + _alpha(d_cutoff, r) * (dx - dprev)
        cutoff = min_cutoff + beta * np.abs(dprev) / scale
        prev = prev + _alpha(cutoff, r) * (x[i] - prev)
        out[i] = prev
    return out


def smooth_track(landmarks: np.ndarray, rate: float, face_width: float, times: np.ndarray | None = None,
                 **kw: float) -> np.ndarray:
    """``landmarks`` (n, points, dims) smoothed by a forward then a backward One Euro pass;
    ``times``: when each frame's picture was taken (the source's timestamps of a re-timed
    clip), so the filter sees the motion on its real clock, not the jerks of re-timing."""
    fwd = one_euro(landmarks, rate, face_width, times=times, **kw)
    back = None if times is None else np.asarray(times)[::-1]
    return one_euro(fwd[::-1], rate, face_width, times=back, **kw)[::-1].astype(np.float32)


def bridge(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Landmarks of the frames where ``found`` is false, interpolated linearly between the
    nearest found frames (held before the first and after the last)."""
    found = np.asarray(found, bool)
    out = np.asarray(landmarks, np.float32).copy()
    if found.all() or not found.any():
        return out
    idx = np.flatnonzero(found)
    t = np.arange(len(found))
    flat = out.reshape(len(found), -1)
    for j in range(flat.shape[1]):
        flat[~found, j] = np.interp(t[~found], idx, flat[idx, j])
    return out


def spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of true values in ``mask`` as [start, end) index pairs."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))
