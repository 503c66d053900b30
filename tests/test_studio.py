"""The studio UI: generated controls and handlers in-process, then the real app
(``python launch.py --port N`` in a subprocess) driven through its named API endpoints."""

from __future__ import annotations

import dataclasses

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from pipeline.options import RenderOptions
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAY = "Hello there, my name is Avatar."
LANDMARK_GREEN = np.array([80, 255, 120])  # the dot colour pipeline.still draws


# --------------------------------------------------------------------------- a served studio


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@contextlib.contextmanager
def serve_studio(log_path: Path, timeout: float = 90.0, data_dir: Path | None = None) -> Iterator[str]:
    """Run ``python launch.py --data-dir DIR --port <free port>`` (DIR: ``data_dir``, or a
    folder beside ``log_path``); yield its URL once it serves; stop it after."""
    import httpx

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(
        GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", GLOG_minloglevel="2", NO_PROXY="127.0.0.1,localhost"
    )
    for attempt in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                # its own data folder: the job database of a test studio never meets the user's or another run's
                [sys.executable, str(ROOT / "launch.py"), "--data-dir", str(data_dir or log_path.parent / "data"), "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + timeout
            ready = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    ready = httpx.get(url + "/", timeout=2.0, trust_env=False).status_code == 200
                except httpx.HTTPError:
                    pass
                if ready:
                    break
                time.sleep(0.25)
            if ready:
                yield url
                return
            if proc.poll() is None:
                pytest.fail(f"the studio did not serve {url} within {timeout:.0f} s:\n{_tail(log_path)}")
            if attempt == 2 or "port" not in _tail(log_path).lower():
                pytest.fail(f"the studio exited with code {proc.returncode}:\n{_tail(log_path)}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory) -> Iterator[str]:
    with serve_studio(tmp_path_factory.mktemp("studio") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def client(studio_url, tmp_path_factory):
    from gradio_client import Client

    return Client(
        studio_url,
        verbose=False,
        download_files=str(tmp_path_factory.mktemp("downloads")),
        analytics_enabled=False,
        httpx_kwargs={"timeout": 120, "trust_env": False},
    )


@pytest.fixture(scope="module")
def blank_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "wall.png"
    Image.fromarray(np.full((320, 320, 3), 128, np.uint8)).save(path)
    return path


def _path(value: Any) -> Path:
    """A file output from gradio_client: a path, or a dict with one (gr.Video)."""
    if isinstance(value, dict):
        value = value.get("video") or value.get("path")
    return Path(value)


def _probe(path: Path) -> dict[str, Any]:
    try:
        from pipeline.export import probe
    except ImportError:  # the export module is still being written: count with PyAV
        import av

        with av.open(str(path)) as c:
            v = c.streams.video[0]
            info = {"width": v.width, "height": v.height, "fps": float(v.average_rate), "video_codec": v.name}
            info["frames"] = sum(1 for p in c.demux(v) if p.size)
            info["audio_codec"] = c.streams.audio[0].name if c.streams.audio else None
            info["duration"] = c.duration / 1e6 if c.duration else None
        return info
    return probe(path)


# --------------------------------------------------------------------------- in-process


def test_render_controls_come_from_render_options():
    import gradio as gr

    from pipeline.options import RenderOptions, field_help
    from studio.controls import option_controls

    with gr.Blocks():
        controls = option_controls(RenderOptions)
    fields = [f.name for f in dataclasses.fields(RenderOptions)]  # engine: a menu now that wav2lip is there
    assert list(controls) == fields
    helps = field_help(RenderOptions)
    for name, control in controls.items():
        assert control.info and control.info.lower() == helps[name].lower()
    fps, size, mouth = controls["fps"], controls["size"], controls["mouth_scale"]
    assert [c[1] for c in fps.choices] == [24, 25, 30, 50, 60] and fps.value == 25
    assert [c[1] for c in size.choices] == [0, 512, 720, 1080, 1920, 3840] and size.value == 0
    assert isinstance(mouth, gr.Slider) and (mouth.minimum, mouth.maximum, mouth.value) == (0.5, 1.5, 1.0)
    assert isinstance(controls["blinks"], gr.Checkbox) and controls["blinks"].value is True
    assert isinstance(controls["seed"], gr.Number) and controls["seed"].precision == 0


def test_options_from_ui_values():
    from pipeline.options import RenderOptions
    from studio.controls import options_from_values

    values = {"fps": 30, "size": "720", "mouth_scale": 1.2, "blinks": False, "seed": None}
    opts = options_from_values(RenderOptions, values)
    assert opts == RenderOptions(fps=30.0, size=720, mouth_scale=1.2, blinks=False, seed=0)
    assert isinstance(opts.fps, float) and isinstance(opts.size, int)
    with pytest.raises(ValueError, match="Seed"):
        options_from_values(RenderOptions, {"seed": "abc"})


class FakeServices:
    """Stands in for the pipeline facade: records calls, writes a small file as the 'video'."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare_avatar(self, source, *, name="avatar"):
        from pipeline.errors import NoFaceFound
        from pipeline.types import Avatar, FaceInfo

        self.calls.append("prepare_avatar")
        if "wall" in str(source):
            raise NoFaceFound("No face was found in the image.")
        face = FaceInfo(np.zeros((478, 3), np.float32), (10, 10, 110, 130))
        return Avatar(np.zeros((200, 160, 3), np.uint8), face, key=str(source), name=name)

    def synthesize(self, text, opts):
        from pipeline.errors import InvalidText
        from pipeline.types import AudioClip, Speech

        self.calls.append(f"synthesize:{opts.speed}")
        if not text.strip():
            raise InvalidText("The text is empty.")
        return Speech(AudioClip(np.zeros(16000, np.float32), 16000), text=text, source="fake")

    def load_speech(self, path, *, text="", language="en"):
        from pipeline.types import AudioClip, Speech

        self.calls.append("load_speech")
        return Speech(AudioClip(np.zeros(8000, np.float32), 16000), source="acoustic")

    def render_to_file(self, avatar, speech, out, opts, export_opts=None, progress=lambda f, m: None, background=None,
                       cancel=None):
        from pipeline import RenderResult

        self.calls.append(f"render:{opts.fps:g}:{opts.seed}")
        progress(0.5, "Frame 1 of 2")
        Path(out).write_bytes(b"video")
        return RenderResult(Path(out), 25, opts.fps, speech.duration, 0.1, avatar.size)

    def still(self, avatar):
        return avatar.image

    def sample_photo(self):
        return Path("sample-face.jpg")


def test_handlers_compute_on_demand_and_reuse_session_state(tmp_path):
    import gradio as gr

    from studio.handlers import AUDIO, TEXT, Handlers

    fake = FakeServices()
    h = Handlers(fake, render_root=tmp_path / "renders")
    progress = lambda *a, **k: None  # noqa: E731
    # nothing prepared: the render finds the face and makes the speech itself
    video, download, status, avatar, speech = h.render(
        "me.png", TEXT, "Hi.", 1.25, None, None, None, progress, fps=30, seed=3
    )
    assert fake.calls == ["prepare_avatar", "synthesize:1.25", "render:30:3"]
    assert video == download and Path(video).read_bytes() == b"video" and Path(video).name == "me.mp4"
    assert "25 frames at 30 fps" in status and "160×200" in status
    # same inputs: the session's avatar and speech are reused, and the render gets a new folder
    video2, *_ = h.render("me.png", TEXT, "Hi.", 1.25, None, avatar, speech, progress, fps=30, seed=3)
    assert fake.calls[3:] == ["render:30:3"]
    assert Path(video2).parent != Path(video).parent
    # changed inputs: recomputed
    h.render("me.png", AUDIO, "Hi.", 1.25, "take2.wav", avatar, speech, progress)
    assert fake.calls[4:] == ["load_speech", "render:25:0"]
    # missing inputs and pipeline errors become specific gr.Errors
    for call, message in [
        (lambda: h.render("me.png", AUDIO, "", 1.0, None, None, None, progress), "Record or upload the speech first"),
        (lambda: h.prepare_avatar("wall.png"), "No face was found"),
        (lambda: h.preview_voice(TEXT, "  ", 1.0, None), "The text is empty"),
        (lambda: h.render("me.png", TEXT, "Hi.", 1.0, None, None, None, progress, seed="x"), "Seed"),
    ]:
        with pytest.raises(gr.Error, match=message):
            call()
    # a cleared photo clears the preview without an error, and renders fall back to the sample face
    still, state, note = h.photo_changed(None)
    assert (still, state) == (None, None) and "sample" in note
    fake.calls.clear()
    video, *_ = h.render(None, TEXT, "Hi.", 1.0, None, None, None, progress)
    assert fake.calls[0] == "prepare_avatar" and Path(video).name == "sample-face.mp4"


def test_share_without_internet_only_warns(monkeypatch, caplog):
    import gradio as gr

    import studio.app as app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(app, "internet_available", lambda *a, **k: False)
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    with caplog.at_level(logging.WARNING, logger="studio.app"):
        app.launch(host="127.0.0.1", port=7999, share=True)
    assert seen["share"] is False and seen["server_port"] == 7999
    assert "No internet connection" in caplog.text


# --------------------------------------------------------------------------- the served app


def test_named_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/prepare_avatar", "/preview_voice", "/render"} <= set(api)
    params = [p["parameter_name"] for p in api["/render"]["parameters"]]
    fields = [f.name for f in dataclasses.fields(RenderOptions) if f.name != "random_weights"]  # CLI/bench only
    head = ["image", "voice_mode", "text", "speed", "audio", "voice", "transcript", "language", *fields]
    assert params[: len(head)] == head
    rest = params[len(head) :]
    assert {"export_format", "export_quality", "export_subtitles", "bg_mode", "bg_image", "bg_video", "bg_framing"} <= set(rest)
    assert all(p.startswith(("export_", "bg_")) for p in rest)


def test_photo_shows_landmarks(client, astronaut_png, astronaut):
    from gradio_client import handle_file

    still, status = client.predict(image=handle_file(str(astronaut_png)), api_name="/prepare_avatar")
    drawn = np.asarray(Image.open(still).convert("RGB")).astype(int)
    assert drawn.shape == astronaut.shape
    green = np.abs(drawn - LANDMARK_GREEN).max(axis=2) < 40
    assert green.sum() > 300  # the landmark dots
    ys, xs = np.nonzero(green)
    assert 150 < xs.mean() < 300 and 50 < ys.mean() < 200  # on the astronaut's face
    assert "478 landmarks" in status


def test_render_text_end_to_end(client, astronaut_png):
    from gradio_client import handle_file

    video, download, status = client.predict(
        image=handle_file(str(astronaut_png)), voice_mode="text", text=SAY, fps=25, size=0, api_name="/render"
    )
    path = _path(video)
    assert path.is_file() and path.suffix == ".mp4" and _path(download).is_file()
    info = _probe(path)
    assert (info["width"], info["height"]) == (512, 512)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac" and info["fps"] == 25
    assert 1.2 < info["duration"] < 4.0
    assert abs(info["frames"] - round(info["duration"] * 25)) <= 1
    assert f"{info['frames']} frames at 25 fps" in status and "512×512" in status


def test_render_transparent_webm_in_portrait(client, astronaut_png):
    from gradio_client import handle_file

    video, download, status = client.predict(
        image=handle_file(str(astronaut_png)), voice_mode="text", text="Hi.", bg_mode="transparent",
        bg_framing="portrait", bg_resolution="720p", export_format="webm", api_name="/render",
    )
    path = _path(download)
    assert path.suffix == ".webm" and _path(video) == path
    info = _probe(path)
    assert (info["width"], info["height"]) == (720, 1280) and info["alpha"] is True
    assert "720×1280" in status


def test_render_uploaded_speech_with_transcript(client, astronaut_png, speech_wav):
    from gradio_client import handle_file

    video, download, status = client.predict(
        image=handle_file(str(astronaut_png)), voice_mode="audio", audio=handle_file(str(speech_wav)),
        transcript="Peter bought a bamboo map for Bob.", language="en-US", api_name="/render",
    )
    info = _probe(_path(video))
    assert info["video_codec"] == "h264" and abs(info["frames"] - round(info["duration"] * 25)) <= 1


def test_preview_voice(client):
    import av

    audio, status = client.predict(voice_mode="text", text=SAY, speed=1.0, api_name="/preview_voice")
    with av.open(str(_path(audio))) as c:
        seconds = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert 1.2 < seconds < 4.0
    assert status.startswith("**Voice ready**")


def test_specific_errors(client, astronaut_png, blank_png):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    face, wall = handle_file(str(astronaut_png)), handle_file(str(blank_png))
    for kwargs, message in [
        (dict(image=wall, api_name="/prepare_avatar"), "No face was found in the image"),
        (dict(image=face, text="   ", api_name="/render"), "The text is empty"),
        (dict(image=face, voice_mode="audio", api_name="/render"), "Record or upload the speech first"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(**kwargs)


def test_stop_cancels_this_sessions_render_only(tmp_path):
    import gradio as gr

    from pipeline.render import Cancelled
    from studio.handlers import TEXT, Handlers

    class Req:
        def __init__(self, session_hash):
            self.session_hash = session_hash

    class StoppableServices(FakeServices):
        def render_to_file(self, avatar, speech, out, opts, export_opts=None, progress=lambda f, m: None,
                           background=None, cancel=None):
            assert h.stop(Req("other")) == "Nothing is rendering."  # another tab's Stop does not touch it
            assert not cancel.cancelled
            assert h.stop(Req("me")) == "Stopping…"
            cancel.check()  # what the render session does between frames
            raise AssertionError("not reached")

    h = Handlers(StoppableServices(), render_root=tmp_path / "renders")
    with pytest.raises(gr.Error, match="stopped"):
        h.render("me.png", TEXT, "Hi.", 1.0, None, None, None, lambda *a, **k: None, request=Req("me"))
    assert h.stop(Req("me")) == "Nothing is rendering."
    assert issubclass(Cancelled, Exception)
