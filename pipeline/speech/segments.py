"""Speech segments of a recording: where to cut it so each piece can be timed alone.

An energy voice-activity detector on 10 ms frames finds the pauses; segments are the
stretches of speech between pauses of at least ``MIN_PAUSE_S``, merged until they are at
least ``MIN_SEGMENT_S`` long and split (at the quietest short gap inside, never through a
word if a gap exists) when longer than ``MAX_SEGMENT_S``. Each segment keeps a little of
the silence around it (``MARGIN_S``) so a recogniser starts and ends in silence; what lies
between two segments is silence and becomes a pause.

The only pass over the whole recording is the frame energy (a few milliseconds per
minute of audio); everything that analyses speech runs per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.types import AudioClip

FRAME_S = 0.01  # energy frame hop
MIN_PAUSE_S = 0.2  # silence at least this long separates two segments
MIN_SEGMENT_S = 1.5  # shorter speech runs are merged with the next one
MAX_SEGMENT_S = 8.0  # longer runs are split at their quietest gap
MIN_GAP_S = 0.06  # shortest quiet run a long segment may be split in (word gaps, closures)
MARGIN_S = 0.2  # silence kept on each side of a segment (at most half the pause)
SILENCE_BELOW_PEAK_DB = 45.0  # frames this far below the loud speech level are silent...
SILENCE_ABOVE_FLOOR_DB = 10.0  # ...or this close to the noise floor, whichever is higher


@dataclass(frozen=True)
class Span:
    """A segment of the recording, seconds. ``speech_start``/``speech_end`` bound the
    frames that are not silent; ``start``/``end`` add the margins."""

    start: float
    end: float
    speech_start: float
    speech_end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def _hop(clip: AudioClip, frame_s: float = FRAME_S) -> int:
    """Samples per energy frame (220 at 22.05 kHz: a frame is 9.98 ms there, not 10)."""
    return max(1, int(round(frame_s * clip.rate)))


def frame_db(clip: AudioClip, frame_s: float = FRAME_S) -> np.ndarray:
    """Energy in dBFS of each ``frame_s`` frame (a 2-frame window, so short clicks between
    frames are not lost); frame k starts at k * _hop(clip, frame_s) samples."""
    hop = _hop(clip, frame_s)
    x = np.asarray(clip.samples, np.float32)
    n = int(np.ceil(len(x) / hop))
    if n == 0:
        return np.zeros(0, np.float32)
    padded = np.zeros(n * hop, np.float32)
    padded[: len(x)] = x
    power = np.einsum("ij,ij->i", padded.reshape(n, hop), padded.reshape(n, hop)) / hop
    win = np.maximum(power, np.concatenate([power[1:], power[-1:]]))
    return (10.0 * np.log10(win + 1e-10)).astype(np.float32)


def silence_mask(db: np.ndarray) -> np.ndarray:
    """True for frames that are silent: well below the speech level and near the floor."""
    if len(db) == 0:
        return np.zeros(0, bool)
    floor = float(np.percentile(db, 5))
    peak = float(np.percentile(db, 98))
    threshold = max(floor + SILENCE_ABOVE_FLOOR_DB, peak - SILENCE_BELOW_PEAK_DB)
    return db < threshold


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def _split_long(a: int, b: int, silent: np.ndarray, db: np.ndarray, max_frames: int, min_gap: int) -> list[tuple[int, int]]:
    """Split the speech run [a, b) into pieces of at most ``max_frames``, each cut in the
    middle of the quiet gap (>= ``min_gap`` frames) nearest the middle of the run, or at
    the quietest 50 ms when there is no such gap."""
    if b - a <= max_frames:
        return [(a, b)]
    lo, hi = a + (b - a) // 4, b - (b - a) // 4  # cut somewhere in the middle half
    gaps = [(s, e) for s, e in _runs(silent[a:b]) if e - s >= min_gap]
    gaps = [(a + s, a + e) for s, e in gaps if lo <= a + (s + e) // 2 <= hi]
    mid = (a + b) // 2
    if gaps:
        s, e = min(gaps, key=lambda g: (-(g[1] - g[0]) // 3, abs((g[0] + g[1]) // 2 - mid)))
        left, right = (a, s), (e, b)
    else:
        k = 5
        smooth = np.convolve(db[lo:hi], np.ones(k) / k, mode="same")
        cut = lo + int(np.argmin(smooth))
        left, right = (a, cut), (cut, b)
    return _split_long(*left, silent, db, max_frames, min_gap) + _split_long(*right, silent, db, max_frames, min_gap)


def split(
    clip: AudioClip,
    *,
    min_pause: float = MIN_PAUSE_S,
    min_segment: float = MIN_SEGMENT_S,
    max_segment: float = MAX_SEGMENT_S,
    margin: float = MARGIN_S,
) -> list[Span]:
    """The speech segments of ``clip`` in order (empty when it is all silence)."""
    db = frame_db(clip)
    silent = silence_mask(db)
    n = len(db)
    f = _hop(clip) / clip.rate  # the frames' true length in seconds
    # speech runs separated by pauses of at least min_pause
    pause_frames = max(1, int(round(min_pause / f)))
    speech: list[list[int]] = []
    for s, e in _runs(~silent):
        if speech and s - speech[-1][1] < pause_frames:
            speech[-1][1] = e
        else:
            speech.append([s, e])
    if not speech:
        return []
    max_frames = max(2, int(round(max_segment / f)))
    min_frames = int(round(min_segment / f))
    # merge short runs with the next while the result stays below the maximum
    merged: list[list[int]] = []
    for s, e in speech:
        if merged and merged[-1][1] - merged[-1][0] < min_frames and e - merged[-1][0] <= max_frames:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    if len(merged) > 1 and merged[-1][1] - merged[-1][0] < min_frames and merged[-1][1] - merged[-2][0] <= max_frames:
        last = merged.pop()
        merged[-1][1] = last[1]
    pieces: list[tuple[int, int]] = []
    for s, e in merged:
        pieces += _split_long(s, e, silent, db, max_frames, max(1, int(round(MIN_GAP_S / f))))
    spans: list[Span] = []
    dur = clip.duration
    for i, (s, e) in enumerate(pieces):
        before = s - pieces[i - 1][1] if i else s
        after = pieces[i + 1][0] - e if i + 1 < len(pieces) else n - e
        a = max(0.0, (s - min(margin / f, before / 2 if i else before)) * f)
        b = min(dur, (e + min(margin / f, after / 2 if i + 1 < len(pieces) else after)) * f)
        spans.append(Span(a, b, s * f, min(dur, e * f)))
    return spans
