"""Scale-out on PostgreSQL: a throwaway cluster on a loopback port, two `launch.py worker`
processes with different executor ids sharing the queue, a dozen jobs submitted from a third
process (this one, submit-only), each run exactly once to done."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_jobs import tiny_request

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
JOBS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    return [runuser, "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres():
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL 15 binaries are not installed in {PG_BIN} (Debian package postgresql, "
                    "packages-dev.txt)")
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
    root = Path(tempfile.mkdtemp(prefix="avatar-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        for p in (root, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                 "-E", "UTF8", "--no-sync"]), check=True, capture_output=True, env=env, timeout=120)
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                                 "-w", "-t", "60", "start"]), check=True, capture_output=True, env=env, timeout=90)
    try:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE avatar")
        yield f"postgresql://postgres@127.0.0.1:{port}/avatar"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, env=env, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _worker(url: str, data: Path, executor: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "launch.py"), "--data-dir", str(data), "worker", "--database-url", url,
         "--workers", "2", "--executor-id", executor],
        cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )


def test_two_workers_share_the_queue_and_run_each_job_once(postgres, tmp_path):
    from dbos import DBOS

    from pipeline.jobs import JobSystem, current

    assert current() is None, "another JobSystem is running in this test process"
    data = tmp_path / "shared-data"  # one data folder for all (on several machines: a shared mount)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [_worker(postgres, data, "w1", logs[0]), _worker(postgres, data, "w2", logs[1])]
    submitter = JobSystem(data, database_url=postgres, workers=0, executor_id="submitter")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(b"worker w" in p.read_bytes() for p in logs):
            assert all(w.poll() is None for w in workers), [p.read_text()[-2000:] for p in logs]
            time.sleep(0.2)
        submitter.start()
        jobs = [submitter.submit(tiny_request(f"Job number {i}.", fps=8, size=96), name=f"job{i:02d}")
                for i in range(JOBS)]
        finished = submitter.wait([j.id for j in jobs], timeout=150)
        states = {j.name: j.state for j in finished}
        assert all(s == "done" for s in states.values()), (states, [p.read_text()[-3000:] for p in logs])
        assert all(j.runs == 1 for j in finished), {j.name: j.runs for j in finished}  # exactly once each
        ran_on = {j.executor for j in finished}
        assert ran_on == {"w1", "w2"}, ran_on  # both executors took work from the one queue
        for j in finished:
            assert Path(j.outputs[0]).is_file()
        statuses = {w.workflow_id: w for w in DBOS.list_workflows(workflow_ids=[j.id for j in jobs])}
        assert len(statuses) == JOBS and all(w.status == "SUCCESS" for w in statuses.values())
        assert {w.executor_id for w in statuses.values()} == {"w1", "w2"}
        assert {w.app_version for w in statuses.values()} == {"avatar-studio-jobs-1"}  # pinned
    finally:
        submitter.stop()
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
