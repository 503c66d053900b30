"""Video avatars: a presenter clip (synthetic, variable frame rate, its mouth already moving,
rotation metadata, frames without the face) prepared, tracked, cached and dubbed.

The clips come from tests/test_video_avatar_fixtures.py, which knows the true position of
every landmark in every frame, so tracking and timing are checked against the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pipeline
from pipeline.engines.clip_fit import STABLE, fit_frames
from pipeline.errors import NoFaceFound, UnsupportedMedia
from pipeline.face.clip import CACHE_ENV, manifest_of, open_frames, prepare_clip
from pipeline.media.clip_frames import upright
from pipeline.media.video import VideoReader
from pipeline.options import BackgroundOptions, RenderOptions

from test_video_avatar_fixtures import make_clip, true_points  # noqa: E402

FPS = 25.0
BLANK = ((1.0, 1.1),)  # s: the face is not in these frames


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("clip-cache")
        mp.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "presenter.mp4", 3.0, blank=BLANK, rotation=90, audio=True)


@pytest.fixture(scope="module")
def clip_avatar(cache, truth):
    return pipeline.prepare_avatar(str(truth.path), fps=FPS)


def residuals(avatar, truth, which: str = "landmarks") -> np.ndarray:
    """(frames, points, 2): tracked minus true positions of the stable landmarks."""
    m = manifest_of(avatar.clip)
    with np.load(Path(avatar.clip.path).parent / "track.npz") as data:
        lm = data[which]
    idx = list(STABLE)
    return np.array([lm[i, idx, :2] - true_points(truth, (m["first"] + i) / FPS, idx) for i in range(len(lm))])


# ------------------------------------------------------------------------ preparing


def test_clip_is_normalised_to_constant_rate_by_timestamp_upright(clip_avatar, truth):
    clip, m = clip_avatar.clip, manifest_of(clip_avatar.clip)
    assert clip_avatar.kind == "clip" and clip.fps == FPS
    assert m["source"]["vfr"] and m["source"]["rotation"] == 90 and m["source"]["audio_codec"] == "aac"
    assert clip_avatar.size == (320, 240)  # stored sideways, shown upright
    with VideoReader(truth.path) as video:
        assert clip.n_frames == round(video.duration * FPS)
        # stored frame k is the source frame on screen at k / fps (not the k-th source frame)
        with open_frames(clip) as frames:
            for k in (3, 17, 40, 66):
                want = upright(video.frame_at(k / FPS).image, 90).astype(np.float32)
                got = frames[k].astype(np.float32)
                other = upright(video.frame_at((k + 2) / FPS).image, 90).astype(np.float32)
                assert np.abs(got - want).mean() < 0.5 * np.abs(other - want).mean()


def test_landmarks_on_every_frame_follow_the_face_without_jitter(clip_avatar, truth):
    m = manifest_of(clip_avatar.clip)
    width = m["face_width"]
    smooth, raw = residuals(clip_avatar, truth), residuals(clip_avatar, truth, "raw")
    with np.load(Path(clip_avatar.clip.path).parent / "track.npz") as data:
        found = data["found"]
    err = np.linalg.norm(smooth, axis=2).mean(1)
    assert err[found].mean() < 0.01 * width, err.max()
    # jitter: frame-to-frame wobble of the error (the true motion cancels out)
    jitter = np.linalg.norm(np.diff(smooth, 2, axis=0), axis=2).mean()
    jitter_raw = np.linalg.norm(np.diff(raw, 2, axis=0), axis=2).mean()
    assert jitter < 0.006 * width and jitter < 0.85 * jitter_raw, (jitter, jitter_raw)


def test_frames_without_the_face_are_bridged_and_reported(clip_avatar, truth):
    with np.load(Path(clip_avatar.clip.path).parent / "track.npz") as data:
        found = data["found"]
    lost = np.flatnonzero(~found)
    assert len(lost) >= 2 and all(BLANK[0][0] - 0.05 <= i / FPS <= BLANK[0][1] + 0.05 for i in lost)
    err = np.linalg.norm(residuals(clip_avatar, truth), axis=2).mean(1)
    assert err[lost].max() < 0.03 * manifest_of(clip_avatar.clip)["face_width"]
    assert any("not found in" in w and "1.0" in w for w in clip_avatar.warnings), clip_avatar.warnings
    assert any("variable frame rate" in w for w in clip_avatar.warnings)


def test_face_missing_most_of_the_time_is_refused_saying_where(cache, tmp_path):
    t = make_clip(tmp_path / "away.mp4", 3.0, cover=((0.4, 2.6),), vfr=False)
    with pytest.raises(NoFaceFound, match=r"missing from \d+ % of the clip: not found at 0\.[34]\d–2\.[56]\d s"):
        prepare_clip(t.path, FPS)
    assert not any(p.name.startswith(".") for p in (cache / "clips").iterdir())  # nothing half-written left


def test_a_shot_change_keeps_the_first_shot_and_says_so(cache, tmp_path):
    t = make_clip(tmp_path / "cut.mp4", 3.2, cut_at=2.2)
    avatar = prepare_clip(t.path, FPS)
    assert abs(avatar.clip.n_frames - 2.2 * FPS) <= 1
    assert any("changes shot at 2.2" in w for w in avatar.warnings), avatar.warnings


def test_fast_head_motion_is_not_a_shot_change_and_the_mouth_keeps_up(cache, tmp_path):
    from pipeline.engines import get_engine

    t = make_clip(tmp_path / "fast.mp4", 2.4, speed=4.0, amount=2.0)  # a 1.6 Hz sway of +-12 % of the width
    avatar = prepare_clip(t.path, FPS)
    assert abs(avatar.clip.n_frames - 2.4 * FPS) <= 2 and not any("shot" in w for w in avatar.warnings)
    # the pasted region follows the true head motion within ~1.5 % of the face width
    rig = get_engine("warp").prepare(avatar, RenderOptions())
    m = manifest_of(avatar.clip)

    def truth_map(i: int) -> np.ndarray:
        j = max(0, int(np.searchsorted(t.times, (m["first"] + i) / FPS + 1e-6, side="right")) - 1)
        return np.vstack([t.matrices[j], [0, 0, 1]])

    x0, y0, x1, y1 = rig.rect
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], float).T
    back = np.linalg.inv(truth_map(m["reference"]))
    err = [np.linalg.norm(rig.affines[i] @ corners - (truth_map(i) @ back)[:2] @ corners, axis=0).mean()
           for i in range(rig.n_clip)]
    assert np.mean(err) < 0.015 * m["face_width"], np.mean(err)


def test_a_second_person_is_not_followed(cache, tmp_path):
    t = make_clip(tmp_path / "two.mp4", 2.4, second_face=True, vfr=False)
    avatar = prepare_clip(t.path, FPS)
    err = np.linalg.norm(residuals(avatar, t), axis=2).mean(1)
    assert err.max() < 0.03 * manifest_of(avatar.clip)["face_width"]


@pytest.mark.parametrize(
    "name, vcodec, acodec",
    [("phone.mov", "libx265", "pcm_s16le"), ("clip.webm", "libvpx-vp9", "libopus"), ("old.avi", "mpeg4", "ac3"),
     ("edit.mov", "prores_ks", "pcm_s16le"), ("clip.mkv", "libvpx", "aac")],
)
def test_containers_and_codecs_people_have(cache, tmp_path, name, vcodec, acodec):
    t = make_clip(tmp_path / name, 2.2, vfr=False, codec=vcodec, audio=acodec, amount=0.5)
    avatar = prepare_clip(t.path, FPS)
    m = manifest_of(avatar.clip)
    assert m["source"]["codec"] in (vcodec, {"libx265": "hevc", "libvpx": "vp8", "libvpx-vp9": "vp9",
                                               "prores_ks": "prores"}.get(vcodec, vcodec))
    assert m["source"]["audio_codec"] and avatar.clip.n_frames == round(2.2 * FPS)
    err = np.linalg.norm(residuals(avatar, t), axis=2).mean(1)
    assert err.max() < 0.03 * m["face_width"]


def test_length_limits(cache, tmp_path):
    t = make_clip(tmp_path / "short.mp4", 1.2, vfr=False)
    with pytest.raises(UnsupportedMedia, match="2–60 s"):
        prepare_clip(t.path, FPS)


def test_prepared_once_and_cached_with_a_manifest(clip_avatar, truth, cache):
    folder = Path(clip_avatar.clip.path).parent
    m = json.loads((folder / "manifest.json").read_text())
    assert m["source"]["sha256"] and m["params"]["fps"] == FPS and m["params"]["mediapipe"]
    assert m["source"]["name"] == "presenter.mp4" and m["frames"] == clip_avatar.clip.n_frames
    stamp = (folder / "track.npz").stat().st_mtime_ns
    again = prepare_clip(truth.path, FPS)
    assert Path(again.clip.path).parent == folder and (folder / "track.npz").stat().st_mtime_ns == stamp
    assert np.array_equal(again.clip.landmarks, clip_avatar.clip.landmarks)
    other = prepare_clip(truth.path, 30.0)  # another rate is another prepared clip
    assert Path(other.clip.path).parent != folder
    assert other.clip.n_frames == round(manifest_of(other.clip)["shot"][1] * 30)


# ------------------------------------------------------------------------ duration fitting


def test_short_speech_cuts_at_a_calm_point_and_long_speech_ping_pongs():
    speed = np.full(100, 0.02)
    speed[60:70] = 0.0  # the head rests here
    order, how = fit_frames(40, 100, speed, FPS)
    assert np.all(np.diff(order) == 1) and 60 <= order[-1] < 70 and "calm" in how
    order, how = fit_frames(330, 100, speed, FPS)
    assert len(order) == 330 and np.abs(np.diff(order)).max() == 1 and order.min() >= 0 and order.max() <= 99
    assert "ping-pong" in how and set(np.flatnonzero(np.diff(np.sign(np.diff(order))) != 0) + 1)  # it turns
    turns = order[1:-1][np.diff(np.sign(np.diff(order))) != 0]
    assert all(speed[t] <= np.median(speed) for t in turns[1:])  # turning where the head is calm
    assert np.array_equal(fit_frames(100, 100, speed, FPS)[0], np.arange(100))


def test_a_speech_rendered_part_by_part_continues_the_clip(clip_avatar):
    """Streamed speech (RenderSession over parts) and live frames call the engine again and
    again: each call goes on from the frame after the last one, turning at the ends."""
    from pipeline.engines import get_engine

    rig = get_engine("warp").prepare(clip_avatar, RenderOptions())
    order = np.concatenate([rig.order(n) for n in (30, 1, 1, 60, 100, 7)])
    assert np.abs(np.diff(order)).max() == 1 and order.min() >= 0 and order.max() < clip_avatar.clip.n_frames
    assert len(set(order[-80:])) > 40  # it keeps playing, it does not stick on a frame


# ------------------------------------------------------------------------ rendering


@pytest.fixture(scope="module")
def long_speech():
    from pipeline.options import VoiceOptions

    text = "Peter bought a bamboo map for Bob. Mum made plum pie, and Pam put maple butter on a big bun."
    return pipeline.synthesize(text, VoiceOptions(variation=0.0))


@pytest.fixture(scope="module")
def dubbed(clip_avatar, long_speech, tmp_path_factory):
    out = tmp_path_factory.mktemp("dub") / "dubbed.mp4"
    session = pipeline.RenderSession(clip_avatar, long_speech, RenderOptions())
    result = session.write(out)
    return result, session


def test_dubbed_video_has_exact_frame_count_and_the_new_voice(dubbed, long_speech):
    from pipeline.export import probe
    from pipeline.media.audio import load_audio

    result, session = dubbed
    assert long_speech.duration > 3.5  # longer than the clip: it loops
    info = probe(result.path)
    assert result.frames == info["frames"] == round(long_speech.duration * FPS)
    assert abs(info["video_duration"] - long_speech.duration) <= 0.5 / FPS
    assert abs(info["audio_duration"] - long_speech.duration) <= 1.0 / FPS
    audio = load_audio(result.path, target_rate=long_speech.audio.rate)
    n = min(len(audio.samples), len(long_speech.audio.samples))
    # the source's own audio (a 220 Hz tone) is dropped: the track is the speech
    assert np.corrcoef(audio.samples[:n], long_speech.audio.samples[:n])[0, 1] > 0.9
    assert "ping-pong" in session.rig.fitted


def test_every_output_frame_shows_its_clip_frame_no_drift_no_jumps(dubbed, clip_avatar, long_speech):
    """Outside the mouth each output frame is the clip frame duration fitting picked, from
    the first frame to the last (so the offset at the end equals the one at the start), and
    consecutive frames differ no more than the clip's own consecutive frames do."""
    result, session = dubbed
    order, _ = fit_frames(result.frames, clip_avatar.clip.n_frames, session.rig.speed, FPS)
    first = manifest_of(clip_avatar.clip)["first"]
    with VideoReader(result.path) as video, open_frames(clip_avatar.clip) as frames:
        out = [f.image[:80].astype(np.float32) for f in video]  # above the mouth: forehead, eyes
        src = [frames[first + i][:80].astype(np.float32) for i in range(clip_avatar.clip.n_frames)]
    for i in (0, 1, len(out) // 3, len(out) // 2, len(out) - 2, len(out) - 1):
        same = np.abs(out[i] - src[order[i]]).mean()
        nxt = np.abs(out[i] - src[min(order[i] + 2, len(src) - 1)]).mean()
        assert same < 2.5 and same < 0.6 * nxt, (i, same, nxt)
    step_out = max(np.abs(out[i + 1] - out[i]).mean() for i in range(len(out) - 1))
    step_src = max(np.abs(src[i + 1] - src[i]).mean() for i in range(len(src) - 1))
    assert step_out < 1.3 * step_src + 1.0


def test_the_new_speech_drives_the_mouth_lips_seal_on_bilabials(dubbed, long_speech):
    """Read back with FaceMesh: /p b m/ closed, open vowels open, although the source's own
    mouth keeps talking underneath (neutralised)."""
    from pipeline.quality.measure import mouth_track
    from pipeline.quality.metrics import bilabial_closure, open_vowel_rate

    result, _ = dubbed
    track = mouth_track(result.path)
    closed = bilabial_closure(track, long_speech.phonemes)
    opened = open_vowel_rate(track, long_speech.phonemes)
    assert closed.count >= 10 and opened.count >= 5
    assert closed.rate >= 0.9, f"lips apart on {closed.misses}"
    assert opened.rate >= 0.8, f"mouth not open on {opened.misses}"


def test_background_modes_work_on_a_clip(clip_avatar, tmp_path):
    from pipeline.options import VoiceOptions

    speech = pipeline.synthesize("Hi Bob.", VoiceOptions(variation=0.0))
    out = tmp_path / "green.mp4"
    green = BackgroundOptions(mode="color", color="#00ff00")
    result = pipeline.render_to_file(clip_avatar, speech, out, background=green)
    assert result.frames == round(speech.duration * FPS)
    with VideoReader(out) as video:
        corner = next(iter(video)).image[:10, :10].reshape(-1, 3).mean(0)
    assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60
    small = pipeline.render_to_file(clip_avatar, speech, tmp_path / "blur.mp4", RenderOptions(size=160),
                                    background=BackgroundOptions(mode="blur"))
    assert small.size == (160, 120) and small.frames == result.frames


def test_cli_takes_a_clip_as_the_avatar(clip_avatar, truth, tmp_path, capsys):
    import launch

    out = tmp_path / "cli.mp4"
    args = ["render", "--avatar", str(truth.path), "--text", "Hi Bob.", "--out", str(out), "--clip-audio", "-18"]
    assert launch.main(args) == 0
    assert out.is_file() and "Wrote" in capsys.readouterr().out


def test_studio_avatar_tab_takes_a_clip(clip_avatar, truth):
    from studio.handlers import Handlers

    handlers, photo = Handlers(), str(pipeline.sample_photo())
    still, cached, status = handlers.clip_changed(str(truth.path), photo, None)
    assert cached.value.kind == "clip" and "Presenter clip" in status and still.shape[:2] == (240, 320)
    assert handlers._avatar(photo, cached) is cached  # renders with the photo input unchanged use the clip
    assert handlers._avatar(str(truth.path), cached).value.kind == "clip"
    back = handlers.clip_changed(None, photo, cached)  # clip cleared: the photo again
    assert back[1].value.kind == "photo"


def test_a_clip_uploaded_without_its_suffix_is_still_a_clip(clip_avatar, truth, tmp_path):
    blob = tmp_path / "avatar"
    blob.write_bytes(truth.path.read_bytes())
    assert pipeline.prepare_avatar(str(blob)).kind == "clip"


def test_the_clips_own_sound_can_be_mixed_under_the_voice(clip_avatar, long_speech):
    from pipeline.media.clip_audio import with_clip_audio

    mixed = with_clip_audio(long_speech, clip_avatar, -12.0)
    voice, out = long_speech.audio.samples, mixed.audio.samples
    assert len(out) == len(voice) and mixed.phonemes == long_speech.phonemes
    under = out - voice
    level = 20 * np.log10(np.sqrt(np.mean(under**2)) / np.sqrt(np.mean(voice**2)))
    assert -13.0 < level < -11.0
    spectrum = np.abs(np.fft.rfft(under[: 16384]))
    peak_hz = np.argmax(spectrum) * long_speech.audio.rate / 16384
    assert abs(peak_hz - 220) < 5  # the clip's tone
