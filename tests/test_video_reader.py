"""pipeline.media.video: the one video reader, on tiny clips written here with PyAV.

Each frame of a clip is one flat grey level (20 apart), so the level read back names the
frame: every check compares which frame came back, not approximate pixels."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.errors import InvalidOption, UnsupportedMedia
from pipeline.media.video import VideoReader, read_frames

W, H = 64, 48


def level(k: int) -> int:
    return 10 + 20 * k


def frame_of(image: np.ndarray) -> int:
    """Which frame (k) a flat grey image is."""
    return int(round((float(image[..., :3].mean()) - 10) / 20))


def write_clip(
    path: Path,
    n: int,
    *,
    fps: int = 10,
    pts_ms: list[int] | None = None,
    gop: int = 12,
    audio: bool = False,
    bframes: bool = False,
) -> Path:
    """n flat grey frames; constant ``fps``, or the given presentation times (ms, in MKV)."""
    # lossless (qp 0) has no B-frames; with them, frames are stored out of presentation order
    options = {"crf": "1", "bf": "3"} if bframes else {"qp": "0", "preset": "ultrafast"}
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={**options, "g": str(gop)})
        s.width, s.height, s.pix_fmt = W, H, "yuv444p"
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
            s.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=16000) if audio else None
        for k in range(n):
            f = av.VideoFrame.from_ndarray(np.full((H, W, 3), level(k), np.uint8), format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[k], Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
        if a is not None:
            samples = np.zeros((1, 16000 * n // fps), np.float32)
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, 0
            c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "cfr": write_clip(d / "cfr.mp4", 12),
        "vfr": write_clip(d / "vfr.mkv", 8, pts_ms=[0, 40, 100, 120, 200, 330, 340, 420]),
        "long": write_clip(d / "long.mp4", 12, fps=2, gop=3),  # 6 s, a keyframe every 1.5 s
        "bframes": write_clip(d / "bframes.mp4", 12, fps=2, gop=6, bframes=True),
        "audio": write_clip(d / "audio.mp4", 10, audio=True),
    }


def test_cfr_clip_metadata_and_frames(clips):
    with VideoReader(clips["cfr"]) as video:
        assert video.size == (W, H) and video.fps == 10.0
        assert video.frame_count == 12 and video.duration == pytest.approx(1.2)
        assert not video.is_vfr and not video.alpha and not video.has_audio and video.audio_start is None
        assert video.rotation == 0 and video.codec == "h264"
        frames = list(video)
    assert [f.index for f in frames] == list(range(12))
    np.testing.assert_allclose([f.time for f in frames], np.arange(12) / 10.0, atol=1e-9)
    np.testing.assert_allclose([f.duration for f in frames], 0.1, atol=1e-9)
    assert [frame_of(f.image) for f in frames] == list(range(12))
    img = frames[0].image
    assert img.dtype == np.uint8 and img.shape == (H, W, 3)
    assert np.abs(img.astype(int) - level(0)).max() <= 1


def test_iterating_again_starts_over(clips):
    with VideoReader(clips["cfr"]) as video:
        first = [f.index for f in video]
        again = [frame_of(f.image) for f in video]
        later = [f.index for f in video.frames(start=0.95)]
    assert first == again == list(range(12))
    assert later == [9, 10, 11]


def test_vfr_frames_keep_their_presentation_times(clips):
    pts = np.array([0, 40, 100, 120, 200, 330, 340, 420]) / 1000.0
    with VideoReader(clips["vfr"]) as video:
        assert video.is_vfr and video.frame_count == 8
        np.testing.assert_allclose(video.timestamps, pts, atol=1e-9)
        frames = list(video)
        assert video.duration == pytest.approx(frames[-1].end)
    np.testing.assert_allclose([f.time for f in frames], pts, atol=1e-9)
    np.testing.assert_allclose([f.duration for f in frames[:-1]], np.diff(pts), atol=1e-9)
    assert frames[-1].duration > 0
    assert [frame_of(f.image) for f in frames] == list(range(8))


def test_frame_at_seeks_both_ways_and_loops(clips):
    pts = [0, 40, 100, 120, 200, 330, 340, 420]
    with VideoReader(clips["vfr"]) as video:
        end = video.duration
        for t in [0.0, 0.05, 0.39, 0.1, 0.0, 0.2, 0.119, 0.45, 0.33, 0.335, -1.0]:
            want = max(0, int(np.searchsorted(pts, max(t, 0.0) * 1000 + 1e-6, side="right")) - 1)
            got = video.frame_at(t)
            assert got.index == want and frame_of(got.image) == want, t
        for t in [end + 0.05, 2 * end + 0.2, 3 * end]:
            looped = (t % end) * 1000
            want = max(0, int(np.searchsorted(pts, looped + 1e-6, side="right")) - 1)
            assert video.frame_at(t, loop=True).index == want, t
        assert video.frame_at(end + 5.0).index == 7  # without loop: the last frame stays


@pytest.mark.parametrize("clip", ["long", "bframes"])
def test_seeking_in_a_long_clip_lands_on_the_right_frames(clips, clip):
    if clip == "bframes":
        with av.open(str(clips[clip])) as c:
            stored = [p.pts for p in c.demux(c.streams.video[0]) if p.pts is not None]
        assert stored != sorted(stored)  # the clip really has B-frames
    rng = np.random.default_rng(3)
    times = list(rng.uniform(0, 6.2, 25)) + [5.9, 0.2, 4.4, 4.6, 1.4, 1.6]
    with VideoReader(clips[clip]) as video:
        assert video.duration == pytest.approx(6.0)
        for t in times:
            got = video.frame_at(t)
            want = min(11, int(np.floor(t * 2 + 1e-9)))
            assert got.index == want and frame_of(got.image) == want and got.time == pytest.approx(want / 2), t


def test_resample_to_a_constant_rate(clips):
    with VideoReader(clips["vfr"]) as video:
        out = list(video.resample(25.0))
        assert len(out) == round(video.duration * 25)
        pts = [0, 40, 100, 120, 200, 330, 340, 420]
        for f in out:
            assert f.time == pytest.approx(f.index / 25.0)
            want = int(np.searchsorted(pts, f.time * 1000 + 1e-6, side="right")) - 1
            assert frame_of(f.image) == want, f.time
        looped = list(video.resample(25.0, duration=2 * video.duration, loop=True))
        assert [frame_of(f.image) for f in looped[len(out):]] == [frame_of(f.image) for f in out]


def test_audio_start_is_reported(clips):
    with VideoReader(clips["audio"]) as video:
        assert video.has_audio and video.audio_start is not None
        assert video.frame_count == 10


def test_rgba_reads_the_vp9_alpha_plane(tmp_path):
    path = tmp_path / "alpha.webm"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=10, options={"deadline": "realtime", "lossless": "1"})
        s.width, s.height, s.pix_fmt = W, H, "yuva420p"
        for k in range(3):
            rgba = np.full((H, W, 4), level(k), np.uint8)
            rgba[:, : W // 2, 3] = 0
            rgba[:, W // 2 :, 3] = 255
            c.mux(s.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")))
        c.mux(s.encode(None))
    with VideoReader(path, format="rgba") as video:
        assert video.alpha
        frames = list(video)
    assert len(frames) == 3 and frames[0].image.shape == (H, W, 4)
    alpha = frames[1].image[..., 3]
    assert alpha[:, : W // 2 - 4].max() <= 2 and alpha[:, W // 2 + 4 :].min() >= 253
    np.testing.assert_allclose([f.time for f in frames], [0.0, 0.1, 0.2], atol=1e-9)
    rgb = list(read_frames(path))
    assert rgb[0].shape == (H, W, 3) and len(rgb) == 3
    assert len(list(read_frames(path, format="rgba", limit=2))) == 2


def test_clear_errors(tmp_path, clips):
    with pytest.raises(UnsupportedMedia, match="not found"):
        VideoReader(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(UnsupportedMedia, match="junk.mp4"):
        VideoReader(junk)
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as c:
        a = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        c.mux(a.encode(f))
        c.mux(a.encode(None))
    with pytest.raises(UnsupportedMedia, match="no video"):
        VideoReader(wav)
    with pytest.raises(InvalidOption):
        VideoReader(clips["cfr"], format="gray")  # type: ignore[arg-type]
