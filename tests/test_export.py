"""pipeline.export: MP4 writer timing, colour, padding, atomic output; probe; open_writer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InvalidOption
from pipeline.export import open_writer
from pipeline.export.mp4 import Mp4Writer, probe
from pipeline.media.audio import load_audio
from pipeline.options import ExportOptions
from pipeline.types import AudioClip

FAST = ExportOptions(preset="ultrafast")


def tone_clip(seconds: float, rate: int = 44100, amp: float = 0.3, onset: float = 0.0) -> AudioClip:
    t = np.arange(int(round(seconds * rate))) / rate
    x = amp * np.sin(2 * np.pi * 440.0 * t)
    x[t < onset] = 0.0
    return AudioClip(x.astype(np.float32), rate)


def moving_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.zeros((height, width, 3), np.uint8)
        f[..., 0] = (np.arange(width) * 4 + i * 3) % 256
        f[..., 1] = 90
        f[..., 2] = (np.arange(height)[:, None] * 5) % 256
        frames.append(f)
    return frames


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_mp4_frames_audio_and_durations(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    audio = tone_clip(2.0)
    with Mp4Writer(out, 64, 48, 25.0, audio, FAST, title="Hello") as w:
        for f in moving_frames(50):
            w.write(f)
        assert w.frames_written == 50
    assert listing(tmp_path) == ["clip.mp4"]

    info = probe(out)
    assert info["video_codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (64, 48)
    assert info["frames"] == 50
    assert info["fps"] == 25.0 and info["fps_rational"] == "25/1"
    assert info["audio_codec"] == "aac"
    assert info["audio_rate"] == 44100 and info["audio_channels"] == 1
    frame = 1 / 25
    assert abs(info["video_duration"] - 2.0) <= frame
    assert abs(info["audio_duration"] - 2.0) <= frame
    assert abs(info["duration"] - 2.0) <= frame
    assert info["color_space"] == "bt709" and info["color_range"] == "tv"
    assert info["faststart"] is True
    assert info["title"] == "Hello"
    assert info["comment"] == "Avatar Studio"
    assert len(decode_frames(out)) == 50


def test_audio_is_not_shifted_or_stretched(tmp_path: Path) -> None:
    out = tmp_path / "sync.mp4"
    audio = tone_clip(2.0, rate=48000, onset=0.5)
    with Mp4Writer(out, 32, 32, 25.0, audio, FAST) as w:
        for f in moving_frames(50, 32, 32):
            w.write(f)
    back = load_audio(out)
    assert back.rate == 48000
    assert len(back.samples) == len(audio.samples)  # encoder delay and end padding both removed
    onset = np.argmax(np.abs(back.samples) > 0.15) / 48000
    assert onset == pytest.approx(0.5, abs=0.005)


def test_ntsc_rate_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "ntsc.mp4"
    with Mp4Writer(out, 32, 32, 29.97, None, FAST) as w:
        for f in moving_frames(30, 32, 32):
            w.write(f)
    info = probe(out)
    assert info["fps_rational"] == "30000/1001"
    assert info["frames"] == 30
    assert info["video_duration"] == pytest.approx(30 * 1001 / 30000, abs=1e-3)
    assert info["audio_codec"] is None


def test_audio_rate_aac_cannot_carry_is_resampled(tmp_path: Path) -> None:
    out = tmp_path / "odd_rate.mp4"
    with Mp4Writer(out, 32, 32, 25.0, tone_clip(1.0, rate=37800), FAST) as w:
        for f in moving_frames(25, 32, 32):
            w.write(f)
    info = probe(out)
    assert info["audio_rate"] == 48000
    assert abs(info["audio_duration"] - 1.0) <= 1 / 25


def test_odd_size_is_padded_with_edge_pixels(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    frame = np.zeros((49, 65, 3), np.uint8)
    frame[:, :] = (40, 160, 90)
    frame[:, -8:] = (220, 220, 220)  # a bright right edge that the padding must repeat
    with Mp4Writer(out, 65, 49, 25.0, None, FAST) as w:
        for _ in range(5):
            w.write(frame)
    info = probe(out)
    assert (info["width"], info["height"]) == (66, 50)
    decoded = decode_frames(out)[0].astype(int)
    assert np.abs(decoded[:, 65] - 220).mean() < 6  # padded column repeats the edge
    assert np.abs(decoded[49, :40] - np.array([40, 160, 90])).mean() < 6  # padded row too


@pytest.mark.parametrize("channels", [3, 4])
def test_flat_colour_is_preserved(tmp_path: Path, channels: int) -> None:
    out = tmp_path / "flat.mp4"
    colour = (200, 50, 30, 128)[:channels]
    frame = np.empty((48, 64, channels), np.uint8)
    frame[:] = colour
    with Mp4Writer(out, 64, 48, 25.0, None, ExportOptions()) as w:
        for _ in range(3):
            w.write(frame)
    for decoded in decode_frames(out):
        # BT.709 in, BT.709 tagged: a BT.601 mix-up would be off by ~10-15 levels here.
        err = np.abs(decoded.astype(int) - np.array(colour[:3])).mean()
        assert err < 3.0


def test_exception_inside_with_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="render failed"):
        with Mp4Writer(out, 64, 48, 25.0, tone_clip(1.0), FAST) as w:
            for f in moving_frames(10):
                w.write(f)
            raise RuntimeError("render failed")
    assert listing(tmp_path) == []


def test_failed_close_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "empty.mp4"
    with pytest.raises(ValueError, match="no frames"):
        with Mp4Writer(out, 64, 48, 25.0, None, FAST):
            pass
    assert listing(tmp_path) == []


def test_wrong_frame_shape_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "shape.mp4"
    with pytest.raises(ValueError, match="shape"):
        with Mp4Writer(out, 64, 48, 25.0, None, FAST) as w:
            w.write(np.zeros((48, 64, 3), np.uint8))
            w.write(np.zeros((64, 48, 3), np.uint8))
    assert listing(tmp_path) == []


def test_existing_file_is_replaced_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"previous render")
    with pytest.raises(RuntimeError):
        with Mp4Writer(out, 32, 32, 25.0, None, FAST) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert out.read_bytes() == b"previous render"
    with Mp4Writer(out, 32, 32, 25.0, None, FAST) as w:
        w.write(np.zeros((32, 32, 3), np.uint8))
    assert probe(out)["frames"] == 1
    assert listing(tmp_path) == ["keep.mp4"]


@pytest.mark.parametrize(
    "kwargs",
    [dict(width=0), dict(height=9000), dict(fps=0.0), dict(fps=float("nan"))],
    ids=["width0", "height9000", "fps0", "fpsnan"],
)
def test_invalid_settings(tmp_path: Path, kwargs: dict) -> None:
    args = dict(path=tmp_path / "x.mp4", width=32, height=32, fps=25.0)
    args.update(kwargs)
    with pytest.raises(InvalidOption):
        Mp4Writer(**args)
    assert listing(tmp_path) == []


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match="does not exist"):
        Mp4Writer(tmp_path / "nope" / "x.mp4", 32, 32, 25.0)


def test_open_writer_by_format(tmp_path: Path) -> None:
    with open_writer(tmp_path / "a.mp4", 32, 32, 25.0, None, FAST, title="t") as w:
        assert isinstance(w, Mp4Writer)
        w.write(np.zeros((32, 32, 3), np.uint8))
    assert probe(tmp_path / "a.mp4")["title"] == "t"
    with pytest.raises(InvalidOption, match="avi"):
        open_writer(tmp_path / "a.avi", 32, 32, 25.0, None, dataclasses.replace(FAST, format="avi"))


def test_small_frames_are_encoded_on_one_x264_thread(tmp_path: Path) -> None:
    from pipeline.export.quality import SINGLE_THREAD_PIXELS, x264_threads

    assert x264_threads(512, 512) == "1" and x264_threads(768, 768) == "1"
    assert x264_threads(1024, 1024) == "0" and x264_threads(1280, 720) == "0"  # x264's own choice
    settings = {}
    for w, h in [(64, 48), (1024, 1024)]:
        out = tmp_path / f"{w}.mp4"
        with Mp4Writer(out, w, h, 25.0, None, FAST) as wr:
            for f in moving_frames(3, w, h):
                wr.write(f)
        sei = out.read_bytes()
        k = sei.index(b"x264 - core")
        settings[w] = sei[k : sei.index(b"\x00", k)].decode("ascii", "replace")  # the options x264 writes in
    assert " threads=1 " in settings[64] and " threads=1 " not in settings[1024]
    assert 64 * 48 <= SINGLE_THREAD_PIXELS < 1024 * 1024
