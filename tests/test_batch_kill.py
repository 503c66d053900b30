"""A batch killed with SIGKILL mid-way, then run again with the same command: nothing lost,
nothing half-written at a final name, finished rows not rendered again, the interrupted row
resumed by DBOS under its own job id."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Peter picked a bunch of bright purple plums for Mom."
ROWS = 4


def _command(csv_path: Path, out: Path, data: Path) -> list[str]:
    return [sys.executable, str(ROOT / "launch.py"), "--data-dir", str(data), "batch", str(csv_path),
            "--out-dir", str(out), "--workers", "1"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2", "PYTHONPATH": str(ROOT),
            "AVATAR_STUDIO_EXECUTOR_ID": "kill-test"}


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_killed_batch_resumes_and_loses_nothing(tmp_path):
    from pipeline.jobs.store import JobStore

    data, out = tmp_path / "data", tmp_path / "out"
    csv_path = tmp_path / "scripts.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "text", "fps", "size", "variation"])
        for i in range(ROWS):
            w.writerow([f"clip{i}", f"{TEXT} Number {i}.", 40, 192, 0])
    proc = subprocess.Popen(_command(csv_path, out, data), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    store = None
    try:
        deadline = time.monotonic() + 120
        killed_at: list = []
        while time.monotonic() < deadline and proc.poll() is None:
            if store is None and (data / "jobs.sqlite").exists():
                store = JobStore(f"sqlite:///{data / 'jobs.sqlite'}")
            if store is not None:
                jobs, _ = store.list(limit=100)
                done = [j for j in jobs if j.state == "done"]
                running = [j for j in jobs if j.state == "running" and j.message.startswith("Frame")]
                if len(done) >= 2 and running:
                    os.kill(proc.pid, signal.SIGKILL)  # mid-render: no chance to clean up
                    killed_at = [j.id for j in done], running[0].id
                    break
            time.sleep(0.02)
        proc.wait(30)
        assert killed_at, f"the batch ended before it could be killed: {proc.stdout.read().decode()[-2000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done_ids, interrupted = killed_at
    assert proc.returncode == -signal.SIGKILL

    # after the kill: every file at a final name is complete; the interrupted row has none
    finals = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    by_id = {j.id: j for j in store.list(limit=100)[0]}
    for path in finals:
        job = next(j for j in by_id.values() if j.outputs and Path(j.outputs[0]) == path)
        assert job.state == "done" and _frames(path) == job.timings["frames"]
    assert not (out / f"{by_id[interrupted].name}.mp4").exists()

    rerun = subprocess.run(_command(csv_path, out, data), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=180)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{len(done_ids)} done before (skipped)" in rerun.stdout
    with open(out / "batch-summary.csv", newline="", encoding="utf-8") as fh:
        summary = list(csv.DictReader(fh))
    assert len(summary) == ROWS and all(r["state"] == "done" for r in summary)
    jobs = {j.id: j for j in store.list(limit=100)[0]}
    assert len(jobs) == ROWS  # no row was submitted twice
    for job_id in done_ids:
        assert jobs[job_id].runs == 1  # finished before the kill: not rendered again
    assert jobs[interrupted].runs == 2  # the same job resumed (DBOS recovery), its render step run again
    for r in summary:
        path = Path(r["output"])
        assert path.parent == out.resolve() and _frames(path) == jobs[r["job"]].timings["frames"] > 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    store.close()
