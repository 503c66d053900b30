"""Audio in and out: decode any file to mono float32, resample, normalise loudness, save WAV.

Decoding goes through PyAV, so anything FFmpeg reads works: WAV (8/16/24/32-bit
integer, float), MP3, AAC/M4A, Ogg Vorbis, Ogg/WebM Opus, FLAC, and the audio track of
video files. Channels are averaged to mono; a file whose channels cancel out when
averaged (one channel phase-inverted) falls back to its loudest channel.

Loudness follows ITU-R BS.1770-4 for a single channel: K-weighting (high shelf plus
high-pass, designed for any sample rate), 400 ms blocks with 75 % overlap, an absolute
gate at -70 LUFS and a relative gate 10 LU below the ungated level. Clips shorter than one
block are measured as a single block. Peaks are sample peaks (no oversampling).
"""

from __future__ import annotations

import logging
import math
import os
import uuid
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from pipeline.errors import InvalidOption, SilentAudio, UnsupportedMedia
from pipeline.types import AudioClip

log = logging.getLogger(__name__)

MIN_DURATION_S = 0.1  # shorter audio is refused as empty
SILENCE_PEAK_DBFS = -60.0  # audio whose peak (DC removed) stays below this is silent
_GAP_TOLERANCE_S = 0.02  # timestamp gaps up to this are treated as jitter, not missing audio
_MAX_GAP_S = 10.0  # larger timestamp jumps are discontinuities, not gaps to fill
_ANTIPHASE_RATIO = 0.01  # mono energy below this share of the channel energy: channels cancel
_MAX_END_PADDING = 4096  # most trailing codec padding trimmed to an MP4 edit list
_LIMITER_MAX_DB = 6.0  # most gain reduction the peak limiter may apply before gain is lowered
_LIMITER_WINDOW_S = 0.005  # limiter look-ahead / release window


# --------------------------------------------------------------------------- decoding


@dataclass
class _Decoded:
    """Result of one decoding pass."""

    samples: np.ndarray
    rate: int
    codec: str
    channels: int
    channel_energy: np.ndarray | None = None  # sum of squares per input channel
    mono_energy: float = 0.0
    errors: int = 0


def load_audio(path: str | Path, *, target_rate: int | None = None) -> AudioClip:
    """Decode the audio of ``path`` to mono float32 in [-1, 1], resampled to ``target_rate`` if set.

    Raises UnsupportedMedia for a missing, unreadable or audio-less file and SilentAudio
    for audio that is shorter than 0.1 s or has no audible signal.
    """
    p = Path(path)
    if not p.exists():
        raise UnsupportedMedia(f"Audio file '{p.name}' was not found.")
    if not p.is_file():
        raise UnsupportedMedia(f"'{p.name}' is not a file.")
    if p.stat().st_size == 0:
        raise UnsupportedMedia(f"Audio file '{p.name}' is empty (0 bytes).")
    if target_rate is not None and (not isinstance(target_rate, (int, np.integer)) or target_rate <= 0):
        raise InvalidOption(f"target_rate must be a positive integer, got {target_rate!r}.")

    dec = _decode(p)
    if (
        dec.channels > 1
        and dec.channel_energy is not None
        and dec.mono_energy < _ANTIPHASE_RATIO * float(dec.channel_energy.mean())
        and float(dec.channel_energy.max()) > 0.0
    ):
        loudest = int(np.argmax(dec.channel_energy))
        log.warning(
            "%s: channels cancel out when mixed to mono (phase-inverted?); using channel %d",
            p.name,
            loudest,
        )
        dec = _decode(p, channel=loudest)

    clip = AudioClip(dec.samples, dec.rate)
    log.debug(
        "loaded %s: codec=%s rate=%d channels=%d duration=%.3fs%s",
        p.name,
        dec.codec,
        dec.rate,
        dec.channels,
        clip.duration,
        f" ({dec.errors} damaged packets skipped)" if dec.errors else "",
    )
    check_audible(clip, name=p.name)
    if target_rate is not None and target_rate != clip.rate:
        clip = resample(clip, target_rate)
    return clip


