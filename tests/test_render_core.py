"""The render core: RenderRequest (validation, JSON), the render session (chunks, files,
progress, cancel), the engine contract and the option rules shared by CLI, UI and API."""

from __future__ import annotations

import argparse
import dataclasses
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline
from pipeline.errors import InvalidOption, InvalidText, UnsupportedMedia
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions, json_schema, spec
from pipeline.render import Cancelled, CancelToken, RenderSession
from pipeline.request import FaceSource, RenderRequest, VoiceSource
from pipeline.types import AudioClip

# --------------------------------------------------------------------------- request


def test_request_round_trips_through_json(tmp_path):
    req = RenderRequest(
        face=FaceSource(path="face.jpg", multi_face="refuse"),
        voice=VoiceSource(text="Hello there.", voice=VoiceOptions(voice="espeak:de", speed=1.2)),
        render=RenderOptions(fps=30.0, size=720, head_motion=0.1, seed=7),
        background=BackgroundOptions(mode="blur", blur=0.8, framing="portrait"),
        export=ExportOptions(format="webm", quality="social", subtitles="vtt"),
    )
    text = req.to_json()
    assert json.loads(text)["voice"]["voice"]["voice"] == "espeak:de"
    back = RenderRequest.from_json(text)
    assert back == req
    assert RenderRequest.from_json(back.to_json()) == req
    # sections left out take their defaults
    assert RenderRequest.from_dict({"voice": {"text": "Hi"}}) == RenderRequest(voice=VoiceSource(text="Hi"))


@pytest.mark.parametrize(
    "data, error, match",
    [
        ({"voice": {"text": "Hi"}, "render": {"mouth_scale": 9}}, InvalidOption, "mouth_scale must be between 0.5 and 1.5"),
        ({"voice": {"text": "Hi"}, "render": {"fsp": 25}}, InvalidOption, "Unknown option.*fsp"),
        ({"voice": {"text": "Hi"}, "extra": {}}, InvalidOption, "Unknown request section"),
        ({"voice": {"text": "Hi"}, "render": {"engine": "nope"}}, InvalidOption, "engine must be one of .*warp"),
        ({"voice": {"text": "Hi"}, "export": {"format": "avi"}}, InvalidOption, "format must be one of"),
        ({"voice": {"text": "Hi", "voice": {"speed": 7}}}, InvalidOption, "speed must be between"),
        ({"voice": {"text": "Hi", "timing": "guess"}}, InvalidOption, "timing must be one of"),
    ],
)
def test_request_json_is_checked_by_the_same_rules(data, error, match):
    with pytest.raises(error, match=match):
        RenderRequest.from_dict(data).validate(check_files=False)


def test_request_validation_across_groups(tmp_path):
    with pytest.raises(InvalidText, match="either a text or a recording"):
        RenderRequest().validate()
    with pytest.raises(InvalidText, match="either a text or a recording"):
        RenderRequest(voice=VoiceSource(text="Hi", audio="a.wav")).validate(check_files=False)
    long = RenderRequest(voice=VoiceSource(text="x" * 50, voice=VoiceOptions(max_chars=10)))
    with pytest.raises(InvalidText, match="50 characters"):
        long.validate()
    transparent = RenderRequest(voice=VoiceSource(text="Hi"), background=BackgroundOptions(mode="transparent"))
    with pytest.raises(InvalidOption, match="transparent background needs .*webm, mov, png.* not mp4"):
        transparent.validate()
    ok = dataclasses.replace(transparent, export=ExportOptions(format="mov"))
    assert ok.validate().export_alpha.alpha is True
    with pytest.raises(UnsupportedMedia, match="missing.jpg' was not found"):
        RenderRequest(face=FaceSource("missing.jpg"), voice=VoiceSource(text="Hi")).validate()


# --------------------------------------------------------------------------- option rules


def test_one_rule_per_option_feeds_cli_ui_validation_and_schema():
    import gradio as gr

    from pipeline.cli_options import add_dataclass_args
    from studio.controls import option_control

    s = spec(RenderOptions, "mouth_scale")
    assert s.range == (0.5, 1.5)
    with gr.Blocks():
        slider = option_control(RenderOptions, "mouth_scale")
    assert (slider.minimum, slider.maximum) == s.range
    schema = json_schema(RenderOptions)["properties"]
    assert (schema["mouth_scale"]["minimum"], schema["mouth_scale"]["maximum"]) == s.range
    assert schema["engine"]["enum"] == pipeline.engine_names()
    assert schema["size"]["anyOf"][1] == {"enum": [0]}
    RenderOptions(mouth_scale=1.5)
    with pytest.raises(InvalidOption):
        RenderOptions(mouth_scale=1.6)
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, RenderOptions)
    engine = next(a for a in parser._actions if a.dest == "RenderOptions.engine")
    assert engine.choices == pipeline.engine_names()
    assert next(a for a in parser._actions if a.dest == "RenderOptions.mouth_scale").type is float


# --------------------------------------------------------------------------- session


