"""The studio's Batch and Jobs tabs read the job store: the same rows after a page refresh
and after a restart of the job system; download and cancel; a batch with bad rows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.test_jobs import tiny_request, wait_for


@pytest.fixture()
def data(tmp_path):
    return tmp_path / "data"


def test_jobs_tab_lists_stored_jobs_across_restarts_with_download_and_cancel(data, tmp_path):
    import gradio as gr

    from pipeline.jobs import JobSystem, current
    from studio import jobs_tabs
    from studio.app import build_ui

    assert current() is None, "another JobSystem is running in this test process"
    first = JobSystem(data, workers=1, executor_id="tabs-test")
    first.start()
    try:
        done = wait_for(first, first.submit(tiny_request(), name="shown").id)
        assert done.state == "done"
    finally:
        first.stop()
    assert jobs_tabs.job_rows() == []  # no job system: nothing shown, no error

    second = JobSystem(data, workers=1, executor_id="tabs-test")
    second.start()
    try:
        demo = build_ui()
        labels = {b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)}
        assert {"Batch", "Jobs"} <= labels
        rows = jobs_tabs.job_rows()  # what the page shows on load and on every refresh
        assert [r[:3] for r in rows] == [[done.id, "shown", "done"]]  # from the earlier process
        assert jobs_tabs.job_rows("failed") == []
        assert "**1** done" in jobs_tabs.jobs_summary()
        path, text = jobs_tabs._download_job(done.id)
        assert Path(path).name == "shown.mp4" and Path(path).read_bytes() == Path(done.outputs[0]).read_bytes()
        with pytest.raises(gr.Error):
            jobs_tabs._download_job("")
        blocker = second.submit(tiny_request("One more job that waits in the queue."), name="later")
        queued = second.submit(tiny_request(), name="queued")
        text, rows = jobs_tabs._cancel_job(queued.id, "all")
        assert "cancelled" in text and {r[0]: r[2] for r in rows}[queued.id] == "cancelled"
        assert "already done" in jobs_tabs._cancel_job(done.id, "all")[0]
        wait_for(second, blocker.id)

        csv_path = tmp_path / "scripts.csv"
        csv_path.write_text("name,text,fps,size\nok,Hello.,10,128\nbad,,10,128\n", encoding="utf-8")
        state, text, table = jobs_tabs._start_batch(str(csv_path), None, None)
        assert "line 3: empty text and no audio" in text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text, table = jobs_tabs._batch_view(state)
            if {r[1]: r[2] for r in table}["ok"] == "done":
                break
            time.sleep(0.1)
        assert {r[1]: r[2] for r in table} == {"ok": "done", "bad": "invalid"}
        archive, _ = jobs_tabs._batch_zip(state)
        import zipfile

        assert sorted(zipfile.ZipFile(archive).namelist()) == ["batch-summary.csv", "ok.mp4"]
        again, _, _ = jobs_tabs._start_batch(str(csv_path), None, None)  # the same upload continues the batch
        assert [j.id for j, _ in again[1].values()] == [j.id for j, _ in state[1].values()]
    finally:
        second.stop()
