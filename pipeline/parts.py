"""Per-frame controls for speech that arrives in parts (sentence by sentence, segment by
segment), continuous across the parts.

:func:`pipeline.render.plan` needs the whole speech: its head sway is noise normalised
over the whole clip, its blinks are drawn for the whole duration. A streamed render gets
its speech one part at a time, so :class:`PartPlanner` keeps the state that has to
survive a part boundary:

- the audio so far (one global timeline; parts follow each other without gaps);
- the frame grid: after a part whose audio ends at sample ``S``, frames up to
  ``floor(S / rate * fps)`` are planned; the frames of the last partial frame wait for
  the next part, and :meth:`PartPlanner.finish` plans the rest up to
  ``round(total * fps)``, the file render's frame count (no drift, whatever the parts);
- mouth: each part is planned over a window that starts ``CONTEXT_S`` before its first
  frame (the end of the previous part), so co-articulation and smoothing see the left
  context; the context frames are dropped;
- motion as functions of absolute time: head sway is band-limited noise drawn as an
  endless stream (normalised by its theoretical deviation, not by the clip's), blinks
  and gaze saccades are scheduled one after another as time advances, nods and brow
  raises are bumps on the stressed vowels of every part so far (a bump that starts in
  one part finishes in the next).

A single whole Speech still goes through :func:`pipeline.render.plan` (the file render
does not change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline import timing
from pipeline.errors import PipelineError
from pipeline.motion.blinks import CLOSE_S, HOLD_S, OPEN_S, _shape
from pipeline.motion.head import NOD_DEG, SWAY_DEG, _bump, emphasis
from pipeline.options import RenderOptions
from pipeline.phones import PAUSE
from pipeline.types import MOUTH_CHANNELS, AudioClip, Phoneme, Speech, Tracks

CONTEXT_S = 0.4  # left context of each part's mouth planning (co-articulation, smoothing)
SWAY_CUTOFF_HZ = 0.35  # as pipeline.motion.head
BLINK_S = CLOSE_S + HOLD_S + OPEN_S
TALKING_WINDOW_S = 0.4


class _Noise:
    """Unit-variance noise band-limited to ``cutoff_hz``, as an endless stream of frames."""

    def __init__(self, fps: float, rng: np.random.Generator, cutoff_hz: float) -> None:
        sigma = fps / (2 * np.pi * cutoff_hz)
        self.pad = int(4 * sigma) + 1
        k = np.exp(-0.5 * (np.arange(-self.pad, self.pad + 1) / sigma) ** 2)
        k /= k.sum()
        self.kernel = k / math.sqrt(float(np.sum(k**2)))  # white noise through it has unit variance
        self.rng = rng
        self.white = np.zeros(0)

    def frames(self, a: int, b: int) -> np.ndarray:
        """Values of frames ``[a, b)``."""
        need = b + 2 * self.pad
        if len(self.white) < need:
            more = max(need - len(self.white), 250)
            self.white = np.concatenate([self.white, self.rng.standard_normal(more)])
        return np.convolve(self.white[a : b + 2 * self.pad], self.kernel, mode="valid").astype(np.float32)


class MotionStream:
    """Blinks, head sway, nods, brows, gaze and smile for frames in order."""

    def __init__(self, opts: RenderOptions) -> None:
        self.opts = opts
        self.fps = float(timing.fps_fraction(opts.fps))
        self.sway = {
            name: _Noise(self.fps, np.random.default_rng([opts.seed, 7, j]), SWAY_CUTOFF_HZ)
            for j, name in enumerate(SWAY_DEG)
        }
        self._blink_rng = np.random.default_rng(opts.seed)
        self._next_blink = float(self._blink_rng.uniform(0.6, 2.5))
        self.blinks: list[float] = []
        self._gaze_rng = np.random.default_rng([opts.seed, 11])
        self._gaze_next = float(self._gaze_rng.uniform(0.3, 1.2))
        self.gaze_keys: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)]  # (start, from, to)

    def _schedule_blinks(self, until: float, phonemes: list[Phoneme], final: bool) -> None:
        stressed = [(p.start, p.end) for p in phonemes if p.stress == 1]
        while self._next_blink < until:
            t = self._next_blink
            for _ in range(8):  # nudge later until clear of stressed vowels (as blink_times)
                if not any(a - BLINK_S < t < b for a, b in stressed):
                    break
                t += 0.12
            if not final or t < until - BLINK_S:
                self.blinks.append(t)
            self._next_blink = t + float(self._blink_rng.uniform(2.0, 6.0))

    def _schedule_gaze(self, until: float) -> None:
        while self._gaze_next < until:
            last = self.gaze_keys[-1][2]
            pos = float(np.clip(0.55 * last + self._gaze_rng.normal(0.0, 0.6), -1.0, 1.0))
            self.gaze_keys.append((self._gaze_next, last, pos))
            self._gaze_next += float(self._gaze_rng.uniform(0.6, 2.5))

    def channels(self, a: int, b: int, phonemes: list[Phoneme], final: bool) -> dict[str, np.ndarray]:
        """Motion channels of frames ``[a, b)``; ``phonemes``: every phone so far (absolute times)."""
        o = self.opts
        n = b - a
        t = timing.frame_times(b, o.fps)[a:]
        end = b / self.fps
        out: dict[str, np.ndarray] = {}
        if o.blinks:
            self._schedule_blinks(end, phonemes, final)
            centers = t + 0.5 / self.fps
            track = np.zeros(n, np.float32)
            for start in self.blinks:
                if start - 1.0 < end and start + BLINK_S > t[0]:
                    track = np.maximum(track, _shape(centers - start).astype(np.float32))
            out["blink"] = track
        emph = emphasis(phonemes)
        near = [(p, w) for p, w in emph if p.start + 0.5 > t[0] and p.start - 0.5 < end]
        head = {k: np.zeros(n, np.float32) for k in ("yaw", "pitch", "roll", "brow")}
        if o.head_motion > 0:
            gain = 1.0 + 0.3 * (1.0 - self._talking(a, b, phonemes))
            for name, amp in SWAY_DEG.items():
                head[name] = o.head_motion * amp * self.sway[name].frames(a, b) * gain * 0.6
            for p, w in near:
                head["pitch"] += o.head_motion * NOD_DEG * w * _bump(t, p.start + 0.06, 0.45).astype(np.float32)
        if o.brows > 0:
            last = -10.0
            for p, w in emph:  # the same choice every time: it depends only on the phones before
                if w >= 1.0 and p.start - last >= 1.2:
                    last = p.start
                    if p.start + 0.5 > t[0] and p.start - 0.5 < end:
                        head["brow"] = np.maximum(head["brow"], o.brows * _bump(t, p.start + 0.1, 0.7).astype(np.float32))
        out.update({k: v.astype(np.float32) for k, v in head.items()})
        if o.smile:
            out["smile"] = np.full(n, o.smile, np.float32)
        if o.gaze:
            self._schedule_gaze(end)
            g = np.zeros(n, np.float32)
            for start, p0, p1 in self.gaze_keys[1:]:
                sel = t >= start
                k = np.clip((t - start) / 0.04, 0.0, 1.0)
                g[sel] = (p0 + (p1 - p0) * k[sel]).astype(np.float32)
            out["gaze"] = o.gaze * g
        return out

    def _talking(self, a: int, b: int, phonemes: list[Phoneme]) -> np.ndarray:
        """Smoothed 0/1 "speaking" per frame (louder sway in pauses), as head_tracks."""
        h = max(1, int(TALKING_WINDOW_S * self.fps))
        lo = max(0, a - h)
        t = timing.frame_times(b, self.opts.fps)[lo:]
        talking = np.zeros(len(t), np.float32)
        for p in phonemes:
            if p.symbol != PAUSE and p.end > t[0]:
                talking[(t >= p.start) & (t < p.end)] = 1.0
        k = np.ones(h)
        return np.clip(np.convolve(talking, k / k.sum(), mode="same"), 0, 1)[a - lo :]


@dataclass
class PlannedPart:
    """Tracks of frames ``[first_frame, first_frame + tracks.n_frames)`` and their audio."""

    first_frame: int
    tracks: Tracks
    audio: AudioClip


class PartPlanner:
    """Speech parts in, per-part Tracks out (see the module docstring)."""

    def __init__(self, opts: RenderOptions = RenderOptions()) -> None:
        self.opts = opts
        self.fps = float(timing.fps_fraction(opts.fps))
        self.motion = MotionStream(opts)
        self.rate = 0
        self._audio = np.zeros(0, np.float32)
        self.samples = 0  # audio samples so far
        self.phonemes: list[Phoneme] = []  # absolute times; None parts add nothing
        self.timed = True  # every part so far had phonemes
        self.frames = 0  # frames planned so far
        self.parts = 0
        self.source = ""
        self.language = "en"
        self.finished = False

    @property
    def audio(self) -> AudioClip:
        return AudioClip(self._audio[: self.samples], self.rate or 1)

    @property
    def duration(self) -> float:
        return self.samples / float(self.rate) if self.rate else 0.0

    def sample_at(self, frame: int) -> int:
        return min(self.samples, int(round(frame / self.fps * self.rate)))

    def add(self, part: Speech) -> PlannedPart:
        """Append ``part`` (times from its own start) and plan the frames it completes."""
        if self.finished:
            raise PipelineError("This speech stream is finished; no more parts can be added.")
        audio = part.audio
        if not self.rate:
            self.rate = audio.rate
            self.source, self.language = part.source, part.language
        elif audio.rate != self.rate:
            raise PipelineError(f"Speech parts at {audio.rate} Hz after {self.rate} Hz: one stream has one rate.")
        t0 = self.samples / self.rate
        n = len(audio.samples)
        if self.samples + n > len(self._audio):
            grown = np.zeros(max(self.samples + n, 2 * len(self._audio)), np.float32)
            grown[: self.samples] = self._audio[: self.samples]
            self._audio = grown
        self._audio[self.samples : self.samples + n] = audio.samples
        self.samples += n
        if part.phonemes is None:
            self.timed = False
        else:
            self.phonemes.extend(
                Phoneme(p.symbol, p.start + t0, p.end + t0, p.stress) for p in part.phonemes if p.end > p.start
            )
        self.parts += 1
        upto = int(math.floor(self.samples / self.rate * self.fps + 1e-9))
        return self._plan(upto, final=False)

    def finish(self) -> PlannedPart:
        """The frames that are left: the total becomes ``round(duration * fps)``."""
        self.finished = True
        return self._plan(max(self.frames, timing.frame_count(self.duration, self.opts.fps)), final=True)

    def _plan(self, upto: int, final: bool) -> PlannedPart:
        a, b = self.frames, max(self.frames, upto)
        n = b - a
        tracks = Tracks(fps=self.opts.fps, n_frames=n)
        clip = AudioClip(self._audio[self.sample_at(a) : self.sample_at(b) if not final else self.samples], self.rate)
        if n:
            self._mouth(tracks, a, b)
            for name, values in self.motion.channels(a, b, self.phonemes, final).items():
                tracks.set(name, values)
        self.frames = b
        return PlannedPart(a, tracks, clip)

    def _mouth(self, tracks: Tracks, a: int, b: int) -> None:
        from pipeline.visemes import build_mouth_tracks

        c = min(a, int(round(CONTEXT_S * self.fps)))  # context frames before the first one
        w0 = (a - c) / self.fps
        s0 = self.sample_at(a - c)
        phones: tuple[Phoneme, ...] | None = None
        if self.timed:
            kept = [p for p in self.phonemes if p.end > w0 + 1e-6]
            phones = tuple(Phoneme(p.symbol, max(0.0, p.start - w0), p.end - w0, p.stress) for p in kept)
            if phones and phones[0].start > 1e-6:
                phones = (Phoneme(PAUSE, 0.0, phones[0].start),) + phones
        window = Speech(AudioClip(self._audio[s0 : self.samples], self.rate), phones, source=self.source,
                        language=self.language)
        mouth = build_mouth_tracks(window, self.opts.fps, self.opts.mouth_scale)
        want = c + (b - a)
        for name in MOUTH_CHANNELS:
            values = mouth.get(name)
            if len(values) < want:  # the window's own rounding: hold the last value
                values = np.concatenate([values, np.full(want - len(values), values[-1] if len(values) else 0.0)])
            tracks.set(name, values[c:want])

    def speech(self) -> Speech:
        """Everything so far as one Speech (absolute times)."""
        return Speech(self.audio, tuple(self.phonemes) if self.timed else None, source=self.source,
                      language=self.language)
