"""The wav2lip engine: network layout and checkpoint loading, mel features, crop and paste-back,
the engine on a photo, and the CLI with random weights (no network, no GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = "wav2lip_tiny_test"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def tiny_model(monkeypatch, tmp_path):
    """A reduced-width generator registered as a catalog entry and chosen by the engine."""
    from pipeline import models

    s = models.ModelSpec(
        name=TINY, title="Wav2Lip at 1/8 width (tests)", kind="test", repo_id="", revision="", files=(),
        code_licence="test", weights_licence="test", licence_note="", backend="torch",
        build="pipeline.neural.wav2lip_net:build",
        inputs={"mel": "B,1,80,16 float32", "face": "B,6,96,96 float32"}, outputs={"out": "B,3,96,96 float32"},
        options={"size": 96, "width": 0.125},
    )
    models.register(s)
    monkeypatch.setenv("AVATAR_WAV2LIP_MODEL", TINY)
    monkeypatch.setenv("AVATAR_DEVICE", "cpu")
    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    yield s
    models.release(TINY)
    models.unregister(TINY)


# --------------------------------------------------------------------------- network


def test_full_size_generator_has_the_published_layout_and_loads_a_dataparallel_checkpoint(tmp_path) -> None:
    import torch

    from pipeline.neural.wav2lip_net import build, parameter_count

    net = build()
    assert parameter_count(net) == 36_298_035  # the published generator: ~36.3 M
    sd = net.state_dict()
    top = {k.split(".")[0] for k in sd}
    assert top == {"face_encoder_blocks", "audio_encoder", "face_decoder_blocks", "output_block"}
    assert len(sd) == 352
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["face_encoder_blocks.0.0.conv_block.0.weight"] == (16, 6, 7, 7)
    assert shapes["face_encoder_blocks.6.1.conv_block.0.weight"] == (512, 512, 1, 1)
    assert shapes["audio_encoder.3.conv_block.0.weight"] == (64, 32, 3, 3)
    assert shapes["audio_encoder.12.conv_block.1.running_var"] == (512,)
    assert shapes["face_decoder_blocks.1.0.conv_block.0.weight"] == (1024, 512, 3, 3)  # transposed: (in, out, k, k)
    assert shapes["face_decoder_blocks.6.0.conv_block.0.weight"] == (160, 64, 3, 3)
    assert shapes["output_block.0.conv_block.0.weight"] == (32, 80, 3, 3)
    assert shapes["output_block.1.weight"] == (3, 32, 1, 1)
    # a fake released checkpoint: DataParallel "module." keys inside {"state_dict": ...}
    gen = torch.Generator().manual_seed(1)
    fake = {"module." + k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone())
            for k, v in sd.items()}
    for k, v in fake.items():
        if k.endswith("running_var"):
            v.abs_().add_(0.5)
    path = tmp_path / "wav2lip_fake.pth"
    torch.save({"state_dict": fake, "global_step": 1}, path)
    loaded = build(path)
    assert not loaded.training
    got = loaded.state_dict()
    for k in ("audio_encoder.0.conv_block.0.weight", "face_decoder_blocks.3.2.conv_block.1.running_mean",
              "output_block.1.bias"):
        assert torch.equal(got[k], fake["module." + k])
    # state_dict keys round-trip through a bare save too
    torch.save(loaded.state_dict(), tmp_path / "bare.pth")
    again = build(tmp_path / "bare.pth")
    assert torch.equal(again.state_dict()["output_block.1.weight"], fake["module.output_block.1.weight"])
    # a checkpoint of another layout is refused, never half-loaded
    del fake["module.output_block.1.weight"]
    torch.save({"state_dict": fake}, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="output_block.1.weight"):
        build(tmp_path / "broken.pth")


@pytest.mark.parametrize("size", [96, 256])
def test_reduced_generator_maps_mel_and_face_to_a_face_crop(size: int) -> None:
    import torch

    from pipeline.neural.wav2lip_net import build

    torch.manual_seed(0)
    net = build(size=size, width=0.125)
    mel = torch.randn(3, 1, 80, 16)
    face = torch.rand(3, 6, size, size)
    with torch.inference_mode():
        out = net(mel, face)
        swapped = net(mel.flip(0), face.flip(0))
        other_audio = net(mel.flip(0), face)
    assert out.shape == (3, 3, size, size)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid
    # each sample on its own (eval-mode BatchNorm); the audio changes the picture
    assert float((out[0] - swapped[2]).abs().max()) < 1e-4
    assert float((out[0] - other_audio[0]).abs().mean()) > 1e-5


def test_reduced_generator_torch_and_onnx_agree(tiny_model) -> None:
    from pipeline import models

    mel = np.random.default_rng(0).uniform(-4, 4, (2, 1, 80, 16)).astype(np.float32)
    face = np.random.default_rng(1).uniform(0, 1, (2, 6, 96, 96)).astype(np.float32)
    t = models.predictor(TINY, backend="torch", device="cpu", random_weights=True).run({"mel": mel, "face": face})
    o = models.predictor(TINY, backend="onnx", device="cpu", random_weights=True).run({"mel": mel, "face": face})
    assert t["out"].shape == o["out"].shape == (2, 3, 96, 96)
    assert float(np.abs(t["out"] - o["out"]).max()) < 1e-4


# --------------------------------------------------------------------------- mel features


def test_mel_of_a_sine_peaks_in_its_band_and_silence_is_the_floor() -> None:
    from pipeline.neural import mel as M

    t = np.arange(16000) / 16000.0
    for hz in (300.0, 1000.0, 4000.0):
        m = M.melspectrogram(0.5 * np.sin(2 * np.pi * hz * t))
        assert m.shape == (80, 1 + 16000 // 200)
        band = int(np.argmax(m[:, 20:60].mean(1)))
        assert abs(band - M.band_of(hz)) <= 1, (hz, band, M.band_of(hz))
        assert m.max() <= 4.0 and m.min() >= -4.0
    silence = M.melspectrogram(np.zeros(8000))
    assert silence.shape == (80, 41) and np.all(silence == -4.0)
    # a full-scale sine at 1 kHz: 20 log10(peak magnitude) - 20 dB, normalised (hand computed)
    full = M.melspectrogram(np.sin(2 * np.pi * 1000 * t))
    assert 1.0 < float(full[M.band_of(1000), 40]) < 4.0


def test_mel_filters_are_slaney_triangles_of_unit_area() -> None:
    from pipeline.neural import mel as M

    basis = M.mel_basis()
    assert basis.shape == (80, 401)
    df = 16000 / 800
    areas = basis.sum(1) * df
    assert np.allclose(areas[10:], 1.0, atol=0.08)  # narrow low bands are sampled coarsely
    peaks = basis.argmax(1)
    assert np.all(np.diff(peaks) >= 0) and peaks[0] * df >= 40 and peaks[-1] * df <= 7600
    assert abs(float(M.hz_to_mel(1000.0)) - 15.0) < 1e-9 and abs(float(M.mel_to_hz(M.hz_to_mel(5000.0))) - 5000) < 1e-6


def test_mel_windows_follow_the_frame_times() -> None:
    from pipeline.neural import mel as M
    from pipeline.types import AudioClip

    assert list(M.window_starts(6, 25.0, 1000)) == [0, 3, 6, 9, 12, 16]  # int(80 * i / 25)
    assert list(M.window_starts(7, 30.0, 1000)) == [0, 2, 5, 8, 10, 13, 16]  # int(80 * i / 30)
    assert list(M.window_starts(4, 25.0, 20)) == [0, 3, 4, 4]  # the last full window near the end
    rng = np.random.default_rng(0)
    audio = AudioClip((0.1 * rng.standard_normal(22050 * 2)).astype(np.float32), 22050)  # resampled to 16 kHz
    win = M.frame_windows(audio, 50, 25.0)
    assert win.shape == (50, 1, 80, 16) and win.dtype == np.float32
    mel = M.melspectrogram(M.to_16k(audio))
    assert mel.shape == (80, 161)
    assert np.array_equal(win[10, 0], mel[:, 32:48])
    short = M.frame_windows(AudioClip(np.zeros(1600, np.float32), 16000), 2, 25.0)  # 100 ms: padded
    assert short.shape == (2, 1, 80, 16)


# --------------------------------------------------------------------------- crop and paste-back


def test_crop_frames_the_face_like_wav2lip_and_masks_only_the_lower_face(avatar) -> None:
    from pipeline.engines import paste as P

    lm = avatar.face.landmarks
    g = P.face_geometry(lm, 96)
    c = lm[:, :2] @ g.M[:, :2].T + g.M[:, 2]
    mouth = 0.5 * (c[13] + c[14])
    eyes = 0.5 * (c[33] + c[263])
    assert 0.55 * 96 < mouth[1] < 0.85 * 96 and abs(mouth[0] - 48) < 10
    assert 0.15 * 96 < eyes[1] < 0.45 * 96  # upper half: the reference the network keeps
    assert c[152, 1] < 96  # the chin is inside the box
    assert g.mask[int(mouth[1]), int(mouth[0])] > 0.99
    assert g.mask[: int(c[1, 1]) - 2].max() < 0.02  # nothing above the nose tip is replaced
    assert g.mask[int(c[1, 1]), int(c[1, 0])] < 0.12  # the feather ends between the nose tip and the lip
    assert g.mask[int(c[0, 1]) + 1, int(c[0, 0])] > 0.95  # the whole upper lip is
    assert max(g.mask[0].max(), g.mask[-1].max(), g.mask[:, 0].max(), g.mask[:, -1].max()) < 1e-3  # box edges
    face = P.network_face(P.crop(avatar.image, g))
    assert face.shape == (6, 96, 96)
    assert np.all(face[:3, 48:] == 0) and face[:3, :48].mean() > 0.1
    assert np.array_equal(face[:3, :48], face[3:, :48])
    # BGR order: the astronaut's skin is redder than blue
    assert face[5].mean() > face[3].mean()


def test_paste_back_changes_the_mouth_and_leaves_no_seam(avatar) -> None:
    from pipeline.engines import paste as P

    image = avatar.image
    g = P.face_geometry(avatar.face.landmarks, 96)
    target = P.paste_target(image, g)
    gen = np.zeros((96, 96, 3), np.uint8)
    gen[..., 0] = 220  # a flat reddish crop
    gen[..., 1:] = 60
    out = image.copy()
    P.paste(out, gen, target, P.ColourState())
    diff = np.abs(out.astype(int) - image.astype(int)).max(2)
    x0, y0, x1, y1 = target.rect
    outside = diff.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0  # nothing outside the region of interest moves
    mx, my = np.round(0.5 * (avatar.face.landmarks[13, :2] + avatar.face.landmarks[14, :2])).astype(int)
    assert diff[my, mx] > 20  # the mouth is replaced
    border = np.concatenate([diff[y0, x0:x1], diff[y1 - 1, x0:x1], diff[y0:y1, x0], diff[y0:y1, x1 - 1]])
    assert border.max() <= 2  # the region's edge (and the crop box's) do not show
    ys, xs = np.nonzero(diff > 8)
    # changes stay below the nose and within the jaw
    assert ys.min() > avatar.face.landmarks[4, 1] and ys.max() < avatar.face.landmarks[152, 1] + 0.5 * g.scale * 96
    # colour matching pulls the flat red towards the skin around it (Lab mean in the ring)
    ring = target.ring.astype(bool)
    before = np.abs(gen[0, 0].astype(float) - target.src[ring].mean(0)).sum()
    region = out[y0:y1, x0:x1].astype(float)
    after = np.abs(region[ring].mean(0) - target.src[ring].mean(0)).sum()
    assert after < 0.5 * before


def test_detail_transfer_restores_what_a_96px_crop_loses(avatar) -> None:
    """A perfect network at 96 px (the crop itself, or a colour-cast copy of it) pasted back on a
    1024 px frame: detail transfer and colour matching bring it closer to the source than a
    plain feathered paste of the upscaled crop."""
    import cv2

    from pipeline.engines import paste as P
    from pipeline.media.image import resize_to

    image, s = resize_to(avatar.image, 1024)
    lm = avatar.face.landmarks.copy()
    lm[:, :3] *= s
    g = P.face_geometry(lm, 96)
    t = P.paste_target(image, g)
    assert g.scale > 2.0 and t.detail_amount == 1.0
    x0, y0, x1, y1 = t.rect
    inside = t.alpha[..., 0] > 0.5

    def psnr(out: np.ndarray) -> float:
        d = out[y0:y1, x0:x1].astype(float) - image[y0:y1, x0:x1].astype(float)
        return float(10 * np.log10(255.0**2 / np.mean(d[inside] ** 2)))

    def plain(gen: np.ndarray) -> np.ndarray:
        back = cv2.warpAffine(gen, t.M_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        out = image.copy()
        out[y0:y1, x0:x1] = np.clip(t.src + t.alpha * (back - t.src) + 0.5, 0, 255).astype(np.uint8)
        return out

    def ours(gen: np.ndarray) -> np.ndarray:
        out = image.copy()
        P.paste(out, gen, t, P.ColourState())
        return out

    crop = P.crop(image, g)
    cast = np.clip(crop.astype(int) + [25, -10, -10], 0, 255).astype(np.uint8)
    assert psnr(ours(crop)) > psnr(plain(crop)) + 1.5  # measured 39.9 vs 37.0 dB
    assert psnr(ours(cast)) > psnr(plain(cast)) + 6.0  # measured 35.6 vs 24.5 dB
    # a crop finer than the face (256 px on a 105 px face) gets no detail added
    small, s2 = resize_to(avatar.image, 512)
    lm2 = avatar.face.landmarks.copy()
    lm2[:, :3] *= s2
    assert P.paste_target(small, P.face_geometry(lm2, 256)).detail_amount == 0.0


# --------------------------------------------------------------------------- the engine


def test_batches_start_small_and_grow() -> None:
    from pipeline.engines.wav2lip import batches

    assert batches(40, 16) == [(0, 1), (1, 3), (3, 7), (7, 15), (15, 31), (31, 40)]
    assert batches(1, 128) == [(0, 1)]
    assert batches(0, 16) == []


def test_engine_picks_the_weights_that_are_present(monkeypatch, tmp_path) -> None:
    from pipeline import models
    from pipeline.engines.wav2lip import choose_model
    from pipeline.errors import ModelMissing

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("AVATAR_WAV2LIP_MODEL", raising=False)
    with pytest.raises(ModelMissing, match="models pull wav2lip_gan"):
        choose_model(False)
    assert choose_model(True) == "wav2lip"  # random weights need nothing
    (tmp_path / "wav2lip.pth").write_bytes(b"not read by choose_model")
    models.remember_local("wav2lip", tmp_path / "wav2lip.pth")
    assert choose_model(False) == "wav2lip"
    (tmp_path / "wav2lip_gan.pth").write_bytes(b"x")
    models.remember_local("wav2lip_gan", tmp_path / "wav2lip_gan.pth")
    assert choose_model(False) == "wav2lip_gan"  # the sharper GAN weights win


def test_missing_weights_fail_before_the_speech_is_made(monkeypatch, tmp_path) -> None:
    from pipeline import sources
    from pipeline.errors import ModelMissing
    from pipeline.options import RenderOptions
    from pipeline.render import session_for
    from pipeline.request import RenderRequest, VoiceSource

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("AVATAR_WAV2LIP_MODEL", raising=False)

    def no_work(*args, **kwargs):
        raise AssertionError("the speech was made before the weights were checked")

    monkeypatch.setattr(sources, "resolve", no_work)
    request = RenderRequest(voice=VoiceSource(text="Hello there."), render=RenderOptions(engine="wav2lip"))
    with pytest.raises(ModelMissing, match="models pull wav2lip_gan"):
        session_for(request)


def test_engine_renders_one_frame_per_track_frame_on_a_photo(avatar, speech, tiny_model) -> None:
    from pipeline.engines import get_engine
    from pipeline.options import RenderOptions
    from pipeline.render import plan

    engine = get_engine("wav2lip")
    assert engine.info.sources == ("photo", "clip") and engine.info.device == "any"
    opts = RenderOptions(size=256, random_weights=True, head_motion=0.0, blinks=False, brows=0.0)
    rig = engine.prepare(avatar, opts)
    assert rig.model == TINY and engine.output_size(rig) == (256, 256) and rig.batch == 16
    tracks = plan(speech, opts)
    frames = list(engine.render(rig, tracks, speech.audio))
    assert len(frames) == tracks.n_frames
    assert all(f.shape == (256, 256, 3) and f.dtype == np.uint8 for f in frames)
    x0, y0, x1, y1 = rig.target.rect
    still = rig.image
    for f in frames[::7]:
        d = np.abs(f.astype(int) - still.astype(int))
        d[y0:y1, x0:x1] = 0
        assert d.max() == 0  # with head motion off, only the mouth region changes
    # the frames follow the audio: different mel windows, different mouths
    mouths = np.stack([f[y0:y1, x0:x1].astype(float) for f in frames])
    assert float(mouths.std(0).mean()) > 0.05
    # a second prepare of the same avatar comes from the cache (same predictor, same geometry)
    again = engine.prepare(avatar, opts)
    assert again.predictor is rig.predictor and again.geom is rig.geom


def test_engine_gives_the_same_mouths_on_torch_and_onnx_runtime(avatar, tiny_model) -> None:
    import dataclasses

    from pipeline import models
    from pipeline.engines import get_engine
    from pipeline.engines.wav2lip import generate
    from pipeline.options import RenderOptions

    rig = get_engine("wav2lip").prepare(avatar, RenderOptions(size=256, random_weights=True))
    onnx = dataclasses.replace(rig, predictor=models.predictor(TINY, backend="onnx", device="cpu", random_weights=True))
    mels = np.random.default_rng(3).uniform(-4, 4, (3, 1, 80, 16)).astype(np.float32)
    a, b = generate(rig, mels), generate(onnx, mels)  # device-side uint8 vs numpy conversion
    assert a.shape == b.shape == (3, 96, 96, 3) and a.dtype == b.dtype == np.uint8
    assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1
    assert float(a.std()) > 1.0


def test_engine_carries_the_matte_and_applies_blinks(avatar, speech, tiny_model) -> None:
    import dataclasses

    from pipeline.engines import get_engine
    from pipeline.options import RenderOptions
    from pipeline.render import plan

    h, w = avatar.image.shape[:2]
    matte = np.zeros((h, w), np.float32)
    matte[:, w // 4: 3 * w // 4] = 1.0
    av = dataclasses.replace(avatar, matte=matte, key=avatar.key + "-matte")
    engine = get_engine("wav2lip")
    opts = RenderOptions(size=256, random_weights=True, head_motion=0.0, brows=0.0)
    rig = engine.prepare(av, opts)
    tracks = plan(speech, opts)
    tracks.set("blink", np.where(np.arange(tracks.n_frames) == 5, 1.0, 0.0))
    frames = list(engine.render(rig, tracks, speech.audio))
    assert frames[0].shape == (256, 256, 4)
    assert np.array_equal(frames[0][..., 3], rig.image[..., 3])  # the mouth lies inside the person
    eye = avatar.face.landmarks[159, :2] * 256 / max(h, w)
    ex, ey = np.round(eye).astype(int)
    lid = lambda f: f[ey - 3: ey + 4, ex - 6: ex + 7, :3].astype(float)  # noqa: E731
    assert np.abs(lid(frames[5]) - lid(frames[4])).mean() > 3  # the closed eye differs
    assert np.array_equal(lid(frames[4]), lid(frames[6]))


def test_wav2lip_frames_go_over_a_new_background(avatar, speech, tiny_model) -> None:
    from pipeline.options import BackgroundOptions, RenderOptions
    from pipeline.render import RenderSession

    opts = RenderOptions(engine="wav2lip", size=256, random_weights=True)
    session = RenderSession(avatar, speech, opts, BackgroundOptions(mode="color", color="#00ff00"))
    frames = list(session.frames())
    assert len(frames) == session.n_frames and frames[0].shape[2] == 3
    corner = frames[3][:12, :12].reshape(-1, 3).mean(0)
    assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60  # the backdrop is the new colour
    x0, y0, x1, y1 = session.rig.target.rect
    mouths = np.stack([f[y0:y1, x0:x1].astype(float) for f in frames[::4]])
    assert float(mouths.std(0).mean()) > 0.05  # and the mouth still moves on it


def test_render_session_streams_speech_parts_through_wav2lip(avatar, tiny_model) -> None:
    import pipeline
    from pipeline.options import RenderOptions, VoiceOptions
    from pipeline.render import RenderSession

    parts = [pipeline.synthesize(t, VoiceOptions(variation=0.0)) for t in ("Hello there.", "See you soon.")]
    session = RenderSession(avatar, iter(parts), RenderOptions(engine="wav2lip", size=256, random_weights=True))
    frames = list(session.frames())
    assert len(frames) == session.n_frames
    assert abs(session.n_frames - round(sum(p.duration for p in parts) * 25)) <= 1


def test_engine_dubs_a_presenter_clip_frame_by_frame(tmp_path, speech, tiny_model, monkeypatch) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_video_avatar_fixtures import make_clip

    import pipeline
    from pipeline.engines import get_engine
    from pipeline.engines.clip_fit import fit_frames
    from pipeline.face.clip import CACHE_ENV, manifest_of, open_frames
    from pipeline.options import RenderOptions
    from pipeline.render import plan

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "clips"))
    truth = make_clip(tmp_path / "presenter.mp4", 3.5, vfr=False, fps=25.0)
    clip_avatar = pipeline.prepare_avatar(str(truth.path), fps=25.0)
    engine = get_engine("wav2lip")
    opts = RenderOptions(size=0, random_weights=True)
    rig = engine.prepare(clip_avatar, opts)
    assert rig.clip is not None and rig.eyes == [] and rig.head is None
    tracks = plan(speech, opts)
    frames = list(engine.render(rig, tracks, speech.audio))
    assert len(frames) == tracks.n_frames and frames[0].shape[2] == 3
    order, _ = fit_frames(tracks.n_frames, rig.clip.n_clip, rig.clip.speed, 25.0)
    with open_frames(clip_avatar.clip) as reader:
        first = int(manifest_of(clip_avatar.clip)["first"])
        for i in (0, len(frames) // 2, len(frames) - 1):
            src = reader[first + int(order[i])]
            d = np.abs(frames[i].astype(int) - src.astype(int)).max(2)
            lm = rig.clip.landmarks[int(order[i])]
            assert d[int(lm[13, 1]), int(lm[13, 0])] > 0  # the mouth is redrawn on this very frame
            ys, xs = np.nonzero(d > 3)
            face_w = lm[454, 0] - lm[234, 0]
            assert ys.min() > max(lm[145, 1], lm[374, 1]) and ys.max() <= lm[152, 1] + 0.6 * face_w  # below the eyes
            assert xs.min() >= lm[234, 0] - 2 and xs.max() <= lm[454, 0] + 2  # inside the face


# --------------------------------------------------------------------------- the CLI


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", AVATAR_STUDIO_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"),
               AVATAR_DEVICE="cpu", OMP_NUM_THREADS="1")  # one torch thread: see one_torch_thread
    env.pop("AVATAR_WAV2LIP_MODEL", None)
    return env


def test_cli_renders_wav2lip_with_random_weights_to_a_correct_file(tmp_path) -> None:
    import av

    import pipeline
    from pipeline import timing
    from pipeline.export import probe
    from pipeline.options import VoiceOptions

    out = tmp_path / "x.mp4"
    r = subprocess.run([sys.executable, "launch.py", "render", "--engine", "wav2lip", "--random-weights",
                        "--text", "Hello there.", "--variation", "0", "--size", "256", "--out", str(out)],
                       cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    info = probe(out)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert (info["width"], info["height"]) == (256, 256) and abs(info["fps"] - 25.0) < 1e-6
    # the same text and voice without sampling noise: the same audio as the CLI's
    speech = pipeline.synthesize("Hello there.", VoiceOptions(variation=0.0))
    assert info["frames"] == timing.frame_count(speech.duration, 25) and info["frames"] >= 8
    assert abs(info["video_duration"] - speech.duration) <= 1 / 25
    assert abs(info["audio_duration"] - speech.duration) <= 1 / 25
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == info["frames"]


def test_cli_without_weights_names_models_pull(tmp_path) -> None:
    r = subprocess.run([sys.executable, "launch.py", "render", "--engine", "wav2lip", "--text", "Hello.",
                        "--out", str(tmp_path / "y.mp4")],
                       cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "python launch.py models pull wav2lip_gan" in r.stderr and "--random-weights" in r.stderr
    assert not (tmp_path / "y.mp4").exists()
