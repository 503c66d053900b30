"""``python launch.py models list|pull|remove`` as a user runs it (subprocesses, no network)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    """A fresh data folder and HF cache, offline."""
    return {**os.environ, "AVATAR_STUDIO_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "1"}


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), "models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, input=stdin)


def test_models_list_shows_every_model_with_its_licence(env):
    out = run(env, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "present", "size", "licence", "where"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    for name in ("wav2lip", "wav2lip_gan", "wav2lip_256", "rvm_mobilenetv3", "rvm_mobilenetv3_onnx",
                 "musetalk_unet", "sd_vae_ft_mse", "whisper_tiny"):
        assert name in by_name and " no " in by_name[name]
    assert "435.8 MB" in by_name["wav2lip_gan"] and "non-commercial" in by_name["wav2lip_gan"]
    assert "GPL-3.0" in by_name["rvm_mobilenetv3"] and "MIT" in by_name["musetalk_unet"]
    assert "Nekochu/Wav2Lip@" in by_name["wav2lip"] and "no public checkpoint" in by_name["wav2lip_256"]
    missing = run(env, "list", "wav2lip")  # a named model that is missing: exit 1 (for scripts)
    assert missing.returncode == 1 and len(missing.stdout.splitlines()) == 2
    unknown = run(env, "list", "nope")
    assert unknown.returncode == 2 and "Unknown model 'nope'" in unknown.stderr


def test_offline_pull_shows_the_licence_and_fails_fast(env):
    t0 = time.perf_counter()
    out = run(env, "pull", "wav2lip_gan", "--yes")
    took = time.perf_counter() - t0
    assert out.returncode == 2
    assert "non-commercial" in out.stdout  # the licence comes first
    assert "offline mode (HF_HUB_OFFLINE is set)" in out.stderr and "--local PATH" in out.stderr
    assert took < 15  # interpreter start included; the pull itself gives up at once
    refused = run(env, "pull", "rvm_mobilenetv3")  # a GPL model without --yes and no terminal: not downloaded
    assert refused.returncode == 1 and "GPL-3.0" in refused.stdout and "--yes" in refused.stderr


def test_pull_from_a_closed_port_fails_within_seconds(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    t0 = time.perf_counter()
    out = run(env, "pull", "whisper_tiny")
    assert out.returncode == 2 and "cannot be reached" in out.stderr
    assert time.perf_counter() - t0 < 15


def test_local_pull_is_remembered_listed_and_removed(env, tmp_path):
    weights = tmp_path / "my_wav2lip_256.pth"
    weights.write_bytes(b"\0" * 2048)
    out = run(env, "pull", "wav2lip_256", "--local", str(weights))
    assert out.returncode == 0, out.stderr
    assert str(weights) in out.stdout and "non-commercial" in out.stdout
    listed = run(env, "list", "wav2lip_256")
    assert listed.returncode == 0 and " yes " in listed.stdout and str(weights) in listed.stdout
    assert "2.0 KB" in listed.stdout
    wrong = run(env, "pull", "wav2lip_gan", "--local", str(weights))  # size and sha256 checked
    assert wrong.returncode == 2 and "435,801,865" in wrong.stderr
    gone = run(env, "remove", "wav2lip_256")
    assert gone.returncode == 0 and "forgotten" in gone.stdout and weights.exists()
    assert run(env, "list", "wav2lip_256").returncode == 1


def test_models_panel_handlers(tmp_path, monkeypatch):
    """The Models tab's handlers (no server): the table, the licence before Pull, clear errors offline."""
    gr = pytest.importorskip("gradio")
    from huggingface_hub import constants

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from studio import models_tab as tab

    rows = {r[0]: r for r in tab.model_rows()}
    assert rows["wav2lip_gan"][2:4] == ["no", "435.8 MB"] and "non-commercial" in rows["wav2lip_gan"][4]
    text, consent = tab.licence_view("rvm_mobilenetv3")
    assert "GPL-3.0" in text and consent["visible"] is True and consent["value"] is False
    text, consent = tab.licence_view("musetalk_unet")
    assert "MIT" in text and consent["visible"] is False
    with pytest.raises(gr.Error, match="Tick the licence box"):
        tab.pull_model("wav2lip", False)
    t0 = time.perf_counter()
    with pytest.raises(gr.Error, match="offline mode"):
        tab.pull_model("wav2lip", True, progress=lambda *a, **k: None)
    assert time.perf_counter() - t0 < 5
    weights = tmp_path / "w256.pth"
    weights.write_bytes(b"1234")
    table, status = tab.use_local("wav2lip_256", str(weights))
    assert str(weights) in status and {r[0]: r for r in table}["wav2lip_256"][2] == "yes"
    assert tab.release_models().startswith("Released 0") and tab.resident_view() == "Resident now: none"
