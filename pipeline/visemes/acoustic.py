"""Mouth motion from the sound alone, for audio whose phonemes are unknown.

Works for any language and never fails: loudness drives the jaw, the share of
high-frequency energy marks fricatives (teeth, small opening), a low spectral
centroid marks rounded vowels, and short dips in loudness inside speech (the silent
closure before a plosive) and non-speech stretches close the lips. A simple
voice-activity gate keeps background noise from moving the mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.types import AudioClip, Phoneme
from pipeline.visemes import passes
from pipeline.phones import PAUSE

SR = 16000
HOP = int(SR / passes.RATE)  # 80 samples = 5 ms
WIN = 400  # 25 ms


def _frames(x: np.ndarray) -> np.ndarray:
    pad = np.pad(x, (WIN // 2, WIN // 2 + HOP))
    n = 1 + (len(pad) - WIN) // HOP
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    return pad[idx] * np.hanning(WIN)[None, :].astype(np.float32)


def samples_16k(audio: AudioClip) -> np.ndarray:
    """The samples as float32 at ``SR`` Hz."""
    x = audio.samples.astype(np.float32, copy=False)
    if audio.rate != SR:
        from scipy.signal import resample_poly  # imported here: scipy.signal is slow to import

        g = np.gcd(int(audio.rate), SR)
        x = resample_poly(x, SR // g, int(audio.rate) // g).astype(np.float32)
    return x


def features(audio: AudioClip) -> dict[str, np.ndarray]:
    """Per-5 ms loudness (dB), high-band ratio and low-band centroid (Hz)."""
    fr = _frames(samples_16k(audio))
    spec = np.abs(np.fft.rfft(fr, n=512, axis=1)) ** 2
    freqs = np.fft.rfftfreq(512, 1.0 / SR)
    fg = _foreground(spec)
    total = fg.sum(1) + 1e-10
    db = 10 * np.log10(total / WIN + 1e-10)
    hi = fg[:, freqs >= 3500].sum(1) / total
    low_band = (freqs >= 200) & (freqs <= 3000)
    lb = fg[:, low_band]
    centroid = (lb * freqs[low_band][None, :]).sum(1) / (lb.sum(1) + 1e-10)
    return {"db": db, "hi": hi, "centroid": centroid}


BACKGROUND_S = 1.5  # window of the running background estimate
BLOCK_S = 0.1  # the background is estimated per block of this length
BACKGROUND_PERCENTILE = 60  # held notes and beats count as background; a voice moves across bins


def _foreground(spec: np.ndarray) -> np.ndarray:
    """The power spectrum minus a running estimate of what is always there.

    Per frequency bin, the background is a low percentile of the power over the
    surrounding 1.5 s (minimum statistics): steady noise, hum and held musical notes sit
    in it; speech, which starts and stops several times a second, stands out. Without
    this, music under a voice made the whole clip look like speech (chatter) or, when
    loud, none of it (a frozen mouth).
    """
    n = len(spec)
    block = max(1, int(BLOCK_S * passes.RATE))
    nb = int(np.ceil(n / block))
    padded = np.pad(spec, ((0, nb * block - n), (0, 0)), mode="edge")
    blocks = padded.reshape(nb, block, -1).mean(1)  # (nb, bins)
    half = max(1, int(BACKGROUND_S / BLOCK_S / 2))
    idx = np.clip(np.arange(nb)[:, None] + np.arange(-half, half + 1)[None, :], 0, nb - 1)
    bg_blocks = np.percentile(blocks[idx], BACKGROUND_PERCENTILE, axis=1)  # (nb, bins)
    # linear interpolation between block centres (held flat beyond the first and last)
    pos = np.clip(np.arange(n) / block - 0.5, 0.0, nb - 1.0)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, nb - 1)
    w = (pos - i0)[:, None]
    bg = bg_blocks[i0] * (1.0 - w) + bg_blocks[i1] * w
    return np.maximum(spec - 2.0 * bg, 0.0) + 1e-3 * bg


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of True runs."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _activity(db: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Voice activity per 5 ms (clearly above the noise floor, 80 ms hangover), the
    loudness scaled to 0..1 between floor and peak, and that span in dB."""
    floor = float(np.percentile(db, 10))
    peak = float(np.percentile(db, 97))
    span = max(peak - floor, 1e-3)
    level = np.clip((db - floor) / span, 0.0, 1.0)
    active = (db > floor + max(0.35 * span, 9.0)) & (peak - floor > 12.0)
    hang = int(0.08 * passes.RATE)
    if hang > 0 and active.any():
        k = np.ones(2 * hang + 1)
        active = np.convolve(active.astype(float), k, mode="same") > 0
    return active, level, span


@dataclass(frozen=True)
class Analysis:
    """The per-5 ms measurements every acoustic pass needs, computed once per clip."""

    duration: float  # seconds of audio analysed
    db: np.ndarray  # foreground loudness, dB
    hi: np.ndarray  # share of foreground energy above 3.5 kHz
    centroid: np.ndarray  # spectral centroid of 200-3000 Hz, Hz
    active: np.ndarray  # voice activity (bool)
    level: np.ndarray  # loudness scaled to 0..1 between floor and peak
    span: float  # floor-to-peak range, dB


