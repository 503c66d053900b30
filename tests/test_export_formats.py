"""pipeline.export: WebM/MOV/GIF/PNG/WAV writers read back with PyAV, alpha, colour, sync; subtitles."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pipeline.errors import InvalidOption
from pipeline.export import WRITERS, open_writer, probe, read_alpha
from pipeline.export.base import BaseWriter
from pipeline.export.quality import PRESETS, vp9_crf, x264_crf
from pipeline.export.readback import decode_rgba
from pipeline.export.subtitles import (
    Cue,
    align_to_runs,
    SubtitledWriter,
    burn_in,
    cues_from_speech,
    make_cues,
    script_words,
    spread_words,
    timed_words,
    to_srt,
    to_vtt,
    write_srt,
    write_vtt,
)
from pipeline.media.audio import load_audio
from pipeline.export.formats import alpha_formats, format_for_path, format_info
from pipeline.options import ExportOptions

ALPHA_FORMATS = ("webm", "mov", "png")  # what the writers must declare
from pipeline.types import AudioClip, Phoneme, Speech, Word

W, H, FPS, N = 64, 48, 25.0, 30
RED = (220, 40, 30)  # opaque left half
BLUE = (30, 60, 200)  # colour under the transparent right half
FRAME_S = 1 / FPS
# output name per format (the PNG sequence is a folder)
NAMES = {"mp4": "clip.mp4", "webm": "clip.webm", "mov": "clip.mov", "gif": "clip.gif", "png": "clip", "wav": "clip.wav"}
CODECS = {"mp4": "h264", "webm": "vp9", "mov": "prores", "gif": "gif", "png": "png"}
PIX_FMTS = {"mp4": "yuv420p", "webm": "yuva420p", "mov": "yuva444p12le", "gif": "bgra", "png": "rgba"}
AUDIO = {"mp4": ("aac", 44100), "webm": ("opus", 48000), "mov": ("pcm_s16le", 44100), "png": ("pcm_s16le", 44100)}


def pattern(alpha: bool = True) -> np.ndarray:
    f = np.zeros((H, W, 4), np.uint8)
    f[:, : W // 2] = (*RED, 255)
    f[:, W // 2 :] = (*BLUE, 0)
    return f if alpha else f[:, :, :3].copy()


def tone(seconds: float = 1.2, rate: int = 44100, onset: float = 0.0) -> AudioClip:
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    x[t < onset] = 0.0
    return AudioClip(x.astype(np.float32), rate)


def write_clip(folder: Path, fmt: str, n: int = N, fps: float = FPS, **opts) -> Path:
    out = folder / NAMES[fmt]
    with open_writer(out, W, H, fps, tone(n / fps), ExportOptions(format=fmt, **opts), title="Hello") as w:
        for _ in range(n):
            w.write(pattern())
        assert w.frames_written == n
    return out


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    return {fmt: write_clip(folder, fmt) for fmt in NAMES}


# --------------------------------------------------------------------------- read back


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mov", "gif", "png"])
def test_video_streams_read_back(clips: dict[str, Path], fmt: str) -> None:
    info = probe(clips[fmt])
    assert info["video_codec"] == CODECS[fmt]
    assert info["pix_fmt"] == PIX_FMTS[fmt]
    assert info["alpha"] is (fmt in ALPHA_FORMATS)
    assert (info["width"], info["height"]) == (W, H)
    assert info["frames"] == N
    assert info["fps_rational"] == "25/1"
    assert abs(info["video_duration"] - N / FPS) <= FRAME_S  # the audio is N / FPS long
    frames = list(decode_rgba(clips[fmt]))
    assert len(frames) == N
    assert all(f.shape == (H, W, 4) for f in frames)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mov", "png", "wav"])
def test_audio_present_and_exact(clips: dict[str, Path], fmt: str) -> None:
    path = clips[fmt] / "audio.wav" if fmt == "png" else clips[fmt]
    info = probe(clips[fmt])
    codec, rate = AUDIO.get(fmt, ("pcm_s16le", 44100))
    assert info["audio_codec"] == codec and info["audio_rate"] == rate
    assert abs(info["audio_duration"] - N / FPS) <= FRAME_S
    back = load_audio(path)
    assert back.rate == rate
    assert len(back.samples) == round(N / FPS * rate)  # codec delay and padding removed
    assert np.abs(back.samples).max() == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mov", "gif", "png"])
def test_colours_not_shifted(clips: dict[str, Path], fmt: str) -> None:
    # BT.601/709 mix-ups move this red by 10-20 levels, a tv/pc range mix-up by ~15.
    for rgba in decode_rgba(clips[fmt], limit=3):
        inner = rgba[4:-4, 4 : W // 2 - 4, :3].astype(int)
        err = np.abs(inner - np.array(RED)).mean(axis=(0, 1))
        assert err.max() < 3.0, err


def bt709_limited_to_rgb(y: float, u: float, v: float, bits: int) -> np.ndarray:
    """The textbook BT.709 tv-range inverse, independent of swscale."""
    scale = 2 ** (bits - 8)
    yn = (y / scale - 16) / 219
    cb, cr = (u / scale - 128) / 224, (v / scale - 128) / 224
    r = yn + 1.5748 * cr
    g = yn - 0.1873 * cb - 0.4681 * cr
    b = yn + 1.8556 * cb
    return np.array([r, g, b]) * 255


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mov"])
def test_yuv_planes_are_bt709_tv_range(clips: dict[str, Path], fmt: str) -> None:
    info = probe(clips[fmt])
    assert info["color_space"] == "bt709" and info["color_range"] == "tv"
    with av.open(str(clips[fmt])) as c:
        frame = next(c.decode(video=0))
    bits = 12 if "12" in frame.format.name else 10 if "10" in frame.format.name else 8
    dtype = np.uint16 if bits > 8 else np.uint8
    means = []
    for i in range(3):
        plane = frame.planes[i]
        arr = np.frombuffer(plane, dtype).reshape(plane.height, -1)[:, : plane.width]
        sub = W // plane.width  # 2 for 4:2:0 chroma
        means.append(arr[4 // sub : -4 // sub, 4 // sub : (W // 2 - 4) // sub].mean())
    assert np.abs(bt709_limited_to_rgb(*means, bits) - np.array(RED)).max() < 3.0


@pytest.mark.parametrize("fmt", ["webm", "mov", "png"])
def test_alpha_present_and_correct(clips: dict[str, Path], fmt: str) -> None:
    alpha = read_alpha(clips[fmt])
    assert alpha.shape == (H, W) and alpha.dtype == np.uint8
    assert alpha[:, : W // 2 - 1].min() >= 250
    assert alpha[:, W // 2 + 1 :].max() <= 5
    for rgba in decode_rgba(clips[fmt]):  # every frame, not just the first
        assert rgba[:, 4 : W // 2 - 4, 3].min() >= 250 and rgba[:, W // 2 + 4 :, 3].max() <= 5


@pytest.mark.parametrize("fmt", ["webm", "mov", "png"])
def test_partial_alpha_is_not_range_scaled(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / NAMES[fmt]
    frame = np.zeros((H, W, 4), np.uint8)
    frame[:] = (90, 160, 60, 128)
    with open_writer(out, W, H, FPS, None, ExportOptions(format=fmt, alpha=True)) as w:
        for _ in range(3):
            w.write(frame)
    assert np.abs(read_alpha(out).astype(int) - 128).max() <= 2


def test_mp4_and_gif_are_opaque(clips: dict[str, Path]) -> None:
    for fmt in ("mp4", "gif"):
        assert read_alpha(clips[fmt]).min() == 255
        assert probe(clips[fmt])["alpha"] is False


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mov", "wav"])
def test_metadata(clips: dict[str, Path], fmt: str) -> None:
    info = probe(clips[fmt])
    assert info["title"] == "Hello"
    assert info["comment"] == "Avatar Studio"


def test_gif_and_png_metadata(clips: dict[str, Path]) -> None:
    with Image.open(clips["gif"]) as im:
        assert im.info["comment"] == b"Hello\nAvatar Studio"
        assert im.info["loop"] == 0
    with Image.open(clips["png"] / "frame_000001.png") as im:
        assert im.mode == "RGBA"
        assert im.info["Title"] == "Hello" and im.info["Software"] == "Avatar Studio"
        assert "srgb" in im.info
    manifest = json.loads((clips["png"] / "sequence.json").read_text())
    assert manifest["fps"] == "25/1" and manifest["frames"] == N and manifest["alpha"] is True
    names = listing(clips["png"])
    assert names == ["audio.wav", *[f"frame_{i:06d}.png" for i in range(1, N + 1)], "sequence.json"]


def test_webm_rgb_frames_have_no_alpha(tmp_path: Path) -> None:
    out = tmp_path / "opaque.webm"
    with open_writer(out, W, H, FPS, None, ExportOptions(format="webm")) as w:
        for _ in range(5):
            w.write(pattern(alpha=False))
    info = probe(out)
    assert info["pix_fmt"] == "yuv420p" and info["alpha"] is False
    assert read_alpha(out).min() == 255


def test_webm_alpha_needs_libvpx_decoder(clips: dict[str, Path]) -> None:
    # FFmpeg's native vp9 decoder drops the BlockAdditional alpha; libvpx-vp9 keeps it.
    with av.open(str(clips["webm"])) as c:
        native = next(c.decode(video=0))
        assert native.format.name == "yuv420p"
        assert c.streams.video[0].metadata.get("alpha_mode") == "1"
    assert read_alpha(clips["webm"])[:, -4:].max() <= 5


def test_mov_profile_and_archive_xq(tmp_path: Path, clips: dict[str, Path]) -> None:
    info = probe(clips["mov"])
    assert info["video_profile"] == "4444" and info["codec_tag"] == "ap4h"
    assert info["color_space"] == "bt709" and info["color_range"] == "tv"
    archive = write_clip(tmp_path, "mov", n=3, quality="archive")
    assert probe(archive)["codec_tag"] == "ap4x"


def test_mov_aac_audio(tmp_path: Path) -> None:
    out = write_clip(tmp_path, "mov", n=25, mov_audio="aac")
    info = probe(out)
    assert info["audio_codec"] == "aac"
    assert len(load_audio(out).samples) == 44100


@pytest.mark.parametrize("fmt", ["webm", "mov"])
def test_audio_in_sync(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / NAMES[fmt]
    audio = tone(2.0, rate=48000, onset=0.5)
    with open_writer(out, 32, 32, FPS, audio, ExportOptions(format=fmt)) as w:
        for _ in range(50):
            w.write(np.zeros((32, 32, 3), np.uint8))
    back = load_audio(out)
    assert len(back.samples) == len(audio.samples)
    onset = np.argmax(np.abs(back.samples) > 0.15) / back.rate
    assert onset == pytest.approx(0.5, abs=0.005)


@pytest.mark.parametrize("fmt", ["webm", "mov", "png"])
def test_odd_sizes(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / NAMES[fmt]
    with open_writer(out, 33, 25, FPS, None, ExportOptions(format=fmt)) as w:
        for _ in range(3):
            w.write(np.full((25, 33, 4), 200, np.uint8))
    info = probe(out)
    assert (info["width"], info["height"], info["frames"]) == (33, 25, 3)


def test_ntsc_rate_in_mov_and_png(tmp_path: Path) -> None:
    for fmt in ("mov", "png"):
        out = write_clip(tmp_path, fmt, n=30, fps=29.97)
        info = probe(out)
        assert info["fps_rational"] == "30000/1001"
        assert info["video_duration"] == pytest.approx(30 * 1001 / 30000, abs=1e-3)


# --------------------------------------------------------------------------- GIF timing


def gif_delays(path: Path) -> list[int]:
    out = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append(im.info["duration"])
    return out


def test_gif_timing_at_25_fps(clips: dict[str, Path]) -> None:
    assert gif_delays(clips["gif"]) == [40] * N


def test_gif_timing_at_30_fps_does_not_drift(tmp_path: Path) -> None:
    out = write_clip(tmp_path, "gif", n=31, fps=30.0)
    delays = gif_delays(out)
    assert len(delays) == 31 and set(delays) == {30, 40}
    assert sum(delays) == 1030  # 31 / 30 s to the centisecond


def test_gif_at_60_fps_keeps_every_other_frame(tmp_path: Path) -> None:
    out = write_clip(tmp_path, "gif", n=61, fps=60.0)
    delays = gif_delays(out)
    assert len(delays) == 31  # frames 0, 2, ..., 60 at 30 fps
    assert delays[:6] == [30, 40, 30, 30, 40, 30]
    assert sum(delays) == 1020  # 61 / 60 s = 1.0167 s, to the centisecond
    assert probe(out)["frames"] == 31


def test_gif_palette_keeps_gradients_smooth(tmp_path: Path) -> None:
    # 64 x 48 x 64 levels is more colours than a palette holds: dithering keeps the mean right.
    y, x = np.mgrid[0:H, 0:W]
    frame = np.dstack([x * 4, y * 5, 255 - x * 2]).astype(np.uint8)
    out = tmp_path / "grad.gif"
    with open_writer(out, W, H, FPS, None, ExportOptions(format="gif")) as w:
        for _ in range(4):
            w.write(frame)
    back = next(decode_rgba(out))[:, :, :3].astype(float)
    assert np.abs(back - frame).mean() < 4.0
    blur = lambda a: a.reshape(H // 8, 8, W // 8, 8, 3).mean(axis=(1, 3))  # noqa: E731
    assert np.abs(blur(back) - blur(frame.astype(float))).max() < 3.0
    frames = list(decode_rgba(out))
    assert all(np.array_equal(frames[0], f) for f in frames)  # ordered dither: no crawling


# --------------------------------------------------------------------------- options and failures


def test_format_facts_come_from_the_writers() -> None:
    assert alpha_formats() == list(ALPHA_FORMATS)
    assert [n for n in WRITERS if format_info(n).browser_playable] == ["mp4", "webm"]
    assert [n for n in WRITERS if not format_info(n).has_audio] == ["gif"]
    assert [n for n in WRITERS if not format_info(n).has_video] == ["wav"]
    assert {p: format_for_path(p) for p in ("a.mp4", "b.M4V", "c.webm", "d.mov", "e.gif", "f.wav", "frames")} == {
        "a.mp4": "mp4", "b.M4V": "mp4", "c.webm": "webm", "d.mov": "mov", "e.gif": "gif", "f.wav": "wav",
        "frames": "png",
    }
    with pytest.raises(InvalidOption, match=r"\.avi"):
        format_for_path("clip.avi")
    assert format_info("png").folder and format_info("mp4").output_name("hi") == "hi.mp4"


def test_registry_has_every_format() -> None:
    assert set(WRITERS) == {"mp4", "webm", "mov", "gif", "png", "wav"}
    for fmt, target in WRITERS.items():
        module, _, name = target.partition(":")
        cls = getattr(__import__(module, fromlist=[name]), name)
        assert issubclass(cls, BaseWriter)
        assert cls.supports_alpha is (fmt in ALPHA_FORMATS)


@pytest.mark.parametrize("fmt", ["mp4", "gif", "wav"])
def test_alpha_is_refused_where_it_cannot_go(fmt: str) -> None:
    with pytest.raises(InvalidOption, match="transparency"):
        ExportOptions(format=fmt, alpha=True)
    with pytest.raises(InvalidOption, match="transparency"):
        dataclasses.replace(ExportOptions(format="webm", alpha=True), format=fmt)


def test_quality_presets_and_crf_override() -> None:
    assert x264_crf(ExportOptions()) == 18  # the long-standing MP4 default is unchanged
    assert x264_crf(ExportOptions(crf=23)) == 23
    assert vp9_crf(ExportOptions(format="webm", quality="archive")) == PRESETS["archive"].vp9_crf
    assert [PRESETS[q].x264_crf for q in ("web", "social", "archive")] == sorted(
        (PRESETS[q].x264_crf for q in ("web", "social", "archive")), reverse=True
    )
    with pytest.raises(InvalidOption, match="crf"):
        ExportOptions(crf=70)


@pytest.mark.parametrize("fmt", ["webm", "mov", "gif", "png", "wav"])
def test_exception_inside_with_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(RuntimeError, match="render failed"):
        with open_writer(tmp_path / NAMES[fmt], W, H, FPS, tone(), ExportOptions(format=fmt)) as w:
            for _ in range(10):
                w.write(pattern())
            raise RuntimeError("render failed")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt", ["webm", "mov", "gif", "png"])
def test_no_frames_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(ValueError, match="no frames"):
        with open_writer(tmp_path / NAMES[fmt], W, H, FPS, tone(), ExportOptions(format=fmt)):
            pass
    assert listing(tmp_path) == []


def test_png_sequence_replaces_only_its_own_folder(tmp_path: Path) -> None:
    out = write_clip(tmp_path, "png", n=5)
    write_clip(tmp_path, "png", n=3)  # an earlier sequence is replaced
    assert probe(out)["frames"] == 3 and listing(tmp_path) == ["clip"]
    with pytest.raises(RuntimeError):
        with open_writer(out, W, H, FPS, None, ExportOptions(format="png")) as w:
            w.write(pattern())
            raise RuntimeError("boom")
    assert probe(out)["frames"] == 3  # a failed export keeps the previous one
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(InvalidOption, match="already exists"):
        open_writer(other, W, H, FPS, None, ExportOptions(format="png"))
    assert listing(other) == ["holiday.jpg"]
    assert listing(tmp_path) == ["clip", "photos"]


def test_png_rgb_frames_stay_rgb(tmp_path: Path) -> None:
    out = tmp_path / "rgb"
    with open_writer(out, W, H, FPS, None, ExportOptions(format="png")) as w:
        w.write(pattern(alpha=False))
    info = probe(out)
    assert info["pix_fmt"] == "rgb24" and info["alpha"] is False and info["audio_codec"] is None
    assert listing(out) == ["frame_000001.png", "sequence.json"]


def test_wav_needs_audio_and_ignores_frames(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match="needs audio"):
        open_writer(tmp_path / "a.wav", W, H, FPS, None, ExportOptions(format="wav"))
    out = tmp_path / "a.wav"
    with open_writer(out, W, H, FPS, tone(0.4), ExportOptions(format="wav")):
        pass  # no frames is fine for audio-only
    info = probe(out)
    assert info["video_codec"] is None and info["audio_duration"] == pytest.approx(0.4, abs=1e-4)
    assert listing(tmp_path) == ["a.wav"]


# --------------------------------------------------------------------------- subtitles

SCRIPT = "Hello there, my friend. This is a longer sentence that needs two lines on screen to fit. Bye!"
GOLDEN_SRT = """1
00:00:00,500 --> 00:00:01,650
Hello there, my friend.

