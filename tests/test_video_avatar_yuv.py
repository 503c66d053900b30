"""Clip renders hand the encoder the clip's own decoded YUV planes with only the redrawn lower
face converted in (pipeline.export.yuv): the planes must describe exactly the RGB frame, be
dropped by anything that makes a new picture, and give the file a whole-frame conversion gives."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import pipeline  # noqa: E402
from pipeline.export import open_writer  # noqa: E402
from pipeline.export.base import ColorConverter  # noqa: E402
from pipeline.export.yuv import I420Patcher, YuvFrame, i420_of, planes, to_i420, with_i420  # noqa: E402
from pipeline.face.clip import CACHE_ENV, open_frames  # noqa: E402
from pipeline.media.clip_frames import BlockReader, BlockWriter  # noqa: E402
from pipeline.options import ExportOptions, RenderOptions  # noqa: E402
from pipeline.types import AudioClip  # noqa: E402

LOSSLESS = ExportOptions(preset="ultrafast", crf=0)


def picture(h: int = 120, w: int = 160, seed: int = 0, noise: float = 12.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
    return np.clip(base + rng.normal(0, noise, (h, w, 3)) + 20 * np.sin(xx / 7.0 + seed)[..., None], 0, 255).astype(np.uint8)


def decode_i420(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


@pytest.mark.parametrize("rect", [(61, 33, 97, 80), (0, 0, 31, 17), (131, 99, 160, 120), (5, 7, 6, 8), (0, 0, 160, 120)])
def test_patched_planes_equal_a_whole_frame_conversion(rect):
    before = picture()
    after = before.copy()
    x0, y0, x1, y1 = rect
    after[y0:y1, x0:x1] = picture(seed=1)[y0:y1, x0:x1]
    patcher = I420Patcher()
    patched = patcher(to_i420(before), after, rect)
    assert np.array_equal(patched, to_i420(after))
    # outside the rectangle (and its chroma reach) the source's planes are kept as they were
    y, _, _ = planes(patched)
    y_before, _, _ = planes(to_i420(before))
    keep = np.ones(y.shape, bool)
    keep[max(0, y0 - 6) : y1 + 6, max(0, x0 - 6) : x1 + 6] = False
    assert np.array_equal(y[keep], y_before[keep])


def test_planes_travel_only_with_the_frame_that_has_them():
    rgb = picture()
    frame = with_i420(rgb.copy(), to_i420(rgb))
    assert i420_of(frame) is not None and isinstance(frame, YuvFrame)
    with pytest.raises(ValueError):
        frame[0, 0] = 0  # read-only: the planes would no longer describe it
    for derived in (frame.copy(), frame[:, :], frame + 0, np.array(frame), frame[..., :3]):
        assert i420_of(derived) is None
    with pytest.raises(ValueError):
        with_i420(rgb, to_i420(rgb)[:-2])


def test_writer_encodes_the_carried_planes(tmp_path):
    rgb = picture()
    other = to_i420(picture(seed=5))  # deliberately not the RGB's picture: shows which one is encoded
    conv = ColorConverter("yuv420p")
    assert np.array_equal(conv(with_i420(rgb.copy(), other)).to_ndarray(), other)
    assert np.array_equal(conv(rgb).to_ndarray(), to_i420(rgb))
    out = tmp_path / "planes.mp4"
    audio = AudioClip(np.zeros(16000, np.float32), 16000)
    with open_writer(out, 160, 120, 25.0, audio, LOSSLESS) as wr:
        wr.write(with_i420(rgb.copy(), other))
        wr.write(rgb)
    first, second = decode_i420(out)
    assert np.array_equal(first, other)
    assert np.array_equal(second, to_i420(rgb))


def test_block_store_is_bt709_and_its_planes_are_its_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [picture(seed=s, noise=0.0) for s in range(20)]
    with BlockWriter(path, (160, 120), 25.0, crf=0) as w:
        for f in frames:
            w.write(f)
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert (int(cc.colorspace), int(cc.color_range)) == (1, 1)  # BT.709, limited
    with BlockReader(path, 20, 25.0) as r:
        for i in (0, 7, 19, 3):
            assert np.array_equal(r.i420(i), to_i420(frames[i]))  # lossless store: the writers' conversion
            # decoded with the matrix it was stored with (BT.601: off by up to 34, 6.6 on average)
            assert np.abs(r[i].astype(int) - frames[i]).max() <= 8
            assert np.abs(r[i].astype(int) - frames[i]).mean() < 2.5
            assert not r.i420(i).flags.writeable


@pytest.fixture(scope="module")
def clip_avatar(tmp_path_factory):
    from test_video_avatar_fixtures import make_clip

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("yuv-cache")))
        clip = make_clip(tmp_path_factory.mktemp("yuv-clip") / "presenter.mp4", 2.5, seed=3)
        yield pipeline.prepare_avatar(str(clip.path), fps=25.0)


def test_clip_render_file_equals_whole_frame_conversion(clip_avatar, tmp_path):
    speech = pipeline.synthesize("Hello there, Bob.")
    frames = list(pipeline.RenderSession(clip_avatar, speech, RenderOptions()).frames())
    assert frames and all(i420_of(f) is not None for f in frames)
    with open_frames(clip_avatar.clip) as reader:
        src = reader.i420(0)
    h, w = frames[0].shape[:2]
    assert src.shape == (h * 3 // 2, w)
    paths = {}
    for name, fs in (("planes", frames), ("converted", [np.array(f) for f in frames])):
        paths[name] = tmp_path / f"{name}.mp4"
        with open_writer(paths[name], w, h, 25.0, speech.audio, LOSSLESS) as wr:
            for f in fs:
                wr.write(f)
    a, b = decode_i420(paths["planes"]), decode_i420(paths["converted"])
    assert len(a) == len(b) == len(frames)
    diffs = np.array([np.abs(x.astype(int) - y) for x, y in zip(a, b)])
    assert diffs.max() <= 6  # the clip's planes vs its RGB converted back: rounding only
    assert diffs.mean() < 1.0
    assert (diffs > 2).mean() < 1e-3  # (the new mouth is in both: it is in the RGB frames)


def x264_settings(path: Path) -> str:
    """The options string x264 writes into the stream (its SEI), e.g. '... subme=0 ...'."""
    data = path.read_bytes()
    start = data.find(b"x264 - core")
    assert start >= 0
    return data[start : data.find(b"\x00", start)].decode("latin-1")


def test_preset_auto_is_ultrafast_for_clips_and_veryfast_otherwise(clip_avatar, tmp_path):
    from pipeline.export.quality import for_source, x264_preset

    assert ExportOptions().preset == "auto"
    assert x264_preset(ExportOptions()) == "veryfast"
    assert for_source(ExportOptions(), clip=True).preset == "ultrafast"
    assert for_source(ExportOptions(), clip=False).preset == "veryfast"
    assert for_source(ExportOptions(preset="veryfast"), clip=True).preset == "veryfast"  # a choice is kept
    speech = pipeline.synthesize("Hi Bob.")
    auto = pipeline.render_to_file(clip_avatar, speech, tmp_path / "auto.mp4").path
    chosen = pipeline.render_to_file(clip_avatar, speech, tmp_path / "veryfast.mp4",
                                     export_opts=ExportOptions(preset="veryfast")).path
    assert " subme=0 " in x264_settings(auto) and " crf=18.0 " in x264_settings(auto)  # ultrafast, same CRF
    assert " subme=2 " in x264_settings(chosen) and " crf=18.0 " in x264_settings(chosen)  # veryfast


def test_coarse_mouth_flow_is_visibly_the_full_one():
    """A large face's mouth flow at half resolution (clip renders with mouths >= COARSE_W px):
    the same lip opening, the picture within a pixel's shift of the full-resolution one."""
    import cv2

    from pipeline.engines import warp
    from pipeline.engines.warp_clip import COARSE_W

    avatar = pipeline.prepare_avatar(None)
    scale = 3.0
    image = cv2.resize(avatar.image[..., :3], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    lm = avatar.face.landmarks.copy()
    lm[:, :3] *= scale
    full = warp._prepare_mouth(np.ascontiguousarray(image), lm)
    assert full.W >= COARSE_W
    coarse = warp.coarse_mouth(full)
    x0, y0, x1, y1 = full.field.rect
    poses = [dict(jaw=j, gap=g, teeth=0.3, spread=s, round=r, press=p, tongue=0.1, smile=m)
             for j, g, s, r, p, m in [(0, 0, 0, 0, 1, 0), (0.4, 0.6, 0.2, 0, 0, 0), (0.8, 1, 0, 0.5, 0, 0.3),
                                      (0.2, 0.1, 0, 0.8, 0, 0), (0.6, 0.9, 0.4, 0, 0, 0.6)]]
    for c in poses:
        a, b = image.copy(), image.copy()
        warp._mouth_frame(full, image, a, c)
        warp._mouth_frame(coarse, image, b, c)
        d = np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1])
        assert d.mean() < 0.6, c
        assert (d > 24).mean() < 0.01, c  # only edges (chin, lips) a pixel apart
        moved = np.abs(a[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1]).mean()
        assert c["jaw"] == 0 or moved > 5 * d.mean()  # the pose itself moves far more than the two differ