def analyse(audio: AudioClip) -> Analysis:
    """Features and voice activity of ``audio`` (pass the result to the functions below
    instead of the audio so nothing is computed twice)."""
    f = features(audio)
    active, level, span = _activity(f["db"])
    return Analysis(audio.duration, f["db"], f["hi"], f["centroid"], active, level, span)


def _analysis(audio: AudioClip | Analysis) -> Analysis:
    return audio if isinstance(audio, Analysis) else analyse(audio)


def voice_activity(audio: AudioClip | Analysis) -> np.ndarray:
    """Boolean voice activity at ``passes.RATE`` Hz."""
    return _analysis(audio).active


def gate_phonemes(phonemes: tuple[Phoneme, ...], audio: AudioClip | Analysis) -> tuple[Phoneme, ...]:
    """Phones that a recogniser found where nobody speaks (noise, breaths, music
    between phrases) become pauses, so the mouth does not chatter."""
    active = voice_activity(audio)
    rate = passes.RATE
    out: list[Phoneme] = []
    if len(active):
        csum = np.concatenate([[0], np.cumsum(active, dtype=np.int64)])
    for p in phonemes:
        sym = p.symbol
        if sym != PAUSE:
            a = min(int(p.start * rate), len(active))
            b = min(max(a + 1, int(np.ceil(p.end * rate))), len(active))
            if b <= a or (csum[b] - csum[a]) < 0.3 * (b - a):
                sym = PAUSE
        if out and sym == PAUSE and out[-1].symbol == PAUSE:
            out[-1] = Phoneme(PAUSE, out[-1].start, p.end)
        else:
            out.append(Phoneme(sym, p.start, p.end, p.stress if sym != PAUSE else 0, p.word))
    return tuple(out)


def closure_dips(audio: AudioClip | Analysis) -> list[tuple[float, float]]:
    """Short loudness dips inside speech (25-150 ms): the silent closure of a stop."""
    an = _analysis(audio)
    return _dips(an.active, an.level)


def _dips(active: np.ndarray, level: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of 25-150 ms stretches inside speech whose loudness drops
    below 30 % of the floor-to-peak range."""
    rate = passes.RATE
    return [(a / rate, b / rate) for a, b in _runs(active & (level < 0.3)) if 0.025 <= (b - a) / rate <= 0.15]


def add_dip_closures(phones: tuple[Phoneme, ...], audio: AudioClip | Analysis) -> tuple[Phoneme, ...]:
    """Recognised phones plus a lip closure at every stop-closure dip the recogniser did
    not already explain with /p b m/.

    A phone recogniser hears the closure of /p b/ but often names the wrong place
    (/t k/) or misses it on unfamiliar voices; the dip itself is reliable. Measured on
    8 sentences without transcripts (bench/lipsync_accuracy.py): /p b m/ closed 94 ->
    98 % (Piper) and 62 -> 87 % (espeak-ng), at the price of brief closures on some
    other stops (about 0.6-0.8 per true bilabial).
    """
    from pipeline.speech.align import overlay

    bil = {"p", "b", "m"}
    extra = [
        Phoneme("b", a, b)
        for a, b in closure_dips(audio)
        if not any(q.symbol in bil and q.end > a - 0.06 and q.start < b + 0.06 for q in phones)
    ]
    return overlay(phones, extra) if extra else phones


def estimate(audio: AudioClip | Analysis) -> tuple[np.ndarray, list[passes.Closure]]:
    """Dense (RATE Hz) mouth curve and closure intervals from the audio alone."""
    an = _analysis(audio)
    n_out = max(1, int(np.ceil(an.duration * passes.RATE)) + 1)
    db, active, level = an.db, an.active, an.level
    opening = np.clip((level - 0.35) / 0.6, 0.0, 1.0) ** 0.8 * active
    fric = np.clip((an.hi - 0.25) / 0.4, 0.0, 1.0)
    rounded = np.clip((1100.0 - an.centroid) / 500.0, 0.0, 1.0) * (opening > 0.2)
    curve = np.zeros((len(db), passes.N_CH), np.float32)
    ch = passes.CH
    curve[:, ch["jaw"]] = opening * (1.0 - 0.75 * fric)
    curve[:, ch["gap"]] = np.maximum(curve[:, ch["jaw"]], 0.25 * fric * active)
    curve[:, ch["teeth"]] = 0.7 * fric * active
    curve[:, ch["spread"]] = 0.4 * fric * active
    curve[:, ch["round"]] = 0.7 * rounded
    curve = passes.smooth(curve, time_constant=0.02)
    # closures: silence, and short dips inside speech (plosive closures)
    cl: list[passes.Closure] = []
    rate = passes.RATE
    for a, b in _runs(~active):
        if (b - a) / rate >= 0.1:
            cl.append(passes.Closure(a / rate + 0.03, b / rate - 0.03))
    cl += [passes.Closure(a, b) for a, b in _dips(active, level)]
    cl = [c for c in cl if c.end > c.start]
    curve = passes.apply_closures(curve, cl)
    if len(curve) < n_out:
        curve = np.vstack([curve, np.zeros((n_out - len(curve), passes.N_CH), np.float32)])
    return curve[:n_out], cl
