"""The model registry (presets/models.toml), local paths and downloads (pipeline/hub.py).

No network: downloads go to a tiny fake Hub on 127.0.0.1 that speaks the HEAD/GET
protocol huggingface_hub uses (ETag = LFS sha256, X-Repo-Commit, Range for resume).
"""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import hub, models
from pipeline.errors import InvalidOption, ModelDownloadError, ModelMissing
from pipeline.models import ModelFile, ModelSpec

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"wav2lip", "wav2lip_gan", "wav2lip_256", "rvm_mobilenetv3", "rvm_mobilenetv3_onnx", "musetalk_unet",
         "sd_vae_ft_mse", "whisper_tiny"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """An empty data folder and HF cache for this test."""
    from huggingface_hub import constants

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    yield tmp_path
    models.release()


def _spec(name: str, files: tuple[ModelFile, ...], repo: str = "test/tiny") -> ModelSpec:
    return models.register(ModelSpec(
        name=name, title="Tiny test model", kind="test", repo_id=repo, revision=COMMIT if repo else "", files=files,
        code_licence="MIT", weights_licence="MIT", licence_note="test", backend="torch",
        build="test_backends:build_tiny", inputs={"img": "B,3,H,W float32"}, outputs={"out": "B,2,H,W float32"},
    ))


def test_catalog_loads_without_torch_or_onnxruntime():
    code = ("import sys; from pipeline import models, hub; c = models.catalog(); hub.rows(); "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'heavy import'; print(len(c))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(ROOT / ".no-home")})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= len(NAMES)


def test_every_catalog_entry_is_valid():
    cat = models.catalog()
    assert NAMES <= set(cat)
    for name, s in cat.items():
        models.validate(s)
        assert s.name == name and s.title and s.code_licence and s.weights_licence
        assert s.build.startswith("pipeline.neural.")
        for sig in (*s.inputs.values(), *s.outputs.values()):
            dims, dtype = models.parse_signature(sig)
            assert dims and dtype in ("float32", "float16", "int64")
        if s.repo_id:
            assert s.files and s.revision
    assert cat["wav2lip_gan"].files[0].size == 435_801_865
    assert cat["wav2lip_gan"].files[0].sha256 == "ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8"
    assert list(cat["wav2lip"].inputs) == ["mel", "face"]
    assert models.parse_signature(cat["wav2lip"].inputs["face"]) == (("B", 6, 96, 96), "float32")
    assert models.parse_signature(cat["wav2lip_256"].inputs["face"])[0] == ("B", 6, 256, 256)
    assert cat["wav2lip_256"].repo_id == "" and cat["wav2lip_256"].size is None
    # the licences people must see before downloading
    for name in ("wav2lip", "wav2lip_gan", "wav2lip_256"):
        assert cat[name].restricted and "non-commercial" in cat[name].licence_note
    for name in ("rvm_mobilenetv3", "rvm_mobilenetv3_onnx"):
        assert cat[name].restricted and cat[name].weights_licence == "GPL-3.0"
    assert not cat["musetalk_unet"].restricted and cat["musetalk_unet"].code_licence == "MIT"
    assert cat["rvm_mobilenetv3_onnx"].options["torch_build"] == "pipeline.neural.rvm_net:build"
    assert "torch_build" not in cat["rvm_mobilenetv3_onnx"].build_options
    assert models.dynamic_axes(cat["rvm_mobilenetv3"])["src"] == {0: "B", 2: "H", 3: "W"}


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(InvalidOption) as err:
        models.spec("wav2lipp")
    assert "wav2lip_gan" in str(err.value) and "rvm_mobilenetv3" in str(err.value)


def test_bad_specs_are_refused():
    good = models.catalog()["wav2lip"]
    from dataclasses import replace

    for bad, why in ((replace(good, kind="toaster"), "kind"), (replace(good, backend="tf"), "backend"),
                     (replace(good, build="no_colon"), "module:function"),
                     (replace(good, inputs={"x": "B,6,9x6"}), "dimension"),
                     (replace(good, files=(ModelFile("a.pth", "abc", None),)), "sha256")):
        with pytest.raises(InvalidOption, match=why):
            models.validate(bad)


def test_missing_weights_name_models_pull(home):
    with pytest.raises(ModelMissing) as err:
        models.predictor("wav2lip_gan", device="cpu")
    msg = str(err.value)
    assert "python launch.py models pull wav2lip_gan" in msg and "Models panel" in msg
    assert err.value.code == "model_missing"
    with pytest.raises(ModelMissing, match="--local PATH"):
        models.predictor("wav2lip_256", device="cpu")
    row = hub.row(models.spec("wav2lip_gan"))
    assert not row.present and row.source == "missing" and row.size == 435_801_865


def test_offline_pull_fails_fast_with_a_clear_message(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelDownloadError) as err:
        hub.pull("wav2lip_gan")
    assert time.perf_counter() - t0 < 5.0
    assert "offline" in str(err.value) and "--local" in str(err.value)