2
00:00:02,100 --> 00:00:05,560
This is a longer sentence that
needs two lines on screen to fit.

3
00:00:06,010 --> 00:00:07,010
Bye!
"""
GOLDEN_VTT = """WEBVTT

00:00:00.500 --> 00:00:01.650
Hello there, my friend.

00:00:02.100 --> 00:00:05.560
This is a longer sentence that
needs two lines on screen to fit.

00:00:06.010 --> 00:00:07.010
Bye!
"""


def aligned_speech() -> Speech:
    """SCRIPT with word times as forced alignment gives them (lower case, no punctuation)."""
    words, t = [], 0.5
    for tok in script_words(SCRIPT):
        d = 0.1 + 0.03 * len(tok)
        words.append(Word(tok.lower().strip(",.!"), round(t, 3), round(t + d, 3)))
        t += d + 0.05 + (0.4 if tok[-1] in ".!" else 0.0)
    return Speech(audio=AudioClip(np.zeros(8 * 16000, np.float32), 16000), words=tuple(words), text=SCRIPT)


def test_srt_and_vtt_golden(tmp_path: Path) -> None:
    cues = cues_from_speech(aligned_speech())
    assert to_srt(cues) == GOLDEN_SRT
    assert to_vtt(cues) == GOLDEN_VTT
    write_srt(cues, tmp_path / "a.srt")
    write_vtt(cues, tmp_path / "a.vtt")
    assert (tmp_path / "a.srt").read_text(encoding="utf-8") == GOLDEN_SRT
    assert (tmp_path / "a.vtt").read_text(encoding="utf-8") == GOLDEN_VTT
    assert listing(tmp_path) == ["a.srt", "a.vtt"]


def test_vtt_escapes_markup() -> None:
    assert to_vtt([Cue(0.0, 1.0, ("A <b> & c",))]).endswith("A &lt;b&gt; &amp; c\n")


def test_cue_limits_on_long_text() -> None:
    text = " ".join(["word"] * 3 + ["extraordinarily"] * 4 + ["and", "so", "on"] * 12)
    tokens = script_words(text)
    words = [Word(t, i * 0.3, i * 0.3 + 0.25) for i, t in enumerate(tokens)]
    cues = make_cues(words)
    assert " ".join(" ".join(c.lines) for c in cues) == text
    for c in cues:
        assert len(c.lines) <= 2 and all(len(line) <= 42 for line in c.lines)
        assert c.end - c.start <= 6.0 + 1e-9
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))


def test_words_from_phoneme_runs() -> None:
    def ph(sym: str, a: float, b: float) -> Phoneme:
        return Phoneme(sym, a, b)

    phones = (
        ph("_", 0.0, 0.2), ph("p", 0.2, 0.3), ph("i", 0.3, 0.5), ph("_", 0.5, 0.55),
        ph("b", 0.55, 0.6), ph("ɔ", 0.6, 0.8), ph("t", 0.8, 0.9), ph("_", 0.9, 0.95),
        ph("ɐ", 0.95, 1.0), ph("_", 1.0, 1.1), ph("m", 1.1, 1.2), ph("æ", 1.2, 1.4), ph("p", 1.4, 1.5),
        ph("_", 1.5, 2.0),
    )  # fmt: skip
    speech = Speech(audio=AudioClip(np.zeros(32000, np.float32), 16000), phonemes=phones, text="Pete bought a map.")
    words = timed_words(speech)
    assert [(w.text, w.start, w.end) for w in words] == [
        ("Pete", 0.2, 0.5), ("bought", 0.55, 0.9), ("a", 0.95, 1.0), ("map.", 1.1, 1.5),
    ]  # fmt: skip
    assert cues_from_speech(speech) == [Cue(0.2, 1.5, ("Pete bought a map.",))]


def test_words_matched_to_runs_when_tts_joins_or_splits_them() -> None:
    # "I am" spoken as one run, "1990" as two ("nineteen hundred | ninety"); pauses at punctuation.
    runs = [(0.0, 0.4, 4), (0.8, 1.0, 3), (1.05, 1.1, 1), (1.15, 1.5, 5), (1.9, 2.7, 13), (2.75, 3.1, 6)]
    words = align_to_runs(["Hello!", "I", "am", "a", "cat.", "1990"], runs)
    assert words is not None
    got = [(w.text, round(w.start, 3), round(w.end, 3)) for w in words]
    assert [g[0] for g in got] == ["Hello!", "I", "am", "a", "cat.", "1990"]
    assert got[0][1:] == (0.0, 0.4) and got[3][1:] == (1.05, 1.1) and got[4][1:] == (1.15, 1.5)
    assert got[1][1] == 0.8 and got[2][2] == 1.0 and got[1][2] == got[2][1]  # "I am" share one run
    assert got[5][1:] == (1.9, 3.1)  # "1990" covers both runs


def test_no_cue_break_after_abbreviation() -> None:
    words = [Word(t, i * 0.4, i * 0.4 + 0.3) for i, t in enumerate(["Ask", "Dr.", "Smith.", "Now."])]
    assert [c.text for c in make_cues(words)] == ["Ask Dr. Smith.", "Now."]


def test_words_spread_when_runs_do_not_match() -> None:
    words = spread_words(["one", "two", "three", "four"], [(0.0, 1.0), (2.0, 3.0)])
    assert [w.text for w in words] == ["one", "two", "three", "four"]
    assert words[0].start == pytest.approx(0.0) and words[-1].end == pytest.approx(3.0)
    for w in words:  # never inside the pause
        assert not (1.0 < w.start < 2.0) and w.end >= w.start
    assert all(a.start < b.start for a, b in zip(words, words[1:]))


def test_words_from_audio_energy_without_timing() -> None:
    rate = 16000
    x = np.zeros(3 * rate, np.float32)
    x[int(0.5 * rate) : int(1.0 * rate)] = 0.3
    x[int(2.0 * rate) : int(2.5 * rate)] = 0.3
    speech = Speech(audio=AudioClip(x, rate), phonemes=None, text="Hi there")
    words = timed_words(speech)
    assert [(w.text, round(w.start, 2), round(w.end, 2)) for w in words] == [("Hi", 0.5, 1.0), ("there", 2.0, 2.5)]


def test_burn_in_touches_only_the_bottom() -> None:
    frame = np.full((240, 320, 3), 90, np.uint8)
    cues = [Cue(1.0, 2.0, ("Hello there,", "my friend."))]
    assert burn_in(frame, cues, 0.5) is frame  # no cue: untouched, no copy
    out = burn_in(frame, cues, 1.5)
    assert np.array_equal(frame, np.full_like(frame, 90))  # the input is not modified
    changed = np.any(out != frame, axis=2)
    rows = np.flatnonzero(changed.any(axis=1))
    assert rows.size and rows.min() >= 240 * 0.6  # only the bottom area
    assert (out[changed] > 200).all(axis=1).sum() > 50  # white letters
    assert (out[changed] < 30).all(axis=1).sum() > 50  # black outline
    rgba = burn_in(np.zeros((240, 320, 4), np.uint8), cues, 1.5)
    assert rgba[..., 3].max() == 255 and rgba[:140, :, 3].max() == 0


def test_open_writer_with_subtitles(tmp_path: Path) -> None:
    speech = aligned_speech()
    opts = ExportOptions(format="webm", subtitles="srt")
    with pytest.raises(InvalidOption, match="script"):
        open_writer(tmp_path / "s.webm", W, H, FPS, None, opts)
    with open_writer(tmp_path / "s.webm", W, H, FPS, None, opts, speech=speech) as w:
        assert isinstance(w, SubtitledWriter)
        for _ in range(5):
            w.write(pattern())
    assert (tmp_path / "s.srt").read_text(encoding="utf-8") == GOLDEN_SRT
    burn = dataclasses.replace(opts, format="mp4", subtitles="burn")
    with open_writer(tmp_path / "b.mp4", 320, 240, FPS, None, burn, speech=speech) as w:
        for _ in range(25):  # 0.0 .. 0.96 s: the first cue starts at 0.5 s
            w.write(np.full((240, 320, 3), 90, np.uint8))
    frames = [f[:, :, :3].astype(int) for f in decode_rgba(tmp_path / "b.mp4")]
    assert np.abs(frames[5] - 90).max() < 8 and np.abs(frames[20] - 90).max() > 100
    assert listing(tmp_path) == ["b.mp4", "s.srt", "s.webm"]
    with pytest.raises(InvalidOption, match="WAV"):
        ExportOptions(format="wav", subtitles="burn")