def _read_png_sequence(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))]
    with wave.open(str(folder / "audio.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return frames, pcm


def _pcm16(samples: np.ndarray) -> np.ndarray:
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def test_streamed_chunks_equal_the_file_frames_and_samples(avatar, speech, tmp_path):
    opts = RenderOptions(size=256)
    out = tmp_path / "frames"
    result = RenderSession(avatar, speech, opts).write(out, ExportOptions(format="png"))
    file_frames, file_pcm = _read_png_sequence(out)
    chunks = list(RenderSession(avatar, speech, opts).chunks(seconds=1.0, first=0.5))
    assert len(file_frames) == result.frames == sum(len(c.frames) for c in chunks)
    assert len(chunks[0].frames) == round(0.5 * opts.fps) and len(chunks[1].frames) == round(1.0 * opts.fps)
    streamed = [f for c in chunks for f in c.frames]
    assert all(np.array_equal(a, b) for a, b in zip(streamed, file_frames))
    audio = np.concatenate([c.audio.samples for c in chunks])
    assert np.array_equal(audio, speech.audio.samples)
    assert np.array_equal(_pcm16(audio), file_pcm)
    for c in chunks[:-1]:  # each chunk carries exactly its own audio
        assert abs(len(c.audio.samples) / c.audio.rate - c.duration) <= 1 / c.audio.rate
        assert c.start == pytest.approx(c.first_frame / opts.fps)


def test_progress_is_reported_and_cancel_leaves_nothing(avatar, speech, tmp_path):
    seen: list[float] = []
    out = tmp_path / "done.mp4"
    RenderSession(avatar, speech, RenderOptions(size=256), progress=lambda f, m: seen.append(f)).write(out)
    assert out.is_file() and seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    token = CancelToken()

    def stop_halfway(fraction: float, message: str) -> None:
        if fraction > 0.5:
            token.cancel()

    cancelled = tmp_path / "cancelled.mp4"
    session = RenderSession(avatar, speech, RenderOptions(size=256), progress=stop_halfway, cancel=token)
    with pytest.raises(Cancelled):
        session.write(cancelled)
    assert 0 < session.frames_made < session.n_frames
    assert not cancelled.exists() and list(tmp_path.iterdir()) == [out]


def test_source_size_is_capped_for_huge_photos(avatar):
    big = dataclasses.replace(avatar, image=np.zeros((2400, 2400, 3), np.uint8))
    from pipeline.render import output_longest

    assert output_longest(big, RenderOptions()) == 1920
    assert output_longest(big, RenderOptions(size=3840)) == 3840
    assert output_longest(avatar, RenderOptions()) == 0  # 512 px: kept as it is


# --------------------------------------------------------------------------- engine contract


class ListeningEngine:
    """A test engine that records what the contract hands it."""

    from pipeline.engines import EngineInfo

    info = EngineInfo("listening", sources=("photo", "clip"), carries_matte=False)
    heard: list[AudioClip] = []

    def prepare(self, avatar, opts):
        return avatar.image[:64, :64].copy()

    def output_size(self, prepared):
        return prepared.shape[1], prepared.shape[0]

    def render(self, prepared, tracks, audio):
        self.heard.append(audio)
        for _ in range(tracks.n_frames):
            yield prepared


def test_engines_get_the_audio_and_names_come_from_the_registry(monkeypatch, avatar, speech, tmp_path):
    from pipeline import engines

    monkeypatch.setitem(engines.REGISTRY, "listening", f"{__name__}:ListeningEngine")
    assert "listening" in pipeline.engine_names() and "warp" in pipeline.engine_names()
    result = RenderSession(avatar, speech, RenderOptions(engine="listening")).write(tmp_path / "l.mp4")
    assert result.size == (64, 64)
    assert ListeningEngine.heard[-1] is speech.audio


def test_a_photo_only_engine_refuses_a_clip_avatar(avatar, speech):
    from pipeline.engines import EngineInfo, check_source
    from pipeline.types import Clip

    class PhotoOnly:  # warp animates clips too (tests/test_video_avatar*.py); the contract still refuses
        info = EngineInfo("photo-only", sources=("photo",), carries_matte=False)

    clip = Clip("presenter.mp4", 25.0, 1, np.zeros((1, 478, 3), np.float32))
    with pytest.raises(InvalidOption, match="photo-only engine animates photo avatars, not a clip"):
        check_source(PhotoOnly(), dataclasses.replace(avatar, clip=clip))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- first run


def test_cli_renders_the_sample_face_without_avatar(tmp_path, monkeypatch, capsys):
    import launch

    out = tmp_path / "first.mp4"
    assert launch.main(["render", "--text", "Hi there.", "--out", str(out), "--size", "256"]) == 0
    assert out.is_file() and "Wrote" in capsys.readouterr().out
    info = pipeline.export.probe(out)
    assert info["width"] == 256 and info["audio_codec"] == "aac"


def test_an_engine_without_the_matte_is_matted_frame_by_frame(monkeypatch, avatar, speech, tmp_path):
    """The contract: RGB frames from an engine that does not carry the matte still get the
    new background (the session mattes each frame itself)."""
    from pipeline import engines

    monkeypatch.setitem(engines.REGISTRY, "fullframe", f"{__name__}:FullFrameEngine")
    bg = BackgroundOptions(mode="color", color="#00ff00", light_wrap=0.0, color_match=0.0)
    frames = list(RenderSession(avatar, speech, RenderOptions(engine="fullframe"), bg).frames())
    assert frames[0].shape == avatar.image.shape
    corner = frames[0][:20, :20].reshape(-1, 3).mean(0)  # background in the astronaut photo's corner
    assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60
    face = avatar.face.landmarks[1, :2].astype(int)  # the nose stays the person's own pixels
    assert np.abs(frames[0][face[1], face[0]].astype(int) - avatar.image[face[1], face[0]]).max() < 30


class FullFrameEngine(ListeningEngine):
    from pipeline.engines import EngineInfo

    info = EngineInfo("fullframe", sources=("photo",), carries_matte=False)

    def prepare(self, avatar, opts):
        return avatar.image.copy()