def test_unreachable_hub_fails_fast(home, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    with pytest.raises(ModelDownloadError, match="cannot be reached"):
        hub.pull("musetalk_unet")
    assert time.perf_counter() - t0 < 5.0


def test_local_file_is_verified_and_remembered(home):
    data = b"tiny weights " * 100
    good = home / "w.bin"
    good.write_bytes(data)
    s = _spec("tiny_local", (ModelFile("w.bin", hashlib.sha256(data).hexdigest(), len(data)),), repo="")
    try:
        assert hub.pull_local("tiny_local", good) == good.resolve()
        assert models.locate(s) == good.resolve()
        assert models.local_paths()["tiny_local"] == str(good.resolve())
        row = hub.row(s)
        assert row.present and row.source == "local path" and row.size == len(data)
        # a folder holding the file works too; a wrong file is refused and not remembered
        bad = home / "other" / "w.bin"
        bad.parent.mkdir()
        bad.write_bytes(data[:-1] + b"X")
        with pytest.raises(ModelDownloadError, match="sha256"):
            hub.pull_local("tiny_local", bad.parent)
        assert models.local_paths()["tiny_local"] == str(good.resolve())
        assert hub.remove("tiny_local") and "tiny_local" not in models.local_paths()
        assert good.exists()  # a local file is forgotten, never deleted
    finally:
        models.unregister("tiny_local")


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """Serves /<repo>/resolve/<rev>/<file> like the Hub: LFS sha256 as ETag, Range requests."""

    files: dict[str, bytes] = {}
    ranges: list[str] = []
    drop_first: bool = False  # the first GET stops half-way and closes the connection
    slow: float = 0.0  # seconds between 4 KB pieces of a GET

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, body: bool) -> None:
        name = self.path.split("/resolve/", 1)[-1].split("/", 1)[-1]
        data = self.files.get(name)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and body:
            self.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if body and self.drop_first and not self.ranges:
            type(self).drop_first = False
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if body:
            step = 4096 if self.slow else len(data)
            for i in range(start, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                time.sleep(self.slow)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(True)


@pytest.fixture()
def fake_hub(home, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    _FakeHub.files, _FakeHub.ranges, _FakeHub.drop_first, _FakeHub.slow = {}, [], False, 0.0
    yield _FakeHub
    server.shutdown()
    models.unregister("tiny_hub")


def test_pull_downloads_verifies_and_resumes(fake_hub, home, monkeypatch):
    data = bytes(range(256)) * 64  # 16 KB
    sha = hashlib.sha256(data).hexdigest()
    fake_hub.files = {"weights.bin": data}
    s = _spec("tiny_hub", (ModelFile("weights.bin", sha, len(data)),))
    fake_hub.drop_first = True  # the connection breaks half-way: the rest is asked for with a Range header
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)  # written to disk in 4 KB steps (10 MB by default)
    seen: list[float] = []
    path = hub.pull("tiny_hub", progress=lambda f, m: seen.append(f))
    assert path.read_bytes() == data and seen[-1] == 1.0
    assert fake_hub.ranges == ["bytes=8192-"]
    assert models.locate(s) == path and hub.row(s).source == "hub cache"
    assert hub.pull("tiny_hub") == path  # present: no second download
    assert hub.remove("tiny_hub") and models.locate(s) is None


def test_pull_reports_progress_while_downloading(fake_hub, home, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    data = bytes(range(256)) * 96  # 24 KB in 6 pieces, 0.3 s apart
    fake_hub.files, fake_hub.slow = {"weights.bin": data}, 0.3
    _spec("tiny_hub", (ModelFile("weights.bin", hashlib.sha256(data).hexdigest(), len(data)),))
    seen: list[tuple[float, str]] = []
    hub.pull("tiny_hub", progress=lambda f, m: seen.append((f, m)))
    partial = [f for f, m in seen if "KB of" in m]
    assert partial and all(0 < f < 1 for f in partial) and partial == sorted(partial), seen
    assert seen[-1] == (1.0, "tiny_hub ready")


def test_pull_deletes_a_file_that_fails_its_checksum(fake_hub, home):
    fake_hub.files = {"weights.bin": b"not the weights"}
    s = _spec("tiny_hub", (ModelFile("weights.bin", "0" * 64, None),))
    with pytest.raises(ModelDownloadError, match="sha256"):
        hub.pull("tiny_hub")
    assert models.locate(s) is None
    assert not list((home / "hf").rglob("weights.bin"))


def test_pull_checks_the_hubs_own_hash_when_the_catalog_has_none(fake_hub, home):
    data = b"x" * 1000
    fake_hub.files = {"weights.bin": data}
    s = _spec("tiny_hub", (ModelFile("weights.bin", None, None),))
    assert hub._hub_sha256(s, s.files[0]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert hub.pull("tiny_hub").read_bytes() == data
