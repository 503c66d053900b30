"""End to end: Piper sentence on the astronaut photo -> MP4, checked on the file and on
the mouth as FaceMesh sees it in the decoded frames."""

from __future__ import annotations

import av
import numpy as np
import pytest

import pipeline
from pipeline import timing
from pipeline.export import probe
from pipeline.face.landmarks import detect_faces, mouth_gap_ratio
from pipeline.options import RenderOptions
from pipeline.phones import BILABIALS, OPEN_VOWELS


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def gaps(frames) -> np.ndarray:
    out = []
    for f in frames:
        faces = detect_faces(f)
        out.append(mouth_gap_ratio(faces[0]) if faces else np.nan)
    return np.array(out)


def test_file_is_h264_aac_cfr_with_exact_frame_count(rendered, speech):
    info = probe(rendered.path)
    n = timing.frame_count(speech.duration, 25)
    assert rendered.frames == n
    assert info["video_codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["audio_codec"] == "aac"
    assert abs(info["fps"] - 25.0) < 1e-6
    assert info["frames"] == n
    assert abs(info["video_duration"] - speech.duration) <= 1 / 25
    assert abs(info["audio_duration"] - speech.duration) <= 1 / 25
    assert (info["width"], info["height"]) == (512, 512)


def test_mouth_closes_on_bilabials_and_opens_on_open_vowels(rendered, speech):
    g = gaps(decode(rendered.path))
    assert not np.isnan(g).any(), "FaceMesh lost the face in a rendered frame"
    fps = 25

    def window(p):
        a = max(0, timing.frame_index(p.start, fps) - 1)
        b = min(len(g), timing.frame_index(p.end, fps) + 2)
        return g[a:b]

    bil = [p for p in speech.phonemes if p.symbol in BILABIALS]
    opn = [p for p in speech.phonemes if p.symbol in OPEN_VOWELS]
    assert len(bil) >= 4 and len(opn) >= 3
    # FaceMesh reads touching lips of an H.264 frame as a gap of 0.01-0.055 of the mouth
    # width (pipeline.quality uses the same 0.06 ceiling for "closed")
    closed = [window(p).min() < 0.06 for p in bil]
    opened = [window(p).max() > 0.15 for p in opn]
    assert all(closed), f"bilabials not closed: {[round(float(window(p).min()), 3) for p in bil]}"
    assert all(opened), f"open vowels not open: {[round(float(window(p).max()), 3) for p in opn]}"
    # silence at the very start is closed
    assert g[0] < 0.05


def test_render_is_deterministic_and_static_outside_the_face(avatar, speech):
    opts = RenderOptions(blinks=False, head_motion=0.0, brows=0.0)
    a = list(pipeline.render(avatar, speech, opts))
    b = list(pipeline.render(avatar, speech, opts))
    assert len(a) == timing.frame_count(speech.duration, 25)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # everything above the nose and outside the lower face is pixel-identical to the source
    lm = avatar.face.landmarks
    nose_y = int(lm[2, 1]) - 2
    src = avatar.image
    for f in a[::5]:
        assert np.array_equal(f[:nose_y], src[:nose_y])
        assert np.array_equal(f[:, :150], src[:, :150]) and np.array_equal(f[:, 320:], src[:, 320:])


def test_blinks_close_the_eyes_sometimes(avatar):
    speech = pipeline.synthesize("This sentence is long enough for the avatar to blink at least once, I hope.")
    tracks = pipeline.plan(speech, RenderOptions(seed=3))
    blink = tracks.get("blink")
    assert blink.max() > 0.95
    assert (blink > 0.5).mean() < 0.1


def _to_m4a(src, dst):
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
        for frame in inp.decode(audio=0):
            for r in resampler.resample(frame):
                for p in stream.encode(r):
                    out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    return dst


@pytest.mark.parametrize(
    "suffix,text,timing,source",
    [
        (".wav", "", "acoustic", "acoustic"),
        (".m4a", "", "auto", "phones"),
        (".wav", "Peter bought a bamboo map for Bob.", "auto", "align|synth"),
        (".wav", "Peter bought a bamboo map for Bob.", "synth", "synth"),
    ],
)
def test_uploaded_audio_animates(avatar, speech_wav, tmp_path, suffix, text, timing, source):
    src = speech_wav if suffix == ".wav" else _to_m4a(speech_wav, tmp_path / "speech.m4a")
    speech = pipeline.load_speech(src, text=text, timing=timing)
    assert speech.source in source.split("|")
    assert (speech.phonemes is None) == (source == "acoustic")
    res = pipeline.render_to_file(avatar, speech, tmp_path / "from_audio.mp4")
    info = probe(res.path)
    assert info["frames"] == timing_frames(speech.duration)
    g = gaps(decode(res.path)[::2])
    assert np.nanmax(g) > 0.12 and np.nanmin(g) < 0.05


def timing_frames(duration: float) -> int:
    return timing.frame_count(duration, 25)


def test_forced_alignment_matches_tts_timing(speech):
    """Alignment of the Piper sentence lands its bilabials near Piper's own times."""
    from pipeline.speech import align

    phones, words = align.align(speech.audio, speech.text)
    assert [w.text for w in words][:3] == ["peter", "bought", "a"]
    truth = [p for p in speech.phonemes if p.symbol in "pbm"]
    found = [p for p in phones if p.symbol in "pbm"]
    assert len(found) == len(truth)
    errs = [abs(0.5 * (a.start + a.end) - 0.5 * (b.start + b.end)) for a, b in zip(truth, found)]
    assert float(np.median(errs)) < 0.04


def test_alignment_by_synthesis_matches_tts_timing_in_english_and_german(speech):
    """espeak-ng speaks the transcript, DTW maps its phoneme times onto the recording."""
    from pipeline.options import VoiceOptions
    from pipeline.speech.dtw import align_by_synthesis

    cases = [(speech, speech.text, "en-us")]
    de = pipeline.synthesize("Peter baut mit Mama eine Brücke am Meer.", VoiceOptions(voice="espeak:de"))
    cases.append((de, de.text, "de"))
    for truth, text, lang in cases:
        phones, words = align_by_synthesis(truth.audio, text, lang)
        assert words and phones[-1].end <= truth.duration + 1e-6
        true_b = [p for p in truth.phonemes if p.symbol in "pbm"]
        found = [p for p in phones if p.symbol in "pbm"]
        assert len(found) == len(true_b)
        errs = [abs(0.5 * (a.start + a.end) - 0.5 * (b.start + b.end)) for a, b in zip(true_b, found)]
        assert float(np.median(errs)) < 0.04, (lang, errs)


def test_gaze_moves_the_iris_but_not_the_eye_corners(avatar):
    from pipeline.engines import get_engine
    from pipeline.types import Tracks

    rig = get_engine("warp").prepare(avatar, RenderOptions())
    tr = Tracks(25, 2)
    tr.set("gaze", np.array([0.0, 1.0]))
    still, turned = list(get_engine("warp").render(rig, tr, None))
    lm = avatar.face.landmarks
    for corner in (33, 133, 362, 263):
        x, y = lm[corner, :2].astype(int)
        assert np.abs(still[y, x].astype(int) - turned[y, x]).max() <= 3
    iris = lm[468, :2].astype(int)  # refined landmarks: iris centre
    x, y = iris
    assert np.abs(still[y - 3 : y + 4, x - 6 : x + 7].astype(int) - turned[y - 3 : y + 4, x - 6 : x + 7]).mean() > 8
    g = pipeline.plan(pipeline.synthesize("Hello there, how are you today?"), RenderOptions(gaze=0.5)).get("gaze")
    assert 0 < np.abs(g).max() <= 0.5


def test_photo_frames_carry_their_i420_with_only_the_redrawn_part_converted(avatar, speech):
    from pipeline.engines import get_engine
    from pipeline.export.yuv import i420_of, to_i420
    from pipeline.render import plan
    from pipeline.sources import resized_avatar

    engine = get_engine("warp")
    opts = RenderOptions(size=256)
    rig = engine.prepare(resized_avatar(avatar, 256), opts)
    frames = list(engine.render(rig, plan(speech, opts), speech.audio))
    assert frames and all(i420_of(f) is not None for f in frames)
    for f in frames[:: max(1, len(frames) // 8)]:  # what the writer encodes = converting the whole frame
        np.testing.assert_array_equal(i420_of(f), to_i420(np.asarray(f)))
    assert not frames[0].flags.writeable and rig.image.flags.writeable  # the frame is read-only, its source not
