"""Matting and compositing: person matte quality on a real photo, temporal stability,
exact compositing maths, framing geometry, background image/video handling, no halo."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from pipeline.errors import InvalidOption
from pipeline.matting import (
    BackgroundOptions,
    Compositor,
    available,
    composite_over,
    create_matter,
    fit_image,
    matte_photo,
    output_size,
    placement,
)
from pipeline.matting.base import Matter
from pipeline.matting.selfie import SelfieMatter


@pytest.fixture(scope="module")
def photo_alpha(astronaut) -> np.ndarray:
    return matte_photo(astronaut)


def _band(alpha: np.ndarray, inside: bool, width: int = 4) -> np.ndarray:
    """Pixels within ``width`` px outside (or inside) the alpha > 0.5 boundary."""
    hard = (alpha > 0.5).astype(np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    if inside:
        return hard.astype(bool) & ~cv2.erode(hard, kernel).astype(bool)
    return cv2.dilate(hard, kernel).astype(bool) & ~hard.astype(bool)


# --- the matter -------------------------------------------------------------------------


def test_registry_creates_the_selfie_matter():
    assert "selfie" in available()
    matter = create_matter("selfie")
    assert isinstance(matter, SelfieMatter) and isinstance(matter, Matter)
    with pytest.raises(InvalidOption):
        create_matter("nope")


def test_photo_matte_covers_the_person_not_the_backdrop(photo_alpha):
    a = photo_alpha
    assert a.dtype == np.float32 and a.shape == (512, 512)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a[150:230, 190:260].mean() > 0.97  # face
    assert a[330:480, 60:250].mean() > 0.97  # torso (orange suit)
    for ys, xs in ((slice(0, 40), slice(380, 512)), (slice(0, 40), slice(330, 420)), (slice(60, 120), slice(420, 500))):
        assert a[ys, xs].mean() < 0.03  # grey backdrop near the top corners
    soft = (a > 0.05) & (a < 0.95)
    assert soft.sum() > 1000, "refined edges should keep fractional alpha (hair, soft edges)"
    assert soft[:130].sum() > 200, "the hair outline should be soft"


def test_refinement_keeps_the_boundary_where_the_segmenter_put_it(astronaut, photo_alpha):
    from pipeline.matting.selfie import _photo_prob

    raw = _photo_prob(astronaut, 0) > 0.5
    refined = photo_alpha > 0.5
    # distance from each refined boundary pixel to the raw boundary
    raw_edge = raw ^ cv2.erode(raw.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    dist = cv2.distanceTransform((~raw_edge).astype(np.uint8), cv2.DIST_L2, 5)
    ref_edge = refined ^ cv2.erode(refined.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    d = dist[ref_edge]
    assert np.median(d) <= 2.0
    assert np.percentile(d, 90) <= 6.0
    assert abs(int(refined.sum()) - int(raw.sum())) < 0.03 * raw.sum()


def test_video_matte_is_steadier_with_temporal_state(astronaut):
    rng = np.random.default_rng(1)
    frames = [
        np.clip(astronaut.astype(np.int16) + rng.normal(0, 6, astronaut.shape).round().astype(np.int16), 0, 255).astype(
            np.uint8
        )
        for _ in range(12)
    ]

    def boiling(matter: SelfieMatter) -> float:
        state, prev, changes = None, None, []
        for f in frames:
            a, state = matter.matte(f, state)
            if prev is not None:
                changes.append(float(np.abs(a - prev).mean()))
            prev = a
        return float(np.mean(changes[3:]))  # after the average has settled

    still = boiling(SelfieMatter(temporal=False))
    steady = boiling(SelfieMatter(temporal=True))
    assert steady < 0.6 * still, (steady, still)


def test_video_matte_state_is_explicit_and_follows_motion(astronaut):
    matter = SelfieMatter()
    a0, s0 = matter.matte(astronaut, None)
    assert a0.shape == astronaut.shape[:2] and a0.dtype == np.float32
    assert s0.frames == 1
    a1, s1 = matter.matte(astronaut, s0)
    assert s1.frames == 2 and s0.frames == 1  # the old state is untouched
    shifted = np.ascontiguousarray(np.roll(astronaut, 60, axis=1))
    a2, _ = matter.matte(shifted, s1)  # a big move: the matte must follow at once
    assert a2[150:230, 250:320].mean() > 0.9
    assert a2[150:230, 250:320].mean() > a1[150:230, 250:320].mean() - 0.1


# --- compositing maths ---------------------------------------------------------------------


def _synthetic(h: int = 64, w: int = 96):
    fg = np.zeros((h, w, 3), np.uint8)
    fg[:] = (200, 40, 90)
    return fg


@pytest.mark.parametrize("value,expect", [(1.0, "fg"), (0.0, "bg"), (0.5, "mean")])
def test_compositing_is_exact_on_flat_inputs(value, expect):
    fg = _synthetic()
    alpha = np.full(fg.shape[:2], value, np.float32)
    opts = BackgroundOptions(mode="color", color="#10e050", light_wrap=0.0, color_match=0.0)
    out = Compositor(opts, (fg.shape[1], fg.shape[0])).apply(fg, alpha, 0)
    bg = np.array([0x10, 0xE0, 0x50], np.float32)
    want = {"fg": fg[0, 0].astype(np.float32), "bg": bg, "mean": (fg[0, 0] + bg) / 2}[expect]
    assert out.shape == fg.shape and out.dtype == np.uint8
    assert np.abs(out.astype(np.float32) - want).max() <= 0.51
    # the plain "over" helper gives the same numbers
    plain = composite_over(fg, alpha, np.broadcast_to(bg.astype(np.uint8), fg.shape))
    assert np.abs(plain.astype(np.float32) - want).max() <= 0.51


def test_transparent_mode_returns_straight_rgba():
    fg = _synthetic()
    alpha = np.tile(np.linspace(0, 1, fg.shape[1], dtype=np.float32), (fg.shape[0], 1))
    comp = Compositor(BackgroundOptions(mode="transparent"), (fg.shape[1], fg.shape[0]))
    out = comp.apply(fg, alpha, 0)
    assert comp.has_alpha and out.shape == fg.shape[:2] + (4,)
    assert np.array_equal(out[..., 3], np.round(alpha * 255).astype(np.uint8))
    visible = out[..., 3] > 0
    assert np.abs(out[..., :3][visible].astype(int) - fg[0, 0]).max() <= 1  # straight, not premultiplied


def test_cached_frames_match_full_recompute(astronaut, photo_alpha):
    """A still matte takes the cached path; its frames equal a from-scratch composite."""
    frame = astronaut.copy()
    frame[300:330, 220:300] = 255 - frame[300:330, 220:300]  # "the mouth moved"
    for mode in ("color", "transparent", "blur"):
        opts = BackgroundOptions(mode=mode, color="#3366aa", shadow=True)
        cached = Compositor(opts, (512, 512))
        cached.apply(astronaut, photo_alpha, 0)
        fast = cached.apply(frame, photo_alpha, 1)
        fresh = Compositor(opts, (512, 512)).apply(frame, photo_alpha, 1)
        assert np.abs(fast.astype(int) - fresh.astype(int)).max() <= 1, mode


def test_matte_in_a_fourth_channel(astronaut, photo_alpha):
    """The warp engine carries the matte as the frame's fourth channel (uint8)."""
    a8 = np.clip(photo_alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    rgba = np.dstack([astronaut, a8])
    opts = BackgroundOptions(mode="color", color="#202020")
    via_channel = Compositor(opts, (512, 512)).apply(rgba, None, 0)
    via_argument = Compositor(opts, (512, 512)).apply(astronaut, a8, 0)
    assert np.array_equal(via_channel, via_argument)
    comp = Compositor(opts, (512, 512))
    comp.apply(rgba, None, 0)
    moved = rgba.copy()
    moved[..., 3] = np.roll(a8, 5, axis=1)  # the head moved: the new matte is used
    out = comp.apply(moved, None, 1)
    assert np.array_equal(out, Compositor(opts, (512, 512)).apply(moved, None, 1))


@pytest.mark.parametrize("mode", ["color", "transparent", "image"])
def test_a_moving_head_redoes_only_its_region(astronaut, photo_alpha, mode, tmp_path):
    """Head motion: the matte changes in the head region only; the composite redone
    there matches a from-scratch composite (up to the colour fields kept from the
    first frame) and is left untouched elsewhere."""
    from PIL import Image

    bg = tmp_path / "bg.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[:, None, None], (1, 64, 3))).save(bg)
    a8 = np.clip(photo_alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    rgba = np.dstack([astronaut, a8])
    moved = rgba.copy()
    moved[:230, 100:360] = np.roll(rgba[:230, 100:360], 3, axis=1)  # the head turns a little
    opts = BackgroundOptions(mode=mode, color="#3366aa", image=str(bg), shadow=True)
    comp = Compositor(opts, (512, 512))
    first = comp.apply(rgba, None, 0)
    out = comp.apply(moved, None, 1).astype(int)
    fresh = Compositor(opts, (512, 512)).apply(moved, None, 1).astype(int)
    diff = np.abs(out - fresh)
    assert diff.mean() < 0.1 and np.percentile(diff, 99.9) <= 12
    assert np.array_equal(out[300:], first[300:])  # far below the head nothing was redone


@pytest.mark.parametrize("mode", ["color", "transparent", "blur"])
def test_prepared_still_frames_blend_only_what_moved(astronaut, photo_alpha, mode):
    """Photo avatar: the still is treated once; animated RGBA frames are then blended
    where they differ from it, and look like a from-scratch composite."""
    opts = BackgroundOptions(mode=mode, color="#3366aa", shadow=True)
    comp = Compositor(opts, (512, 512))
    still = comp.prepare_still(astronaut, photo_alpha)
    assert still.shape == astronaut.shape and still.dtype == np.uint8
    inside = photo_alpha >= 1.0
    assert np.abs(still[inside].astype(int) - astronaut[inside]).mean() < 6  # gentle changes only
    a8 = np.clip(photo_alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    rgba = np.dstack([still, a8])
    first = comp.apply(rgba, None, 0)
    fresh = Compositor(opts, (512, 512)).apply(astronaut, photo_alpha, 0).astype(int)
    assert np.abs(first.astype(int) - fresh).mean() < 1.5  # same look as the per-frame path
    if mode == "transparent":
        assert np.array_equal(first[..., 3][a8 == 255], a8[a8 == 255])
    moved = rgba.copy()
    moved[:230, 100:360] = np.roll(rgba[:230, 100:360], 3, axis=1)  # the head turns
    moved[190:205, 200:240, :3] = 30  # the mouth opens
    out = comp.apply(moved, None, 1)
    assert np.array_equal(out[300:], first[300:])
    a = moved[..., 3].astype(np.float32) / 255
    if mode != "transparent":
        region = (a[:230, 100:360] >= 1.0)
        assert np.array_equal(out[:230, 100:360][region], moved[:230, 100:360, :3][region])
    same = comp.apply(rgba, None, 2)
    assert np.array_equal(same, first)
    # the same through separate frame and matte arguments
    assert np.array_equal(comp.apply(moved[..., :3], moved[..., 3], 3), out)


def test_cached_path_redoes_changed_edge_pixels(astronaut, photo_alpha):
    """Brows pulling a strand of hair: soft-edge pixels changed; the cached path redoes
    them (with the colour fields of the first frame, so not bit-exact)."""
    frame = astronaut.copy()
    frame[60:120, 140:200] = np.clip(frame[60:120, 140:200].astype(int) + 40, 0, 255)
    opts = BackgroundOptions(mode="color", color="#3366aa")
    comp = Compositor(opts, (512, 512))
    first = comp.apply(astronaut, photo_alpha, 0)
    fast = comp.apply(frame, photo_alpha, 1).astype(int)
    fresh = Compositor(opts, (512, 512)).apply(frame, photo_alpha, 1).astype(int)
    block = (slice(60, 120), slice(140, 200))
    assert np.abs(fast[block] - first[block]).mean() > 10  # the change shows
    assert np.abs(fast - fresh).max() <= 16 and np.abs(fast - fresh).mean() < 0.05


def test_static_background_is_blurred_once(astronaut, photo_alpha):
    comp = Compositor(BackgroundOptions(mode="blur"), (512, 512))
    comp.apply(astronaut, photo_alpha, 0)
    plate = comp._blur_plate
    for i in range(1, 4):
        frame = astronaut.copy()
        frame[190:205, 200:240] = 40 * i  # the mouth moves
        out = comp.apply(frame, photo_alpha, i)
        assert np.array_equal(out[190:205, 200:240], frame[190:205, 200:240])
    assert comp._blur_plate is plate
    # the person's colours are not smeared into the blurred background
    bg = plate[20:80, 420:500].reshape(-1, 3).mean(0)
    assert np.abs(bg - astronaut[20:80, 420:500].reshape(-1, 3).mean(0)).max() < 12


@pytest.mark.parametrize("mode", ["color", "transparent"])
def test_drop_shadow_follows_a_moving_matte(mode):
    """A person who moves across the frame (a full recomposite) casts the shadow where
    they are now, exactly as a fresh compositor draws it."""
    yy, xx = np.mgrid[0:128, 0:128]

    def disc(cx: int) -> np.ndarray:
        return ((xx - cx) ** 2 + (yy - 64) ** 2 < 40**2).astype(np.float32)

    fg = np.full((128, 128, 3), 200, np.uint8)
    opts = BackgroundOptions(mode=mode, shadow=True, light_wrap=0.0, color_match=0.0)
    comp = Compositor(opts, (128, 128))
    comp.apply(fg, disc(40), 0)
    moved = comp.apply(fg, disc(88), 1)
    assert np.array_equal(moved, Compositor(opts, (128, 128)).apply(fg, disc(88), 1))


def test_keep_mode_needs_no_matte_and_reframes():
    src = _synthetic(100, 100)
    comp = Compositor(BackgroundOptions(mode="keep"), (100, 100))
    assert not comp.needs_alpha and np.array_equal(comp.apply(src, None, 0), src)
    framed = Compositor(BackgroundOptions(mode="keep", framing="portrait", resolution="720p"), (100, 100))
    out = framed.apply(src, None, 0)
    assert out.shape == (1280, 720, 3) and np.abs(out.astype(int) - src[0, 0]).max() <= 2
    with pytest.raises(InvalidOption):
        Compositor(BackgroundOptions(mode="color"), (100, 100)).apply(src, None, 0)
    with pytest.raises(InvalidOption):
        BackgroundOptions(color="green")
    with pytest.raises(InvalidOption):
        BackgroundOptions(person_x=1.5)


# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "framing,resolution,size",
    [
        ("portrait", "720p", (720, 1280)),
        ("square", "720p", (720, 720)),
        ("landscape", "720p", (1280, 720)),
        ("portrait", "1080p", (1080, 1920)),
        ("landscape", "1080p", (1920, 1080)),
        ("square", "4k", (2160, 2160)),
        ("landscape", "4k", (3840, 2160)),
        ("source", "1080p", (1080, 1080)),
        ("source", "source", (512, 512)),
    ],
)
def test_output_sizes(framing, resolution, size):
    assert output_size(BackgroundOptions(framing=framing, resolution=resolution), (512, 512)) == size


def test_placement_and_framed_composite():
    src = _synthetic(100, 100)
    alpha = np.ones((100, 100), np.float32)
    opts = BackgroundOptions(
        mode="color", color="#000000", framing="landscape", resolution="720p", person_x=0.0, person_y=1.0,
        light_wrap=0.0, color_match=0.0,
    )
    p = placement(opts, (100, 100), (1280, 720))
    assert (p.x, p.y, p.w, p.h) == (0, 0, 720, 720)
    out = Compositor(opts, (100, 100)).apply(src, alpha, 0)
    assert out.shape == (720, 1280, 3)
    assert np.array_equal(out[360, 10], src[0, 0]) and np.array_equal(out[360, 700], src[0, 0])
    assert out[360, 740].sum() == 0  # right of the person: background
    right = dataclasses.replace(opts, person_x=1.0, person_y=0.0, person_scale=0.5)
    p = placement(right, (100, 100), (1280, 720))
    assert (p.x, p.y, p.w, p.h) == (1280 - 360, 0, 360, 360)
    out = Compositor(right, (100, 100)).apply(src, alpha, 0)
    assert np.array_equal(out[100, 1200], src[0, 0]) and out[500, 1200].sum() == 0 and out[100, 800].sum() == 0


def test_image_fit_fill_and_stretch_geometry():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = (255, 0, 0)  # left half red, right half blue
    img[:, 100:] = (0, 0, 255)
    fit = fit_image(img, (100, 100), "fit", (0.5, 0.5), (0, 255, 0))
    assert fit.shape == (100, 100, 3)
    assert tuple(fit[10, 50]) == (0, 255, 0) and tuple(fit[90, 50]) == (0, 255, 0)  # bars above and below
    assert tuple(fit[50, 10]) == (255, 0, 0) and tuple(fit[50, 90]) == (0, 0, 255)
    top = fit_image(img, (100, 100), "fit", (0.5, 0.0), (0, 255, 0))
    assert tuple(top[10, 10]) == (255, 0, 0) and tuple(top[90, 10]) == (0, 255, 0)
    fill_left = fit_image(img, (100, 100), "fill", (0.0, 0.5))
    assert (fill_left[:, :95] == (255, 0, 0)).all()  # cropped to the left half
    fill_right = fit_image(img, (100, 100), "fill", (1.0, 0.5))
    assert (fill_right[:, 5:] == (0, 0, 255)).all()
    stretch = fit_image(img, (100, 100), "stretch")
    assert tuple(stretch[50, 10]) == (255, 0, 0) and tuple(stretch[50, 90]) == (0, 0, 255)


def test_image_background_is_loaded_and_fitted_once(tmp_path):
    from PIL import Image

    path = tmp_path / "bg.png"
    Image.fromarray(np.full((40, 80, 3), (9, 99, 199), np.uint8)).save(path)
    opts = BackgroundOptions(mode="image", image=str(path), light_wrap=0.0, color_match=0.0)
    comp = Compositor(opts, (64, 64))
    fg = _synthetic(64, 64)
    out = comp.apply(fg, np.zeros((64, 64), np.float32), 0)
    assert (out == (9, 99, 199)).all()
    with pytest.raises(InvalidOption):
        Compositor(BackgroundOptions(mode="image"), (64, 64))


def _grey_video(path, n: int, fps: int, levels) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), levels[i], np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_background_loops_and_matches_the_frame_rate(tmp_path):
    n, src_fps, out_fps = 8, 10, 25
    levels = [20 + 28 * k for k in range(n)]
    path = tmp_path / "grey.mp4"
    _grey_video(path, n, src_fps, levels)
    opts = BackgroundOptions(mode="video", video=str(path), light_wrap=0.0, color_match=0.0)
    fg = _synthetic(48, 64)
    alpha = np.zeros((48, 64), np.float32)
    length = n / src_fps
    with Compositor(opts, (64, 48), out_fps) as comp:
        for i in range(int(round(3 * length * out_fps))):
            t = i / out_fps
            want = int(np.floor(((t % length) + 1e-9) * src_fps)) % n
            got = comp.apply(fg, alpha, i)
            level = float(got[..., 1].mean())
            k = int(np.argmin([abs(level - v) for v in levels]))
            assert k == want, (i, t, level, want)


# --- no halo -------------------------------------------------------------------------------


def test_no_halo_of_the_old_background(astronaut, photo_alpha):
    green = np.array([0, 255, 0], np.float32)
    opts = BackgroundOptions(mode="color", color="#00ff00", light_wrap=0.0, color_match=0.0)
    out = Compositor(opts, (512, 512)).apply(astronaut, photo_alpha, 0).astype(np.float32)
    band = _band(photo_alpha, inside=False, width=3)
    band[:, :40] = False  # the flag at the left edge is not the grey backdrop
    band[380:] = False  # nor the table and helmet at the bottom
    old = astronaut[:120, 330:].reshape(-1, 3).astype(np.float32).mean(0)  # the grey backdrop
    mean = out[band].mean(0)
    assert np.linalg.norm(mean - green) < np.linalg.norm(mean - old), (mean, old)
    # and without edge treatment the band would be greyer: decontamination helps
    plain = composite_over(astronaut, photo_alpha, np.broadcast_to(green.astype(np.uint8), astronaut.shape))
    assert np.linalg.norm(mean - green) <= np.linalg.norm(plain[band].astype(np.float32).mean(0) - green) + 1.0
