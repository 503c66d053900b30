"""The Jobs tab in a real headless Chromium: a job stored by an earlier process is listed,
and still listed after a page refresh (the tab reads the job store on every page load).

Skipped when the playwright package or /usr/bin/chromium is missing."""

from __future__ import annotations

import time

from chromium import launch, open_page  # noqa: E402  (same folder; skips this module without Chromium)
from test_studio import serve_studio  # noqa: E402


def test_jobs_tab_shows_stored_jobs_after_a_refresh(tmp_path):
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
    with serve_studio(tmp_path / "studio.log", data_dir=data) as url, launch() as browser:
        page = open_page(browser, url)
        for visit in range(2):  # the first visit, then a refresh
            if visit:
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
