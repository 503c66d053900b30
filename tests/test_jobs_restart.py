"""Stopping the job system mid-render (the studio or a worker shutting down) and starting it
again: the running job unwinds at once, stays running in the store, and resumes under the
same id on the next start; a job that never reached DBOS (a crash between the two writes
of submit) is enqueued again."""

from __future__ import annotations

import time
from pathlib import Path

from tests.test_jobs import LONG_TEXT, tiny_request, video_frames, wait_for


def test_a_render_interrupted_by_stop_resumes_on_the_next_start(tmp_path):
    from pipeline.jobs import JobSystem, current

    assert current() is None, "another JobSystem is running in this test process"
    first = JobSystem(tmp_path, workers=1, executor_id="restart-test")
    first.start()
    try:
        job = first.submit(tiny_request(LONG_TEXT, fps=30, size=160), name="resumed")
        wait_for(first, job.id, states=("running",), timeout=60)
        while not first.get(job.id).message.startswith("Frame"):
            time.sleep(0.02)
        t0 = time.monotonic()
    finally:
        first.stop()
    assert time.monotonic() - t0 < 3.0  # the render unwound at the next frame, not at its end
    assert not (Path(job.out_dir) / "resumed.mp4").exists()

    # a job row whose enqueue never happened (the process died between the two writes of submit)
    from pipeline.jobs.store import Job, JobStore

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    stored = store.get(job.id)
    assert stored.state == "running" and "resumes" in stored.message
    store.insert(Job(id="f" * 32, name="orphan", state="queued", progress=0.0, message="Queued", created_at=time.time(),
                     started_at=None, finished_at=None, timings={}, outputs=[], error=None,
                     request=tiny_request("Never enqueued.").to_dict(), webhook_url=None, batch=None,
                     out_dir=str(tmp_path / "orphan")))
    store.close()

    second = JobSystem(tmp_path, workers=1, executor_id="restart-test")
    second.start()
    try:
        done = wait_for(second, job.id, timeout=90)
        assert done.state == "done" and done.runs == 2  # the same job, its render step run a second time
        assert video_frames(done.outputs[0]) == done.timings["frames"]
        assert wait_for(second, "f" * 32, timeout=60).state == "done"
    finally:
        second.stop()