def _decode(path: Path, channel: int | None = None) -> _Decoded:
    """Decode the best audio stream; mix to mono, or take ``channel`` when given."""
    name = path.name
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise UnsupportedMedia(
            f"Cannot read '{name}': it is damaged or not an audio/video format "
            f"({getattr(exc, 'strerror', None) or exc})."
        ) from exc
    except OSError as exc:
        raise UnsupportedMedia(f"Cannot open '{name}': {exc.strerror or exc}.") from exc

    with container:
        if not container.streams.audio:
            raise UnsupportedMedia(f"'{name}' has no audio track.")
        stream = container.streams.best("audio") or container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None:
            raise UnsupportedMedia(f"'{name}' uses an audio codec this build cannot decode.")
        return _decode_stream(container, stream, name, channel)


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    name: str,
    channel: int | None,
) -> _Decoded:
    codec = stream.codec_context.name
    chunks: list[np.ndarray] = []
    n_out = 0  # samples emitted so far, at out_rate
    out_rate: int | None = None
    t0: float | None = None  # stream time of output sample 0
    n_channels = 0
    channel_energy: np.ndarray | None = None
    mono_energy = 0.0
    errors = 0
    last_error: Exception | None = None
    warned_rate = False
    flushed = False

    def consume(frame: av.AudioFrame) -> None:
        nonlocal n_out, out_rate, t0, n_channels, channel_energy, mono_energy, warned_rate
        if frame.samples == 0:
            return
        data = _frame_to_float(frame)  # (channels, samples)
        ch = data.shape[0]
        if channel is not None:
            mono = data[min(channel, ch - 1)]
        else:
            mono = _mix_down(data, frame)
            if n_channels == 0:
                channel_energy = np.zeros(ch, dtype=np.float64)
            if channel_energy is not None and ch == channel_energy.shape[0]:
                channel_energy += np.einsum("ij,ij->i", data, data, dtype=np.float64)
                mono_energy += float(np.dot(mono.astype(np.float64), mono))
            else:
                channel_energy = None  # layout changed mid-stream: no anti-phase check
        n_channels = max(n_channels, ch)

        rate = frame.sample_rate
        if out_rate is None:
            out_rate = rate
        elif rate != out_rate:
            if not warned_rate:
                log.warning("%s: sample rate changes mid-stream (%d -> %d Hz)", name, out_rate, rate)
                warned_rate = True
            ratio = Fraction(out_rate, rate)
            from scipy.signal import resample_poly  # imported here: scipy.signal is slow to import

            mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)

        # Timestamps, when the decoder gives them, reveal dropped packets: fill with silence.
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base)
            if t0 is None:
                t0 = t - n_out / out_rate
            gap = int(round((t - t0) * out_rate)) - n_out
            if _GAP_TOLERANCE_S * out_rate < gap <= _MAX_GAP_S * out_rate:
                log.warning(
                    "%s: %.3f s of audio missing at %.3f s; filled with silence",
                    name,
                    gap / out_rate,
                    n_out / out_rate,
                )
                chunks.append(np.zeros(gap, dtype=np.float32))
                n_out += gap
            elif gap > _MAX_GAP_S * out_rate:
                log.warning("%s: timestamp jump of %.1f s ignored", name, gap / out_rate)
                t0 += gap / out_rate
        chunks.append(mono)
        n_out += len(mono)

    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            break
        except av.FFmpegError as exc:
            errors += 1
            last_error = exc
            log.warning("%s: stopped reading at a damaged part of the file: %s", name, exc)
            break
        if packet.size == 0 and packet.pts is None:
            flushed = True  # the demuxer's end-of-stream packet drains the decoder
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            errors += 1
            last_error = exc
            log.debug("%s: skipping undecodable packet: %s", name, exc)
            continue
        for frame in frames:
            consume(frame)

    if not flushed:
        try:
            for frame in stream.codec_context.decode(None):
                consume(frame)
        except av.FFmpegError as exc:
            log.debug("%s: decoder flush failed: %s", name, exc)

    if out_rate is None or not chunks:
        if errors:
            raise UnsupportedMedia(
                f"Cannot decode the audio of '{name}' ({codec}): the data is damaged ({last_error})."
            )
        raise SilentAudio(f"'{name}' contains no audio samples.")
    if errors:
        log.warning("%s: %d damaged audio packet(s) skipped", name, errors)

    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    # FFmpeg drops the encoder delay named by an MP4 edit list but keeps the padding at the
    # end (up to one codec frame or two); the edit list's duration says where audio ends.
    if "mp4" in container.format.name and stream.duration and stream.time_base and not warned_rate:
        declared = int(round(float(stream.duration * stream.time_base) * out_rate))
        if 0 < len(samples) - declared <= _MAX_END_PADDING:
            samples = samples[:declared]
    if not np.all(np.isfinite(samples)):
        log.warning("%s: replacing non-finite samples with 0", name)
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        log.warning("%s: float audio peaks at %.2f (above full scale); scaled down", name, peak)
        samples = samples / peak
    return _Decoded(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        rate=int(out_rate),
        codec=codec,
        channels=n_channels,
        channel_energy=channel_energy,
        mono_energy=mono_energy,
        errors=errors,
    )


