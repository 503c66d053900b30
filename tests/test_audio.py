"""pipeline.media.audio: decoding every common format, resampling, loudness, WAV output, errors."""

from __future__ import annotations

import math
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InvalidOption, PipelineError, SilentAudio, UnsupportedMedia
from pipeline.media.audio import (
    _k_weighting_sos,
    check_audible,
    integrated_loudness,
    load_audio,
    normalize_loudness,
    resample,
    save_wav,
)
from pipeline.types import AudioClip

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def tone(rate: int, seconds: float = 1.0, freq: float = 440.0, amp: float = 0.5, onset: float = 0.0) -> np.ndarray:
    """A sine of ``amp`` that starts at ``onset`` seconds (silence before)."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = amp * np.sin(2 * np.pi * freq * (t - onset))
    x[t < onset] = 0.0
    return x.astype(np.float32)


def write_audio(
    path: Path,
    codec: str,
    rate: int,
    channels: int = 1,
    *,
    samples: np.ndarray | None = None,
    container_format: str | None = None,
    per_channel: np.ndarray | None = None,
) -> Path:
    """Encode ``samples`` (copied to every channel) or ``per_channel`` (channels, n) with PyAV."""
    if per_channel is None:
        x = tone(rate) if samples is None else samples
        per_channel = np.repeat(x[None, :], channels, axis=0)
    layout = LAYOUTS[per_channel.shape[0]]
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder is marked experimental
            stream.codec_context.options = {"strict": "experimental"}
        n = per_channel.shape[1]
        for i in range(0, n, 1000):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(per_channel[:, i : i + 1000], dtype=np.float32), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_video(path: Path, *, audio: np.ndarray | None = None, rate: int = 48000, frames: int = 25) -> Path:
    """A tiny H.264 MP4 (1 s at 25 fps), with an AAC track when ``audio`` is given."""
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        vs.width, vs.height = 32, 32
        aus = None
        if audio is not None:
            aus = out.add_stream("aac", rate=rate)
            aus.layout = "mono"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 8, np.uint8), format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        if aus is not None and audio is not None:
            for i in range(0, len(audio), 1024):
                f = av.AudioFrame.from_ndarray(audio[None, i : i + 1024], format="fltp", layout="mono")
                f.sample_rate = rate
                f.pts = i
                out.mux(aus.encode(f))
            out.mux(aus.encode(None))
    return path


def dominant_freq(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def onset_time(x: np.ndarray, rate: int, level: float = 0.25) -> float:
    return float(np.argmax(np.abs(x) > level) / rate)


# ------------------------------------------------------------------------- decoding

# name, codec, rate, channels, container, lossless
FORMATS = [
    ("s16.wav", "pcm_s16le", 8000, 1, None, True),
    ("f32.wav", "pcm_f32le", 22050, 2, None, True),
    ("s24.wav", "pcm_s24le", 44100, 2, None, True),
    ("u8.wav", "pcm_u8", 16000, 1, None, False),
    ("s32.wav", "pcm_s32le", 96000, 1, None, True),
    ("stereo.mp3", "libmp3lame", 44100, 2, None, False),
    ("mono.mp3", "libmp3lame", 22050, 1, None, False),
    ("stereo.m4a", "aac", 48000, 2, "mp4", False),
    ("mono.m4a", "aac", 8000, 1, "mp4", False),
    ("stereo.opus.ogg", "libopus", 48000, 2, "ogg", False),
    ("mono.webm", "libopus", 48000, 1, "webm", False),
    ("vorbis.ogg", "vorbis", 44100, 2, "ogg", False),
    ("mono.flac", "flac", 22050, 1, None, True),
    ("surround.flac", "flac", 48000, 6, None, True),
]


@pytest.mark.parametrize("name,codec,rate,channels,fmt,lossless", FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_every_format_to_mono_float(
    tmp_path: Path, name: str, codec: str, rate: int, channels: int, fmt: str | None, lossless: bool
) -> None:
    src = tone(rate, seconds=1.0, amp=0.5, onset=0.25)
    path = write_audio(tmp_path / name, codec, rate, channels, samples=src, container_format=fmt)

    clip = load_audio(path)

    assert clip.rate == rate
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.duration - 1.0) <= 0.03
    assert float(np.max(np.abs(clip.samples))) <= 1.0
    body = clip.samples[int(0.35 * rate) : int(0.9 * rate)]
    peak = float(np.max(np.abs(body)))
    assert peak == pytest.approx(0.5, abs=0.01 if lossless else 0.06)
    assert dominant_freq(body, rate) == pytest.approx(440.0, abs=5.0)
    # Encoder delay (AAC priming, Opus pre-skip, MP3 padding) is removed: the tone starts on time.
    assert onset_time(clip.samples, rate) == pytest.approx(0.25, abs=0.012)
    if lossless:
        n = min(len(src), len(clip.samples))
        assert np.max(np.abs(clip.samples[:n] - src[:n])) < 1e-3


def test_m4a_duration_is_exact(tmp_path: Path) -> None:
    """AAC end padding is trimmed to the MP4 edit list, so the sample count is the original one."""
    path = write_audio(tmp_path / "exact.m4a", "aac", 44100, 1, samples=tone(44100, seconds=0.7))
    assert len(load_audio(path).samples) == int(round(0.7 * 44100))


def test_audio_track_of_a_video_file(tmp_path: Path) -> None:
    path = write_video(tmp_path / "talk.mp4", audio=tone(48000, seconds=1.0, amp=0.4))
    clip = load_audio(path)
    assert clip.rate == 48000
    assert abs(clip.duration - 1.0) <= 0.03
    body = clip.samples[4800:-4800]  # a lossy codec rings where the tone is cut off
    assert float(np.max(np.abs(body))) == pytest.approx(0.4, abs=0.05)


def test_target_rate_resamples(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", "pcm_s16le", 44100, 2)
    clip = load_audio(path, target_rate=16000)
    assert clip.rate == 16000
    assert len(clip.samples) == round(44100 * 16000 / 44100)
    assert dominant_freq(clip.samples, 16000) == pytest.approx(440.0, abs=3.0)


def test_phase_inverted_stereo_is_not_silent(tmp_path: Path) -> None:
    x = tone(22050)
    path = write_audio(tmp_path / "anti.wav", "pcm_s16le", 22050, per_channel=np.stack([x, -x]))
    clip = load_audio(path)
    assert float(np.max(np.abs(clip.samples))) == pytest.approx(0.5, abs=0.01)


def test_timestamp_gap_is_filled_with_silence(tmp_path: Path) -> None:
    """Dropped packets (pts jump 0.5 s) keep later audio at its time, as in browser recordings."""
    rate = 16000
    x = tone(rate)
    path = tmp_path / "gap.mka"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        for i in range(0, rate, 800):
            frame = av.AudioFrame.from_ndarray(x[None, i : i + 800], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = i + (rate // 2 if i >= rate // 2 else 0)
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    clip = load_audio(path)
    assert clip.duration == pytest.approx(1.5, abs=0.002)
    assert np.max(np.abs(clip.samples[int(0.52 * rate) : int(0.98 * rate)])) == 0.0
    assert np.max(np.abs(clip.samples[int(1.02 * rate) :])) == pytest.approx(0.5, abs=0.01)


def test_float_wav_over_full_scale_is_scaled(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "hot.wav", "pcm_f32le", 16000, 1, samples=tone(16000, amp=1.5))
    clip = load_audio(path)
    assert float(np.max(np.abs(clip.samples))) == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia):
        load_audio(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(UnsupportedMedia, match="empty"):
        load_audio(tmp_path / "empty.wav")


@pytest.mark.parametrize("name", ["noise.wav", "noise.mp3", "text.m4a"])
def test_corrupt_data(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.startswith("text"):
        path.write_text("this is not audio at all\n" * 20)
    else:
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedMedia, match=name):
        load_audio(path)


def test_truncated_m4a(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "cut.m4a", "aac", 48000, 1, container_format="mp4")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(UnsupportedMedia):
        load_audio(path)


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_video(tmp_path / "silent_movie.mp4")
    with pytest.raises(UnsupportedMedia, match="no audio"):
        load_audio(path)


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros(16000, np.float32),  # digital silence
        tone(16000, amp=10 ** (-70 / 20)),  # -70 dBFS hiss
        np.full(16000, 0.5, np.float32),  # DC offset only
        tone(16000, seconds=0.05),  # too short
    ],
    ids=["zeros", "minus70dB", "dc", "50ms"],
)
def test_silent_or_empty_audio(tmp_path: Path, samples: np.ndarray) -> None:
    path = write_audio(tmp_path / "s.wav", "pcm_f32le", 16000, 1, samples=samples)
    with pytest.raises(SilentAudio):
        load_audio(path)


def test_errors_are_pipeline_errors(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        load_audio(tmp_path / "missing.ogg")
    assert info.value.code == "unsupported_media"
    with pytest.raises(SilentAudio) as silent:
        check_audible(AudioClip(np.zeros(8000, np.float32), 8000))
    assert silent.value.code == "silent_audio"


# ------------------------------------------------------------------------- resampling


@pytest.mark.parametrize(
    "n,src,dst",
    [
        (12345, 44100, 16000),
        (8000, 8000, 48000),
        (22051, 22050, 44100),
        (48000, 48000, 44100),
        (9999, 37800, 48000),
        (7, 16000, 22050),
    ],
)
def test_resample_exact_length(n: int, src: int, dst: int) -> None:
    x = tone(src, seconds=n / src, freq=300.0, amp=0.5)[:n]
    out = resample(AudioClip(x, src), dst)
    assert out.rate == dst
    assert len(out.samples) == round(n * dst / src)
    assert out.samples.dtype == np.float32
    if n > 4000:
        assert dominant_freq(out.samples, dst) == pytest.approx(300.0, abs=2.0)
        mid = slice(len(out.samples) // 4, 3 * len(out.samples) // 4)
        assert float(np.sqrt(np.mean(out.samples[mid] ** 2))) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_resample_same_rate_and_invalid() -> None:
    clip = AudioClip(tone(8000), 8000)
    assert resample(clip, 8000) is clip
    with pytest.raises(InvalidOption):
        resample(clip, 0)


# ------------------------------------------------------------------------- loudness


def test_k_weighting_matches_bs1770_at_48k() -> None:
    sos = _k_weighting_sos(48000)
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(sos[0, 4:], [-1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(sos[1, 4:], [-1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_integrated_loudness_of_1khz_sine(rate: int) -> None:
    # BS.1770 calibration: a full-scale 1 kHz sine reads -3.01 LUFS.
    clip = AudioClip(tone(rate, seconds=2.0, freq=1000.0, amp=0.25), rate)
    assert integrated_loudness(clip) == pytest.approx(-3.01 + 20 * math.log10(0.25), abs=0.1)


def test_gating_ignores_silence() -> None:
    rate = 16000
    x = np.concatenate([tone(rate, seconds=4.0, freq=1000.0, amp=0.25), np.zeros(6 * rate, np.float32)])
    # 37 full blocks plus 3 straddling the end (3/4, 2/4, 1/4 tone) pass the gates; the silent ones do not.
    expected = -3.01 + 20 * math.log10(0.25) + 10 * math.log10((37 + 1.5) / 40)
    assert integrated_loudness(AudioClip(x, rate)) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("amp", [0.01, 0.3, 0.99])
def test_normalize_tone_hits_target(amp: float) -> None:
    clip = AudioClip(tone(22050, seconds=1.5, freq=1000.0, amp=amp), 22050)
    out = normalize_loudness(clip, target_lufs=-20.0, peak_dbfs=-1.0)
    assert integrated_loudness(out) == pytest.approx(-20.0, abs=1.0)
    # Independent check from the BS.1770 calibration: -20 LUFS is a sine of peak 10^((-20+3.01)/20).
    assert float(np.max(np.abs(out.samples))) == pytest.approx(10 ** ((-20 + 3.01) / 20), rel=0.12)
    assert out.rate == clip.rate and len(out.samples) == len(clip.samples)


def test_normalize_never_clips() -> None:
    rate = 16000
    x = tone(rate, seconds=2.0, freq=1000.0, amp=0.05)
    x[::1600] = 0.9  # sharp clicks: a crest factor far above speech
    clip = AudioClip(x, rate)
    ceiling = 10 ** (-1.0 / 20)
    for target in (-20.0, -10.0, -3.0):
        out = normalize_loudness(clip, target_lufs=target, peak_dbfs=-1.0)
        assert float(np.max(np.abs(out.samples))) <= ceiling + 1e-6

    # Peaks a few dB over the ceiling are limited and the target is still reached.
    y = tone(rate, seconds=2.0, freq=1000.0, amp=0.05)
    y[::1600] = 0.5
    out = normalize_loudness(AudioClip(y, rate), target_lufs=-20.0, peak_dbfs=-1.0)
    assert float(np.max(np.abs(out.samples))) <= ceiling + 1e-6
    assert integrated_loudness(out) == pytest.approx(-20.0, abs=1.0)


def test_normalize_silence_raises() -> None:
    with pytest.raises(SilentAudio):
        normalize_loudness(AudioClip(np.zeros(16000, np.float32), 16000))
    with pytest.raises(InvalidOption):
        normalize_loudness(AudioClip(tone(16000), 16000), peak_dbfs=3.0)


# ------------------------------------------------------------------------- writing


def test_save_wav_round_trip(tmp_path: Path) -> None:
    clip = AudioClip(tone(22050, amp=0.7), 22050)
    out = save_wav(clip, tmp_path / "out" / "voice.wav")
    assert out == tmp_path / "out" / "voice.wav"
    assert sorted(p.name for p in out.parent.iterdir()) == ["voice.wav"]  # no temp file left
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 22050, 22050)
    back = load_audio(out)
    assert np.max(np.abs(back.samples - clip.samples)) < 2.0 / 32767


def test_save_wav_replaces_existing(tmp_path: Path) -> None:
    path = tmp_path / "v.wav"
    path.write_bytes(b"old")
    save_wav(AudioClip(tone(8000), 8000), path)
    assert load_audio(path).rate == 8000
