"""The HTTP API's routes on a fake job system (FastAPI TestClient, no server, no renders).

Auth and the bind rule, the render form (every kind of bad input gets its 4xx JSON error,
never a 500), back-pressure, the job routes, metrics, OpenAPI and docs. The end-to-end
tests against ``python launch.py`` with the real DBOS jobs are in test_api_server.py.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.errors import PipelineError

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


# ---------------------------------------------------------------------------- a fake JobSystem


class FakeQueueFull(PipelineError):
    code = "queue_full"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FakeNotFound(PipelineError):
    code = "not_found"


@dataclass
class FakeJob:
    id: str
    name: str
    state: str = "queued"
    progress: float = 0.0
    message: str = "Queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    timings: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    error: dict | None = None
    request: dict = field(default_factory=dict)
    webhook_url: str | None = None
    batch: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class FakeJobs:
    """The agreed JobSystem interface, in memory: submit validates and copies like the real one."""

    queue_limit_hidden = False

    def __init__(self, data_dir: Path, queue_limit: int | None = None) -> None:
        self.data_dir = data_dir
        self.limit = queue_limit
        self.jobs: dict[str, FakeJob] = {}
        self.copied: dict[str, dict[str, bytes]] = {}
        self.lock = threading.Lock()

    def submit(self, request, *, files=None, name="", webhook_url=None, batch=None):
        request.validate(check_files=True)
        with self.lock:
            active = sum(j.state in ("queued", "running") for j in self.jobs.values())
            if self.limit is not None and active >= self.limit:
                raise FakeQueueFull(f"{active} jobs queued or running", retry_after=2.5)
            job = FakeJob(uuid.uuid4().hex, name or "render", request=request.to_dict(), webhook_url=webhook_url)
            # the uploads are only there during submit: keep their bytes like the real copy
            self.copied[job.id] = {k: Path(p).read_bytes() for k, p in
                                   (("avatar", request.face.path), ("audio", request.voice.audio),
                                    ("bg_image", request.background.image)) if p}
            self.jobs[job.id] = job
        return job

    @property
    def queue_limit(self):
        return None if self.queue_limit_hidden else self.limit

    def retry_after(self):
        return 2.5

    def get(self, job_id):
        return self.jobs.get(job_id)

    def list(self, *, offset=0, limit=50, state=None):
        items = [j for j in sorted(self.jobs.values(), key=lambda j: -j.created_at) if state in (None, j.state)]
        return items[offset:offset + limit], len(items)

    def cancel(self, job_id):
        job = self.jobs.get(job_id)
        if job is None:
            raise FakeNotFound(f"no job {job_id}")
        if job.state in ("queued", "running"):
            job.state, job.error = "cancelled", {"code": "cancelled", "message": "Cancelled."}
        return job

    def counts(self):
        out = dict.fromkeys(("queued", "running", "done", "failed", "cancelled"), 0)
        for j in self.jobs.values():
            out[j.state] += 1
        return out

    def output_path(self, job_id):
        job = self.jobs.get(job_id)
        return Path(job.outputs[0]) if job and job.state == "done" and job.outputs else None

    def finish(self, job_id: str, path: Path, seconds: float, fps: float) -> None:
        job = self.jobs[job_id]
        job.state, job.progress, job.outputs = "done", 1.0, [str(path)]
        job.started_at, job.finished_at = job.created_at, job.created_at + seconds
        job.timings = {"total": seconds, "fps": fps}


# ---------------------------------------------------------------------------- fixtures


def make_client(tmp_path: Path, host: str = "127.0.0.1", share: bool = False, jobs=None, **extra) -> TestClient:
    from pipeline.api import router

    fake = jobs if jobs is not None else FakeJobs(tmp_path)
    app = FastAPI()
    app.include_router(router(host=host, share=share, extra=extra, jobs=lambda: fake))
    client = TestClient(app, raise_server_exceptions=False)
    client.fake = fake  # type: ignore[attr-defined]
    return client


@pytest.fixture()
def client(tmp_path) -> TestClient:
    return make_client(tmp_path, api_key=KEY, max_upload_mb=1, max_text_chars=500)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    from pipeline.media.audio import save_wav
    from pipeline.types import AudioClip

    folder = tmp_path_factory.mktemp("api-media")
    png = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(png, "PNG")
    t = np.arange(16000) / 16000
    wav = save_wav(AudioClip((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000), folder / "a.wav")
    return {"png": png.getvalue(), "wav": wav.read_bytes()}


def post(client: TestClient, data: dict | None = None, files: dict | None = None, headers: dict | None = None):
    """A multipart POST /api/v1/renders (also without files: TestClient would send urlencoded then)."""
    import httpx

    fields = [(k, (None, v)) for k, vs in (data or {}).items() for v in (vs if isinstance(vs, list) else [vs])]
    parts = fields + list((files or {}).items())
    if parts:
        req = httpx.Request("POST", "http://test/", files=parts)
        body, ctype = req.read(), req.headers["content-type"]
    else:  # an empty multipart body: no fields at all
        body, ctype = b"--b--\r\n", "multipart/form-data; boundary=b"
    headers = AUTH if headers is None else headers
    return client.post("/api/v1/renders", content=body, headers={**headers, "content-type": ctype})


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10, body
    return body["error"]


# ---------------------------------------------------------------------------- auth and the bind rule


def test_every_api_route_needs_the_key(client):
    for method, path in (("GET", "/api/v1/health"), ("GET", "/api/v1/renders"), ("GET", "/api/v1/voices"),
                         ("POST", "/api/v1/renders"), ("GET", "/api/v1/renders/" + "a" * 32),
                         ("DELETE", "/api/v1/renders/" + "a" * 32), ("GET", "/api/v1/openapi.json"),
                         ("GET", "/api/v1/docs")):
        resp = client.request(method, path)
        assert_error(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"].startswith("Bearer")
    assert_error(client.get("/api/v1/health", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert_error(client.get("/api/v1/health", headers={"Authorization": f"Basic {KEY}"}), 401, "unauthorized")
    assert client.get("/api/v1/health", headers=AUTH).status_code == 200


def test_non_loopback_without_a_key_is_off_with_how_to_turn_it_on(tmp_path):
    for host, share in (("0.0.0.0", False), ("192.168.1.20", False), ("127.0.0.1", True)):
        c = make_client(tmp_path, host=host, share=share)
        err = assert_error(c.get("/api/v1/health"), 403, "api_disabled")
        assert "--api-key" in err["message"] and "AVATAR_STUDIO_API_KEY" in err["message"]
        assert "--allow-open-api" in err["message"]
        assert_error(post(c, {"text": "hi"}, headers={}), 403, "api_disabled")
    assert make_client(tmp_path, host="0.0.0.0", allow_open_api=True).get("/api/v1/health").status_code == 200
    keyed = make_client(tmp_path, host="0.0.0.0", api_key=KEY)
    assert keyed.get("/api/v1/health", headers=AUTH).status_code == 200
    assert_error(keyed.get("/api/v1/health"), 401, "unauthorized")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert make_client(tmp_path, host=host).get("/api/v1/health").status_code == 200


# ---------------------------------------------------------------------------- submitting


def test_a_good_form_is_queued_with_its_options_and_files(client, media):
    opts = {"fps": 12, "size": 128, "--bg-mode": "color", "bg_color": "#112233", "format": "webm", "seed": 7.0,
            "speed": 1.2, "timing": "acoustic", "expression": "friendly"}
    resp = post(client, {"text": "Hello there.", "name": "intro-1", "webhook_url": "http://127.0.0.1:9/hook",
                         "options": json.dumps(opts)},
                {"avatar": ("face.png", media["png"], "image/png")})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "queued" and resp.headers["location"] == f"/api/v1/renders/{body['id']}"
    req = body["request"]
    assert req["voice"]["text"] == "Hello there." and req["voice"]["voice"]["speed"] == 1.2
    assert req["render"]["fps"] == 12.0 and req["render"]["size"] == 128 and req["render"]["seed"] == 7
    assert isinstance(req["render"]["seed"], int)
    assert req["background"] == {**req["background"], "mode": "color", "color": "#112233"}
    assert req["export"]["format"] == "webm" and req["voice"]["timing"] == "acoustic"
    assert req["render"]["smile"] > 0  # the friendly expression preset
    assert body["name"] == "intro-1" and body["webhook_url"] == "http://127.0.0.1:9/hook"
    assert client.fake.copied[body["id"]]["avatar"] == media["png"]
    # the upload was saved under our own name with the client's suffix, and is gone after submit
    assert Path(req["face"]["path"]).name == "avatar.png" and not Path(req["face"]["path"]).exists()


def test_audio_upload_with_transcript_and_background_image(client, media):
    resp = post(client, {"transcript": "la", "language": "en"},
                {"audio": ("take.wav", media["wav"], "audio/wav"), "background": ("bg.png", media["png"])})
    assert resp.status_code == 202, resp.text
    req = resp.json()["request"]
    assert req["voice"]["audio"].endswith("audio.wav") and req["voice"]["transcript"] == "la"
    assert req["background"]["mode"] == "image" and req["background"]["image"].endswith("background.png")
    assert client.fake.copied[resp.json()["id"]]["audio"] == media["wav"]


def test_a_language_picks_an_installed_voice_and_voices_are_listed(client):
    listed = client.get("/api/v1/voices", headers=AUTH).json()
    ids = {v["id"]: v for v in listed["voices"]}
    assert ids["en_US-joe-medium"]["installed"] is True and listed["languages"]
    resp = post(client, {"text": "Hallo Welt.", "language": "de"})
    assert resp.status_code == 202, resp.text
    voice = resp.json()["request"]["voice"]["voice"]["voice"]
    assert ids.get(voice, {}).get("language", "").startswith("de") or voice.startswith("espeak:de")
    english = client.get("/api/v1/voices", params={"language": "en"}, headers=AUTH).json()["voices"]
    assert english and all(v["language"].lower().startswith("en") for v in english)


def test_queue_full_is_429_with_retry_after(tmp_path):
    c = make_client(tmp_path, jobs=FakeJobs(tmp_path, queue_limit=2))
    codes = [post(c, {"text": f"job {i}"}, headers={}).status_code for i in range(4)]
    assert codes == [202, 202, 429, 429]
    resp = post(c, {"text": "one more"}, headers={})
    assert_error(resp, 429, "queue_full")
    assert resp.headers["retry-after"] == "3"  # 2.5 s rounded up to whole seconds
    assert resp.json()["error"]["retry_after"] == 2.5
    metrics = c.get("/metrics").text
    assert 'avatar_studio_api_rejected_total{code="queue_full"} 3.0' in metrics
    # a slot frees up: accepted again
    c.fake.jobs[next(iter(c.fake.jobs))].state = "done"
    assert post(c, {"text": "now"}, headers={}).status_code == 202


def test_queue_full_found_on_submit_is_429_too(tmp_path):
    """The job system checks the limit atomically on submit (two requests racing for one slot)."""
    fake = FakeJobs(tmp_path, queue_limit=1)
    fake.queue_limit_hidden = True  # the API's early check does not see it: only submit refuses
    c = make_client(tmp_path, jobs=fake)
    assert post(c, {"text": "one"}, headers={}).status_code == 202
    resp = post(c, {"text": "two"}, headers={})
    assert_error(resp, 429, "queue_full")
    assert resp.headers["retry-after"] == "3"


# ---------------------------------------------------------------------------- bad input: 4xx JSON, never 500


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD = [
    # (case, form fields, files (name -> (filename, key-in-media or bytes)), status, code)
    ("options not JSON", {"text": "hi", "options": "{fps: 12"}, {}, 400, "invalid_option"),
    ("options not an object", {"text": "hi", "options": "[1, 2]"}, {}, 422, "invalid_option"),
    ("unknown option", {"text": "hi", "options": '{"fsp": 12}'}, {}, 422, "invalid_option"),
    ("wrong option type", {"text": "hi", "options": '{"fps": "fast"}'}, {}, 422, "invalid_option"),
    ("bool for a number", {"text": "hi", "options": '{"fps": true}'}, {}, 422, "invalid_option"),
    ("list for a number", {"text": "hi", "options": '{"size": [512]}'}, {}, 422, "invalid_option"),
    ("null option", {"text": "hi", "options": '{"blinks": null}'}, {}, 422, "invalid_option"),
    ("fps out of range", {"text": "hi", "options": '{"fps": 1000}'}, {}, 422, "invalid_option"),
    ("NaN", {"text": "hi", "options": '{"mouth_scale": NaN}'}, {}, 422, "invalid_option"),
    ("size fraction", {"text": "hi", "options": '{"size": 100.5}'}, {}, 422, "invalid_option"),
    ("bad choice", {"text": "hi", "options": '{"bg_mode": "sparkles"}'}, {}, 422, "invalid_option"),
    ("unknown format", {"text": "hi", "options": '{"format": "avi"}'}, {}, 422, "invalid_option"),
    ("bad colour", {"text": "hi", "options": '{"bg_mode": "color", "bg_color": "red"}'}, {}, 422, "invalid_option"),
    ("server path for background", {"text": "hi", "options": '{"bg_mode": "image", "bg_image": "/etc/passwd"}'},
     {}, 422, "invalid_option"),
    ("image mode without upload", {"text": "hi", "options": '{"bg_mode": "image"}'}, {}, 422, "invalid_option"),
    ("server limit", {"text": "hi", "options": '{"max_chars": 999999}'}, {}, 422, "invalid_option"),
    ("transparent mp4", {"text": "hi", "options": '{"bg_mode": "transparent"}'}, {}, 422, "invalid_option"),
    ("unknown expression", {"text": "hi", "options": '{"expression": "grumpy"}'}, {}, 422, "invalid_option"),
    ("nothing to say", {}, {}, 422, "invalid_text"),
    ("blank text", {"text": "   "}, {}, 422, "invalid_text"),
    ("text and audio", {"text": "hi"}, {"audio": ("a.wav", "wav")}, 422, "invalid_text"),
    ("text too long", {"text": "a" * 501}, {}, 422, "invalid_text"),
    ("unknown voice", {"text": "hi", "voice": "nobody-voice"}, {}, 422, "model_unavailable"),
    ("voice not installed", {"text": "hi", "voice": "de_DE-nobody-medium"}, {}, 422, "model_unavailable"),
    ("bad language", {"text": "hi", "language": "../../en"}, {}, 422, "invalid_option"),
    ("name traversal", {"text": "hi", "name": "../../etc/cron.d/x"}, {}, 422, "invalid_option"),
    ("name with folder", {"text": "hi", "name": "a/b"}, {}, 422, "invalid_option"),
    ("name dot-dot", {"text": "hi", "name": "x..y"}, {}, 422, "invalid_option"),
    ("hidden name", {"text": "hi", "name": ".bashrc"}, {}, 422, "invalid_option"),
    ("webhook not http", {"text": "hi", "webhook_url": "file:///etc/passwd"}, {}, 422, "invalid_option"),
    ("webhook no host", {"text": "hi", "webhook_url": "http://"}, {}, 422, "invalid_option"),
    ("filename traversal", {"text": "hi"}, {"avatar": ("../../etc/x.png", "png")}, 400, "bad_request"),
    ("filename windows path", {"text": "hi"}, {"avatar": ("..\\..\\x.png", "png")}, 400, "bad_request"),
    ("empty avatar", {"text": "hi"}, {"avatar": ("face.png", b"")}, 422, "unsupported_media"),
    ("truncated avatar", {"text": "hi"}, {"avatar": ("face.png", "png-cut")}, 422, "unsupported_media"),
    ("avatar not an image", {"text": "hi"}, {"avatar": ("face.png", b"hello, not a picture" * 10)},
     422, "unsupported_media"),
    ("truncated video avatar", {"text": "hi"}, {"avatar": ("clip.webm", "webm-cut")}, 422, "unsupported_media"),
    ("truncated video background", {"text": "hi"}, {"background": ("bg.webm", "webm-cut")}, 422, "unsupported_media"),
    ("video background in image mode", {"text": "hi", "options": '{"bg_mode": "image"}'},
     {"background": ("bg.webm", "webm")}, 422, "invalid_option"),
    ("voice as a path", {"text": "hi", "voice": "/etc/passwd.onnx"}, {}, 422, "invalid_option"),
    ("voice not text", {"text": "hi", "options": '{"voice": 5}'}, {}, 422, "invalid_option"),
    ("voice given twice", {"text": "hi", "voice": "espeak:de", "options": '{"voice": "espeak:fr"}'}, {},
     422, "invalid_option"),
    ("control characters", {"text": "hi\x00there"}, {}, 422, "invalid_text"),
    ("empty audio", {}, {"audio": ("a.wav", b"")}, 422, "unsupported_media"),
    ("truncated audio", {}, {"audio": ("a.wav", "wav-cut")}, 422, "unsupported_media"),
    ("audio not audio", {}, {"audio": ("a.mp3", b"\x00\x01garbage" * 64)}, 422, "unsupported_media"),
    ("silent audio", {}, {"audio": ("a.wav", "silence")}, 422, "silent_audio"),
    ("avatar as URL", {"text": "hi", "avatar": "https://example.com/face.jpg"}, {}, 400, "url_inputs_off"),
    ("audio as URL", {"audio": "http://example.com/a.wav"}, {}, 400, "url_inputs_off"),
    ("avatar as a server path", {"text": "hi", "avatar": "/etc/passwd"}, {}, 400, "bad_request"),
    ("text as a file", {}, {"text": ("t.txt", b"hello")}, 400, "bad_request"),
    ("options as a file", {"text": "hi"}, {"options": ("o.json", b"{}")}, 400, "bad_request"),
    ("unknown field", {"text": "hi", "colour": "red"}, {}, 400, "bad_request"),
    ("field twice", {"text": ["hi", "ho"]}, {}, 400, "bad_request"),
    ("upload too large", {"text": "hi"}, {"avatar": ("big.png", b"\x89PNG" + b"0" * (1 << 20))},
     413, "payload_too_large"),
]


@pytest.fixture(scope="module")
def bad_media(media) -> dict[str, bytes]:
    import tempfile

    from pipeline.media.audio import save_wav
    from pipeline.types import AudioClip

    with tempfile.TemporaryDirectory() as d:
        silence = save_wav(AudioClip(np.zeros(16000, np.float32), 16000), Path(d) / "s.wav").read_bytes()
    import av

    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "clip.webm"
        with av.open(str(clip), "w") as out:
            stream = out.add_stream("libvpx-vp9", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            for i in range(20):  # 2 s
                frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10, np.uint8), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        webm = clip.read_bytes()
    return {**media, "png-cut": _truncated(media["png"]), "wav-cut": _truncated(media["wav"]), "silence": silence,
            "webm": webm, "webm-cut": _truncated(webm)}


@pytest.mark.parametrize("case,data,files,status,code", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_4xx_json_error(client, bad_media, case, data, files, status, code):
    upload = {k: (name, bad_media[v] if isinstance(v, str) else v) for k, (name, v) in files.items()}
    assert_error(post(client, data, upload), status, code)
    assert not client.fake.jobs  # nothing was queued


def test_json_is_415_a_broken_body_400_and_a_url_encoded_text_form_is_fine(client):
    assert_error(client.post("/api/v1/renders", json={"text": "hi"}, headers=AUTH), 415, "unsupported_content_type")
    assert_error(client.post("/api/v1/renders", content=b"hi", headers={**AUTH, "content-type": "text/plain"}),
                 415, "unsupported_content_type")
    plain = client.post("/api/v1/renders", data={"text": "Hello.", "options": '{"fps": 10}'}, headers=AUTH)
    assert plain.status_code == 202 and plain.json()["request"]["render"]["fps"] == 10, plain.text
    assert_error(client.post("/api/v1/renders", data={"text": "x" * (2 << 20)}, headers=AUTH),
                 413, "payload_too_large")
    assert_error(client.post("/api/v1/renders", data={"avatar": "/etc/passwd", "text": "hi"}, headers=AUTH),
                 400, "bad_request")
    broken = client.post("/api/v1/renders", content=b"--abc\r\nContent-Disposition: form-data\r\n\r\nzz",
                         headers={**AUTH, "content-type": "multipart/form-data; boundary=abc"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_request", broken.text


def test_an_upload_over_the_limit_is_refused_while_it_streams(client):
    sent = []

    def body():
        for _ in range(40):  # 40 x 64 KiB = 2.5 MiB, no Content-Length (chunked)
            sent.append(1)
            yield b"--b\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\r\n" if \
                len(sent) == 1 else b"0" * 65536

    resp = client.post("/api/v1/renders", content=body(),
                       headers={**AUTH, "content-type": "multipart/form-data; boundary=b"})
    assert_error(resp, 413, "payload_too_large")


def test_bad_query_and_path_values(client):
    assert_error(client.get("/api/v1/renders", params={"limit": 0}, headers=AUTH), 422, "invalid_option")
    assert_error(client.get("/api/v1/renders", params={"limit": "many"}, headers=AUTH), 422, "invalid_option")
    assert_error(client.get("/api/v1/renders", params={"state": "lost"}, headers=AUTH), 422, "invalid_option")
    assert_error(client.get("/api/v1/renders/" + "0" * 32, headers=AUTH), 404, "not_found")
    resp = client.get("/api/v1/renders/a%20b;rm", headers=AUTH)
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_option"
    assert_error(client.delete("/api/v1/renders/" + "0" * 32, headers=AUTH), 404, "not_found")
    assert_error(client.get("/api/v1/voices", params={"language": "../x"}, headers=AUTH), 422, "invalid_option")
    assert_error(client.get("/api/v1/renderz", headers=AUTH), 404, "not_found")
    assert_error(client.get("/api/v1/renderz"), 401, "unauthorized")  # no route listing without the key
    wrong = client.put("/api/v1/renders", headers=AUTH)
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET, POST"


# ---------------------------------------------------------------------------- jobs, video, metrics, docs


def test_list_get_cancel_and_video(client, tmp_path):
    ids = [post(client, {"text": f"clip {i}", "name": f"clip{i}"}).json()["id"] for i in range(3)]
    page = client.get("/api/v1/renders", params={"limit": 2}, headers=AUTH).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["limit"] == 2
    assert {j["id"] for j in page["items"]} < set(ids)
    rest = client.get("/api/v1/renders", params={"offset": 2}, headers=AUTH).json()["items"]
    assert len(rest) == 1 and rest[0]["id"] not in {j["id"] for j in page["items"]}

    video = tmp_path / "clip0.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake mp4 bytes")
    assert_error(client.get(f"/api/v1/renders/{ids[0]}/video", headers=AUTH), 409, "not_ready")
    client.fake.finish(ids[0], video, seconds=2.0, fps=150.0)
    got = client.get(f"/api/v1/renders/{ids[0]}/video", headers=AUTH)
    assert got.status_code == 200 and got.content == video.read_bytes()
    assert got.headers["content-type"] == "video/mp4" and "clip0.mp4" in got.headers["content-disposition"]

    cancelled = client.delete(f"/api/v1/renders/{ids[1]}", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/api/v1/renders/{ids[1]}", headers=AUTH).json()["error"]["code"] == "cancelled"
    done = client.delete(f"/api/v1/renders/{ids[0]}", headers=AUTH)  # finished: left as it is
    assert done.json()["status"] == "done"
    only = client.get("/api/v1/renders", params={"state": "done"}, headers=AUTH).json()
    assert [j["id"] for j in only["items"]] == [ids[0]]


def test_metrics_parse_and_reflect_the_jobs(client, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    ids = [post(client, {"text": f"clip {i}"}).json()["id"] for i in range(4)]
    for i, (secs, fps) in enumerate(((1.5, 120.0), (8.0, 60.0))):
        out = tmp_path / f"o{i}.mp4"
        out.write_bytes(b"x")
        client.fake.finish(ids[i], out, secs, fps)
    client.delete(f"/api/v1/renders/{ids[2]}", headers=AUTH)
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    states = {s.labels["state"]: s.value for s in families["avatar_studio_jobs"].samples}
    assert states == {"queued": 1, "running": 0, "done": 2, "failed": 0, "cancelled": 1}
    assert families["avatar_studio_queue_depth"].samples[0].value == 1
    dur = {(s.name, s.labels.get("le")): s.value for s in families["avatar_studio_render_duration_seconds"].samples}
    assert dur[("avatar_studio_render_duration_seconds_count", None)] == 2
    assert dur[("avatar_studio_render_duration_seconds_sum", None)] == pytest.approx(9.5)
    assert dur[("avatar_studio_render_duration_seconds_bucket", "2")] == 1
    speed = {(s.name, s.labels.get("le")): s.value for s in families["avatar_studio_render_speed_fps"].samples}
    assert speed[("avatar_studio_render_speed_fps_bucket", "100")] == 1
    assert speed[("avatar_studio_render_speed_fps_count", None)] == 2
    reqs = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value for s in families["avatar_studio_api_requests"].samples
            if s.name.endswith("_total")}
    assert reqs[("POST", "/api/v1/renders", "202")] == 4


def test_openapi_schema_and_docs_pages(client):
    doc = client.get("/api/v1/openapi.json", headers=AUTH).json()
    paths = doc["paths"]
    for path in ("/api/v1/renders", "/api/v1/renders/{job_id}", "/api/v1/renders/{job_id}/video",
                 "/api/v1/health", "/api/v1/voices", "/metrics"):
        assert path in paths, sorted(paths)
    post_op = paths["/api/v1/renders"]["post"]
    fields = post_op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"avatar", "text", "audio", "transcript", "voice", "language", "name", "webhook_url", "options"} <= set(fields)
    options = fields["options"]["x-options-schema"]["properties"]
    assert options["fps"]["maximum"] == 120 and "bg_mode" in options and "bg_image" not in options
    assert {"202", "429", "413"} <= set(post_op["responses"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    page = client.get("/api/v1/docs", headers=AUTH)
    assert page.status_code == 200 and "/api/v1/renders" in page.text and "<script" not in page.text
    assert "swagger-ui" in client.get("/api/v1/docs/swagger", headers=AUTH).text


def test_health_and_no_job_system(tmp_path):
    from pipeline.api import router

    c = make_client(tmp_path, queue_limit=3)
    body = c.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["queue_limit"] == 3 and body["jobs"]["queued"] == 0
    app = FastAPI()
    app.include_router(router(jobs=lambda: None))
    none = TestClient(app)
    assert none.get("/api/v1/health").status_code == 503
    assert_error(post(none, {"text": "hi"}, headers={}), 503, "jobs_unavailable")
    assert_error(none.get("/api/v1/renders"), 503, "jobs_unavailable")
    assert "avatar_studio_jobs_up 0.0" in none.get("/metrics").text


def test_a_video_background_sets_its_mode_and_a_png_sequence_comes_zipped(client, bad_media, tmp_path):
    import zipfile

    resp = post(client, {"text": "Over a video."}, {"background": ("loop.webm", bad_media["webm"])})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    assert resp.json()["request"]["background"]["mode"] == "video"
    assert resp.json()["request"]["background"]["video"].endswith("background.webm")
    frames = tmp_path / "seq"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:05d}.png").write_bytes(bad_media["png"])
    client.fake.finish(job_id, frames, 1.0, 30.0)
    got = client.get(f"/api/v1/renders/{job_id}/video", headers=AUTH)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(got.content)).namelist()
    assert sorted(names) == ["00000.png", "00001.png", "00002.png"]
