"""Duration fitting: which clip frame each output frame shows.

- Speech as long as the clip or shorter: a contiguous run of the clip, starting where the
  run *ends* calmest (the head slowest over its last frames), so the video stops at a calm
  point rather than mid-gesture; earlier starts are preferred when the ends are alike.
- Speech longer than the clip: the clip plays forward, then backward, then forward
  (ping-pong), turning at its calmest frames near either end. Every output frame is a
  neighbour of the one before, so nothing jumps; the turns fall where the head is nearly
  still, so the reversal does not show either.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# stable landmarks (eye corners, nose, forehead, cheekbones): head motion without the mouth
STABLE = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 2, 98, 327, 10, 151, 9, 234, 454, 93, 323, 117, 346)


def head_speed(landmarks: np.ndarray, face_width: float) -> np.ndarray:
    """Per-frame speed of the stable landmarks in face widths per frame (smoothed a little)."""
    pts = np.asarray(landmarks, np.float64)[:, list(STABLE), :2]
    if len(pts) < 2:
        return np.zeros(len(pts))
    v = np.linalg.norm(np.diff(pts, axis=0), axis=2).mean(1) / max(face_width, 1.0)
    v = np.concatenate([[v[0]], 0.5 * (v[1:] + v[:-1]), [v[-1]]])
    k = np.ones(5) / 5.0
    return np.convolve(np.pad(v, 2, mode="edge"), k, mode="valid")


def fit_frames(n_out: int, n_clip: int, speed: np.ndarray, fps: float) -> tuple[np.ndarray, str]:
    """Clip frame index for each of ``n_out`` output frames, and how the clip was fitted
    ("whole", "cut at 3.2 s", "ping-pong 0.4–9.6 s")."""
    if n_clip <= 1:
        return np.zeros(n_out, np.int64), "still"
    speed = np.asarray(speed, np.float64)
    if n_out <= n_clip:
        if n_out == n_clip:
            return np.arange(n_out), "whole"
        tail = max(2, int(round(0.3 * fps)))
        starts = np.arange(n_clip - n_out + 1)
        csum = np.concatenate([[0.0], np.cumsum(speed)])
        ends = starts + n_out
        end_energy = (csum[ends] - csum[np.maximum(ends - tail, 0)]) / tail
        cost = end_energy + 0.15 * float(np.median(speed) + 1e-9) * starts / max(1, n_clip - n_out)
        s = int(np.argmin(cost))
        return np.arange(s, s + n_out), f"{s / fps:.2f}–{(s + n_out) / fps:.2f} s of the clip, cut at a calm point"
    a, b = turning_points(n_clip, speed)
    order, _ = continue_frames(n_out, 0, 1, a, b)
    return order, f"ping-pong between {a / fps:.2f} s and {b / fps:.2f} s of the clip"


def turning_points(n_clip: int, speed: np.ndarray) -> tuple[int, int]:
    """Where a ping-pong turns: the calmest frames of the clip's first and last quarters."""
    if n_clip < 4:
        return 0, max(0, n_clip - 1)
    a_hi = max(1, int(0.25 * n_clip))
    b_lo = min(n_clip - 1, max(a_hi + 2, int(0.75 * n_clip)))
    a = int(np.argmin(speed[:a_hi]))
    b = b_lo + int(np.argmin(speed[b_lo:n_clip]))
    return (a, b) if b - a >= 2 else (0, n_clip - 1)


def continue_frames(n: int, start: int, step: int, a: int, b: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``n`` frames of a ping-pong from frame ``start`` moving by ``step`` (+-1), turning at
    ``b`` going forward and at ``a`` going back (a start outside [a, b] walks into it first);
    also the (frame, step) that would come next, so a later call continues seamlessly."""
    out = np.empty(n, np.int64)
    i = int(start)
    if b <= a:
        out[:] = max(0, a)
        return out, (max(0, a), 1)
    for k in range(n):
        out[k] = i
        nxt = i + step
        if (step > 0 and nxt > b) or (step < 0 and nxt < a):
            step = -step
            nxt = i + step
        i = nxt
    return out, (i, step)


class FrameCursor:
    """Which clip frames the next output frames show, across the renders of one session:
    the whole speech fitted on the first call (:func:`fit_frames`), later calls (a streamed
    speech's parts) continuing where the last one stopped (:func:`continue_frames`)."""

    def __init__(self, n_clip: int, speed: np.ndarray, fps: float) -> None:
        self.n_clip, self.speed, self.fps = n_clip, speed, fps
        self.at: tuple[int, int] | None = None  # (next clip frame, step) after the last call
        self.fitted = ""  # how the first call fitted the clip (for logs and tests)

    def order(self, n: int) -> np.ndarray:
        """Clip frame indices for the next ``n`` output frames."""
        a, b = turning_points(self.n_clip, self.speed)
        if self.at is None:
            order, self.fitted = fit_frames(n, self.n_clip, self.speed, self.fps)
            log.info("clip fitted: %s", self.fitted)
        else:
            order, _ = continue_frames(n, *self.at, a, b)
        if n:
            last = int(order[-1])
            step = int(np.sign(order[-1] - order[-2])) if n > 1 and order[-1] != order[-2] else 1
            _, self.at = continue_frames(1, last, step, a, b)
        return order