_INT_FULL_SCALE = {"s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63}


def _frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """Samples of ``frame`` as float32 of shape (channels, samples), planar or packed input."""
    arr = frame.to_ndarray()
    fmt = frame.format
    n_ch = frame.layout.nb_channels
    if not fmt.is_planar:
        arr = arr.reshape(-1, n_ch).T
    kind = fmt.name.rstrip("p")
    if kind == "u8":
        return (arr.astype(np.float32) - 128.0) / 128.0
    if kind in _INT_FULL_SCALE:
        return (arr.astype(np.float64) / _INT_FULL_SCALE[kind]).astype(np.float32)
    if kind in ("flt", "dbl"):
        return arr.astype(np.float32, copy=False)
    raise UnsupportedMedia(f"Unsupported audio sample format '{fmt.name}'.")


def _mix_down(data: np.ndarray, frame: av.AudioFrame) -> np.ndarray:
    """Average the channels; the LFE channel of a surround layout is left out."""
    if data.shape[0] == 1:
        return data[0]
    if data.shape[0] > 2:
        names = [c.name for c in frame.layout.channels]
        keep = [i for i, n in enumerate(names) if n != "LFE"]
        if keep and len(keep) < data.shape[0] and len(names) == data.shape[0]:
            data = data[keep]
    return data.mean(axis=0, dtype=np.float32)


# --------------------------------------------------------------------------- checks


def check_audible(clip: AudioClip, *, name: str = "the audio") -> None:
    """Raise SilentAudio when ``clip`` is shorter than 0.1 s or its peak (DC removed) is below -60 dBFS."""
    if clip.rate <= 0:
        raise SilentAudio(f"{name} has no valid sample rate ({clip.rate}).")
    if clip.duration < MIN_DURATION_S:
        raise SilentAudio(
            f"{name} is too short ({clip.duration:.3f} s); at least {MIN_DURATION_S:.1f} s of sound is needed."
        )
    x = clip.samples
    peak = float(np.max(np.abs(x - np.mean(x, dtype=np.float64))))
    peak_db = 20.0 * math.log10(peak) if peak > 0 else -math.inf
    if peak_db < SILENCE_PEAK_DBFS:
        level = "digital silence" if peak == 0 else f"peak {peak_db:.0f} dBFS"
        raise SilentAudio(
            f"{name} is silent ({level}); record or choose audio with audible speech."
        )


# --------------------------------------------------------------------------- resampling


def resample(clip: AudioClip, rate: int) -> AudioClip:
    """Polyphase resampling to ``rate``; the result has exactly round(n * rate / clip.rate) samples."""
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InvalidOption(f"Sample rate must be a positive integer, got {rate!r}.")
    if clip.rate <= 0:
        raise InvalidOption(f"Cannot resample audio with sample rate {clip.rate}.")
    rate = int(rate)
    if rate == clip.rate:
        return clip
    n = len(clip.samples)
    n_out = int(round(n * rate / clip.rate))
    if n == 0:
        return AudioClip(np.zeros(0, dtype=np.float32), rate)
    ratio = Fraction(rate, clip.rate)
    from scipy.signal import resample_poly

    y = resample_poly(clip.samples.astype(np.float32, copy=False), ratio.numerator, ratio.denominator)
    if len(y) < n_out:  # resample_poly returns ceil(n * up / down) >= n_out; guard anyway
        y = np.pad(y, (0, n_out - len(y)))
    y = np.clip(y[:n_out], -1.0, 1.0).astype(np.float32, copy=False)
    return AudioClip(np.ascontiguousarray(y), rate)


# --------------------------------------------------------------------------- loudness


def _k_weighting_sos(rate: int) -> np.ndarray:
    """BS.1770 K-weighting (high shelf then high-pass) as second-order sections at ``rate``."""
    # Stage 1: high shelf, +4 dB above ~1.7 kHz (models the head).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    # Stage 2: second-order high-pass at ~38 Hz (the RLB curve).
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def integrated_loudness(clip: AudioClip) -> float:
    """Gated integrated loudness of a mono clip in LUFS (BS.1770-4); -inf when everything is gated."""
    x = np.asarray(clip.samples, dtype=np.float64)
    if x.size == 0 or clip.rate <= 0:
        return -math.inf
    from scipy.signal import sosfilt

    y = sosfilt(_k_weighting_sos(clip.rate), x)
    block = int(round(0.4 * clip.rate))
    hop = int(round(0.1 * clip.rate))
    if len(y) <= block:
        power = np.array([float(np.mean(y * y))])
    else:
        csum = np.concatenate(([0.0], np.cumsum(y * y)))
        starts = np.arange(0, len(y) - block + 1, hop)
        power = (csum[starts + block] - csum[starts]) / block
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(power)
    above_abs = power[block_lufs > -70.0]
    if above_abs.size == 0:
        return -math.inf
    relative_gate = -0.691 + 10.0 * math.log10(float(np.mean(above_abs))) - 10.0
    gated = power[(block_lufs > -70.0) & (block_lufs > relative_gate)]
    if gated.size == 0:
        return -math.inf
    return -0.691 + 10.0 * math.log10(float(np.mean(gated)))


def normalize_loudness(clip: AudioClip, target_lufs: float = -20.0, peak_dbfs: float = -1.0) -> AudioClip:
    """Gain ``clip`` to ``target_lufs`` integrated loudness; sample peaks never exceed ``peak_dbfs``.

    Peaks that the gain would push over the ceiling go through a look-ahead limiter
    (at most 6 dB of gain reduction); when more would be needed the overall gain is
    lowered instead, so the result is quieter than the target rather than distorted.
    """
    if not -70.0 <= target_lufs <= 0.0:
        raise InvalidOption(f"Target loudness must be between -70 and 0 LUFS, got {target_lufs}.")
    if not -60.0 <= peak_dbfs <= 0.0:
        raise InvalidOption(f"Peak ceiling must be between -60 and 0 dBFS, got {peak_dbfs}.")
    check_audible(clip)
    loudness = integrated_loudness(clip)
    if not math.isfinite(loudness):
        raise SilentAudio("The audio is too quiet to measure its loudness (below -70 LUFS).")

    x = clip.samples.astype(np.float32, copy=False)
    ceiling = 10.0 ** (peak_dbfs / 20.0)
    peak = float(np.max(np.abs(x)))
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    max_gain = ceiling / peak * 10.0 ** (_LIMITER_MAX_DB / 20.0)
    if gain > max_gain:
        log.info(
            "loudness %.1f LUFS: target %.1f LUFS would clip; limited to %.1f LUFS",
            loudness,
            target_lufs,
            loudness + 20.0 * math.log10(max_gain),
        )
        gain = max_gain
    y = x.astype(np.float64) * gain
    if peak * gain > ceiling:
        y = _limit(y, ceiling, clip.rate)
    y = np.clip(y, -ceiling, ceiling).astype(np.float32)
    log.debug("loudness %.2f LUFS -> gain %.2f dB", loudness, 20.0 * math.log10(gain))
    return AudioClip(y, clip.rate)


def _limit(y: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """Look-ahead peak limiter: a smooth gain curve that keeps |y| <= ceiling."""
    w = max(1, int(round(_LIMITER_WINDOW_S * rate)))
    mag = np.abs(y)
    needed = np.minimum(1.0, ceiling / np.maximum(mag, 1e-12))
    # A minimum over +-w then a moving average over w+1 samples never exceeds the gain
    # each sample needs (every sample in the average window saw it in its minimum).
    env = minimum_filter1d(needed, size=2 * w + 1, mode="nearest")
    env = uniform_filter1d(env, size=w + 1, mode="nearest")
    return y * np.minimum(env, needed)


# --------------------------------------------------------------------------- writing


def save_wav(clip: AudioClip, path: str | Path) -> Path:
    """Write ``clip`` as 16-bit PCM mono WAV, atomically (temp name, then rename). Returns the path."""
    p = Path(path)
    if clip.rate <= 0:
        raise InvalidOption(f"Cannot save audio with sample rate {clip.rate}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(np.asarray(clip.samples, dtype=np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    tmp = p.with_name(f".{p.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(tmp, "xb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(clip.rate))
            w.writeframes(pcm.tobytes())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
