"""Background replacement end to end: the matte moves with the warp, files carry it."""

from __future__ import annotations

import av
import numpy as np
import pytest

import pipeline
from pipeline import timing
from pipeline.errors import InvalidOption
from pipeline.export import probe, read_alpha
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions


def first_frames(path, n=1):
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                return out
    return out


def test_colour_background_replaces_the_backdrop_and_keeps_the_face(avatar, speech, tmp_path):
    bg = BackgroundOptions(mode="color", color="#2060c0", light_wrap=0.0, color_match=0.0)
    res = pipeline.render_to_file(avatar, speech, tmp_path / "c.mp4", RenderOptions(head_motion=0), background=bg)
    info = probe(res.path)
    assert info["frames"] == timing.frame_count(speech.duration, 25)
    f = first_frames(res.path)[0].astype(int)
    corner = f[5:40, 380:500].reshape(-1, 3).mean(0)  # backdrop right of the head
    assert np.abs(corner - [0x20, 0x60, 0xC0]).max() < 12
    x0, y0, x1, y1 = avatar.face.box
    face = f[y0 + 10 : y1 - 30, x0 + 10 : x1 - 10].reshape(-1, 3).mean(0)
    src = avatar.image[y0 + 10 : y1 - 30, x0 + 10 : x1 - 10].reshape(-1, 3).mean(0)
    assert np.abs(face - src).max() < 15


def test_transparent_webm_has_the_person_matte(avatar, speech, tmp_path):
    res = pipeline.render_to_file(
        avatar, speech, tmp_path / "t.webm", RenderOptions(), ExportOptions(format="webm"),
        background=BackgroundOptions(mode="transparent"),
    )
    assert probe(res.path)["alpha"] is True
    a = read_alpha(res.path).astype(int)
    x0, y0, x1, y1 = avatar.face.box
    assert a[(y0 + y1) // 2, (x0 + x1) // 2] > 240  # face opaque
    assert a[:30, 420:].mean() < 20  # backdrop transparent
    assert 20 < a.mean() < 220


def test_transparent_needs_an_alpha_format(avatar, speech, tmp_path):
    with pytest.raises(InvalidOption, match="alpha"):
        pipeline.render_to_file(avatar, speech, tmp_path / "t.mp4", background=BackgroundOptions(mode="transparent"))
    assert not (tmp_path / "t.mp4").exists()


@pytest.mark.parametrize("framing,size", [("portrait", (720, 1280)), ("square", (720, 720)), ("landscape", (1280, 720))])
def test_framing_sets_the_output_shape(avatar, speech, tmp_path, framing, size):
    bg = BackgroundOptions(mode="color", framing=framing, resolution="720p")
    res = pipeline.render_to_file(avatar, speech, tmp_path / f"{framing}.mp4", background=bg)
    info = probe(res.path)
    assert (info["width"], info["height"]) == size == res.size
