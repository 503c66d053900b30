"""The Jobs tab in a real headless Chromium: a job stored by an earlier process is listed,
and still listed after a page refresh (the tab reads the job store on every page load).

Skipped when the playwright package or /usr/bin/chromium is missing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError as exc:
    pytest.skip(f"playwright is not installed ({exc})", allow_module_level=True)
if not CHROMIUM.exists():
    pytest.skip(f"Chromium not found at {CHROMIUM}", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jobs_tab_shows_stored_jobs_after_a_refresh(tmp_path):
    import httpx

    from pipeline.jobs.store import Job, JobStore
    from tests.test_jobs import tiny_request

    data = tmp_path / "data"
    data.mkdir()
    store = JobStore(f"sqlite:///{data / 'jobs.sqlite'}")  # a job an earlier studio process finished
    out = data / "jobs" / ("a" * 32) / "output"
    out.mkdir(parents=True)
    (out / "earlier-job.mp4").write_bytes(b"\0" * 1024)
    now = time.time()
    store.insert(Job(id="a" * 32, name="earlier-job", state="queued", progress=0.0, message="Queued",
                     created_at=now - 60, started_at=None, finished_at=None, timings={}, outputs=[], error=None,
                     request=tiny_request().to_dict(), webhook_url=None, batch=None, out_dir=str(out)))
    store.update("a" * 32, state="done", progress=1.0, message="Done", started_at=now - 50, finished_at=now - 40,
                 outputs=[str(out / "earlier-job.mp4")], timings={"total": 10.0})
    store.close()
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2", "GRADIO_ANALYTICS_ENABLED": "False",
           "NO_PROXY": "127.0.0.1,localhost"}
    log = open(tmp_path / "studio.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "--data-dir", str(data), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/", timeout=2.0, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            pytest.fail(f"the studio did not start: {(tmp_path / 'studio.log').read_text()[-2000:]}")
        with sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=30_000)
            except PlaywrightError as exc:
                pytest.skip(f"Chromium could not start: {str(exc).splitlines()[0]}")
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(30_000)
                for visit in range(2):  # the first visit, then a refresh
                    if visit == 0:
                        page.goto(url, wait_until="domcontentloaded")
                    else:
                        page.reload(wait_until="domcontentloaded")
                    page.get_by_role("tab", name="Jobs").click()
                    time.sleep(0.5)
                    tabs = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
                    assert tabs.count("Jobs") == 1 and tabs.count("Batch") == 1, tabs  # no stray tab buttons
                    for text in ("earlier-job", "a" * 32, "100%"):  # the stored job's row in the Jobs table
                        page.locator(f"text={text} >> visible=true").first.wait_for()
                    page.get_by_text("data in", exact=False).first.wait_for()
                    assert "1 done" in page.get_by_text("data in", exact=False).first.inner_text()
                page.screenshot(path=str(tmp_path / "jobs-tab.png"))
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
