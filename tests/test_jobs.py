"""Durable render jobs (pipeline.jobs) in this process: submit, progress, outputs, errors,
queue limit, cancel, listing. DBOS is one per process, so the module shares one JobSystem
and stops it at the end; kill-and-restart tests run subprocesses (test_batch_kill.py)."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from pipeline import RenderRequest, VoiceSource
from pipeline.errors import InvalidOption, PipelineError, UnsupportedMedia
from pipeline.options import RenderOptions, VoiceOptions

LONG_TEXT = " ".join(["Peter picked a bunch of bright purple plums, and maybe a mango for Mom."] * 3)


def slow_request() -> RenderRequest:
    """About 15 s of speech at 60 fps: several seconds of frames, so a test can catch it running."""
    return tiny_request(LONG_TEXT, fps=60, size=256)


def tiny_request(text: str = "Hi there.", face: str = "", fps: float = 10, size: int = 128, **render) -> RenderRequest:
    from pipeline.request import FaceSource

    return RenderRequest(face=FaceSource(path=face), voice=VoiceSource(text=text, voice=VoiceOptions(variation=0.0)),
                         render=RenderOptions(fps=fps, size=size, **render))


def wait_for(system, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = system.get(job_id)
        if job is not None and job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {system.get(job_id)}")


def video_frames(path: str | Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from pipeline.jobs import JobSystem, current

    assert current() is None, "another JobSystem is running in this test process"
    jobs = JobSystem(tmp_path_factory.mktemp("jobs-data"), workers=1, executor_id="test-jobs",
                     webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    jobs.start()
    yield jobs
    jobs.stop()


def test_data_dir_precedence(tmp_path, monkeypatch):
    from pipeline.jobs import data_dir

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    assert data_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert data_dir() == (tmp_path / "home").resolve()
    monkeypatch.delenv("AVATAR_STUDIO_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = Path("/data/avatar-studio") if Path("/data").is_dir() else (tmp_path / "xdg" / "avatar-studio")
    assert data_dir() == expected.resolve()


def test_a_job_runs_to_done_with_its_inputs_copied(system, astronaut_png):
    from pipeline.jobs import current

    assert current() is system
    job = system.submit(tiny_request(face=str(astronaut_png)), name="hello")
    assert job.state == "queued" and job.request["face"]["path"] != str(astronaut_png)
    copied = Path(job.request["face"]["path"])
    assert copied.parent == system.job_folder(job.id) / "inputs" and copied.read_bytes() == astronaut_png.read_bytes()
    done = wait_for(system, job.id)
    assert done.state == "done", done.error
    assert done.progress == 1.0 and done.runs == 1 and done.executor == "test-jobs"
    assert done.started_at >= done.created_at and done.finished_at >= done.started_at
    assert {"prepare", "render", "total", "fps"} <= set(done.timings) and done.timings["total"] > 0
    out = Path(done.outputs[0])
    assert out.name == "hello.mp4" and system.output_path(job.id) == out
    assert video_frames(out) == done.timings["frames"] > 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left beside it
    data = done.to_dict()
    assert data["id"] == job.id and data["state"] == "done" and data["outputs"] == [str(out)]


def test_bad_requests_are_refused_before_anything_is_stored(system, tmp_path):
    before = system.counts()
    with pytest.raises(InvalidOption):
        system.submit(tiny_request(), name="../escape")
    with pytest.raises(InvalidOption):
        system.submit(tiny_request(), name=".hidden")
    with pytest.raises(InvalidOption):
        system.submit(tiny_request(), webhook_url="file:///etc/passwd")
    with pytest.raises(UnsupportedMedia):
        system.submit(tiny_request(face=str(tmp_path / "missing.png")))
    with pytest.raises(PipelineError):
        system.submit(RenderRequest(voice=VoiceSource(text="")))
    assert system.counts() == before


def test_a_failing_job_keeps_its_error_code(system, tmp_path):
    import numpy as np
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(blank)
    job = wait_for(system, system.submit(tiny_request(face=str(blank)), name="noface").id)
    assert job.state == "failed" and job.error["code"] == "no_face" and job.error["message"]
    assert job.outputs == [] and system.output_path(job.id) is None
    assert not (Path(job.out_dir) / "noface.mp4").exists()


def test_queue_limit_counts_queued_and_running(system):
    from pipeline.jobs import QueueFull

    system.queue_limit = 1
    try:
        first = system.submit(slow_request(), name="slow")
        with pytest.raises(QueueFull) as exc:
            system.submit(tiny_request(), name="over")
        assert exc.value.code == "queue_full" and exc.value.retry_after > 0
        system.cancel(first.id)
    finally:
        system.queue_limit = None
    assert wait_for(system, first.id).state == "cancelled"


def test_cancel_a_running_render_leaves_nothing_at_its_name(system):
    job = system.submit(slow_request(), name="cancelme")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = system.get(job.id)
        if running.state == "running" and running.message.startswith("Frame"):
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"the render never started: {system.get(job.id)}")
    t0 = time.monotonic()
    system.cancel(job.id)
    done = wait_for(system, job.id, timeout=10)
    assert done.state == "cancelled" and done.error["code"] == "cancelled"
    assert time.monotonic() - t0 < 3.0  # polled inside the render step, not at the next step
    folder = Path(done.out_dir)
    assert not (folder / "cancelme.mp4").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else True


def test_cancel_a_queued_job_at_once_and_unknown_ids(system):
    from pipeline.jobs import JobNotFound

    slow = system.submit(slow_request(), name="blocker")
    queued = system.submit(tiny_request(), name="waiting")
    cancelled = system.cancel(queued.id)
    assert cancelled.state == "cancelled"  # at once, not when a worker reaches it
    system.cancel(slow.id)
    assert wait_for(system, slow.id).state == "cancelled"
    assert system.cancel(queued.id).state == "cancelled"  # finished: a no-op
    with pytest.raises(JobNotFound):
        system.cancel("0" * 32)
    assert system.get("nope") is None and system.get("0" * 32) is None


def test_list_is_newest_first_paged_and_filtered(system):
    jobs, total = system.list(limit=2)
    assert total >= 4 and len(jobs) == 2 and jobs[0].created_at >= jobs[1].created_at
    rest, total2 = system.list(offset=2, limit=100)
    assert total2 == total and len(rest) == total - 2
    assert {j.id for j in jobs}.isdisjoint(j.id for j in rest)
    cancelled, n = system.list(state="cancelled")
    assert n == system.counts()["cancelled"] >= 3 and all(j.state == "cancelled" for j in cancelled)
    assert set(system.counts()) == {"queued", "running", "done", "failed", "cancelled"}
    with pytest.raises(InvalidOption):
        system.list(state="bogus")
