"""Alignment by synthesis: phoneme times for a recording in any espeak-ng language.

The transcript is spoken by espeak-ng, whose phoneme events give exact times in the
synthetic audio; dynamic time warping of MFCC features then maps the synthetic
timeline onto the recording, and the phoneme times with it (the approach of tools such
as aeneas, here at phone level). It needs no acoustic model of the language, so it
works for the 100+ languages espeak-ng speaks, for expressive or synthetic voices that
pocketsphinx's English model mis-hears, and as a fallback when that model fails.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from pipeline.errors import PipelineError
from pipeline.types import AudioClip, Phoneme, Word
from pipeline.phones import PAUSE, classify

log = logging.getLogger(__name__)

SR = 16000
HOP = 160  # 10 ms
WIN = 400  # 25 ms
N_MELS = 26
N_MFCC = 13
MAX_BAND_S = 15.0  # the warp may drift at most this far from the diagonal


class SynthesisAlignmentFailed(PipelineError):
    code = "alignment_failed"


@lru_cache(maxsize=4)
def _mel_filters(n_fft: int, sr: int, n_mels: int) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(60.0), hz_to_mel(7600.0), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.floor((n_fft + 1) * hz / sr).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1), np.float32)
    for m in range(1, n_mels + 1):
        a, c, b = bins[m - 1], bins[m], bins[m + 1]
        if c > a:
            fb[m - 1, a:c] = (np.arange(a, c) - a) / (c - a)
        if b > c:
            fb[m - 1, c:b] = (b - np.arange(c, b)) / (b - c)
    return fb


def mfcc(audio: AudioClip) -> np.ndarray:
    """(n_frames, 13) MFCCs at 100 frames/s, mean and variance normalised per clip."""
    from scipy.fft import dct

    from pipeline.visemes.acoustic import samples_16k

    x = samples_16k(audio)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])  # pre-emphasis
    pad = np.pad(x, (WIN // 2, WIN // 2))
    n = max(1, 1 + (len(pad) - WIN) // HOP)
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = pad[idx] * np.hamming(WIN).astype(np.float32)[None, :]
    spec = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2
    mel = np.log(spec @ _mel_filters(512, SR, N_MELS).T + 1e-8)
    c = dct(mel, type=2, axis=1, norm="ortho")[:, :N_MFCC]
    c -= c.mean(0)
    c /= c.std(0) + 1e-6
    return c.astype(np.float32)


def dtw_map(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """For every ``ref`` frame, the ``query`` frame it corresponds to (monotonic, float).

    Banded DTW where each query frame advances the reference by 0, 1 or 2 frames, so a
    row only depends on the row before it and is computed in one numpy step.
    """
    n, m = len(query), len(ref)
    if n < 2 or m < 2:
        raise SynthesisAlignmentFailed("Too little audio to align.")
    band = int(min(max(100, 0.15 * max(n, m)), MAX_BAND_S * 100))
    slope = (m - 1) / (n - 1)
    width = 2 * band + 1
    inf = np.float32(np.inf)
    lo = np.array([int(round(i * slope)) - band for i in range(n)])
    choice = np.zeros((n, width), np.int8)
    prev = np.full(width, inf, np.float32)
    j0 = np.arange(width)
    # row 0: only (0, 0) is a start
    cols = lo[0] + j0
    d0 = np.full(width, inf, np.float32)
    if 0 <= -lo[0] < width:
        d0[-lo[0]] = float(np.sum((query[0] - ref[0]) ** 2))
    prev = d0
    for i in range(1, n):
        cols = lo[i] + j0
        valid = (cols >= 0) & (cols < m)
        cost = np.full(width, inf, np.float32)
        cv = cols[valid]
        diff = ref[cv] - query[i]
        cost[valid] = np.einsum("ij,ij->i", diff, diff)
        shift = lo[i] - lo[i - 1]
        best = np.full(width, inf, np.float32)
        arg = np.zeros(width, np.int8)
        for step in (0, 1, 2):  # reference advances by `step` frames
            k = j0 + shift - step  # index into prev for column cols - step
            ok = (k >= 0) & (k < width)
            cand = np.full(width, inf, np.float32)
            cand[ok] = prev[k[ok]]
            better = cand < best
            best = np.where(better, cand, best)
            arg = np.where(better, np.int8(step), arg)
        prev = np.where(valid, cost + best, inf)
        choice[i] = arg
    end = (m - 1) - lo[n - 1]
    if not (0 <= end < width) or not np.isfinite(prev[end]):
        raise SynthesisAlignmentFailed("No warping path joins the two recordings.")
    # backtrack: the reference column of every query row
    path = np.empty(n, np.int64)
    j = m - 1
    for i in range(n - 1, -1, -1):
        path[i] = j
        if i:
            j -= int(choice[i, j - lo[i]])
    # invert: query position of every reference frame (mean of the rows that map to it)
    q_of_ref = np.full(m, np.nan)
    order = np.argsort(path, kind="stable")
    uniq, first = np.unique(path[order], return_index=True)
    sums = np.add.reduceat(order.astype(np.float64), first)
    counts = np.diff(np.append(first, len(order)))
    q_of_ref[uniq] = sums / counts
    known = ~np.isnan(q_of_ref)
    q_of_ref = np.interp(np.arange(m), np.flatnonzero(known), q_of_ref[known])
    return np.maximum.accumulate(q_of_ref)


def align_by_synthesis(audio: AudioClip, text: str, language: str = "en-us") -> tuple[tuple[Phoneme, ...], tuple[Word, ...]]:
    """Phoneme and word times of ``text`` in ``audio``, through espeak-ng speaking the text
    in ``language`` at a rate matched to the recording."""
    import pipeline
    from pipeline.options import VoiceOptions

    voice = f"espeak:{language}"
    probe = pipeline.synthesize(text, VoiceOptions(voice=voice, normalize=True))
    speed = float(np.clip(probe.duration / max(audio.duration, 0.1), 0.5, 2.0))
    synth = pipeline.synthesize(text, VoiceOptions(voice=voice, speed=speed)) if abs(speed - 1) > 0.05 else probe
    if not synth.phonemes:
        raise SynthesisAlignmentFailed("espeak-ng gave no phoneme times for the transcript.")
    q_of_ref = dtw_map(mfcc(audio), mfcc(synth.audio))
    step = HOP / SR

    def warp(t: float) -> float:
        return float(np.clip(np.interp(t / step, np.arange(len(q_of_ref)), q_of_ref) * step, 0.0, audio.duration))

    phones: list[Phoneme] = []
    for p in synth.phonemes:
        a, b = warp(p.start), warp(p.end)
        if b > a:
            phones.append(Phoneme(p.symbol, a, b, p.stress, p.word))
    words = tuple(Word(w.text, warp(w.start), warp(w.end)) for w in synth.words)
    if phones and phones[-1].end < audio.duration:
        phones.append(Phoneme(PAUSE, phones[-1].end, audio.duration))
    return tuple(phones), words


def openness_agreement(phones: tuple[Phoneme, ...], audio: AudioClip) -> float:
    """How well a timing explains the audio: correlation between the jaw opening the
    phones predict and the loudness, both at 100 Hz (higher is better)."""
    from pipeline.visemes.acoustic import features

    db = features(audio)["db"]  # 200 Hz
    rate = 200.0
    t = np.arange(len(db)) / rate
    expected = np.zeros(len(db), np.float32)
    for p in phones:
        a, b = np.searchsorted(t, [p.start, p.end])
        expected[a:b] = 0.0 if p.symbol == PAUSE else classify(p.symbol).pose.jaw + 0.15
    if expected.std() < 1e-6 or db.std() < 1e-6:
        return -1.0
    return float(np.corrcoef(expected, db)[0, 1])
