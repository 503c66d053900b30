"""A webhook that could not be delivered before its process died (SIGKILL during the retries)
is delivered after the restart, from the same durable step (the render is not repeated),
with the same webhook-id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from standardwebhooks import Webhook

from tests.test_jobs import wait_for
from tests.test_webhooks import SECRET, Receiver

ROOT = Path(__file__).resolve().parents[1]

FIRST = """
import sys, time
sys.path.insert(0, {root!r})
from pipeline.jobs import JobSystem
from tests.test_jobs import tiny_request
jobs = JobSystem({data!r}, workers=1, executor_id="hooks-restart", webhook_secret={secret!r})
jobs.start()
job = jobs.submit(tiny_request(), name="later", webhook_url={url!r})
print(job.id, flush=True)
time.sleep(600)
"""


def test_an_undelivered_webhook_is_sent_after_a_restart_with_the_same_id(tmp_path):
    from pipeline.jobs import JobSystem, current

    assert current() is None, "another JobSystem is running in this test process"
    receiver = Receiver(fail=10**6)  # down for now
    code = FIRST.format(root=str(ROOT), data=str(tmp_path), secret=SECRET, url=receiver.url)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        job_id = proc.stdout.readline().strip()
        receiver.wait(2, timeout=90)  # the render is done and the delivery is being retried
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    failed_attempts = len(receiver.calls)
    receiver.fail = failed_attempts  # back up: the next request succeeds
    second = JobSystem(tmp_path, workers=1, executor_id="hooks-restart", webhook_secret=SECRET)
    second.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(c[3] == 200 for c in receiver.calls):
            time.sleep(0.05)
        ok = [c for c in receiver.calls if c[3] == 200]
        assert len(ok) == 1, [c[3] for c in receiver.calls]
        assert {c[1]["webhook-id"] for c in receiver.calls} == {f"msg_{job_id}_done"}
        assert Webhook(SECRET).verify(ok[0][2], ok[0][1])["data"]["id"] == job_id
        job = wait_for(second, job_id)
        assert job.state == "done" and job.runs == 1  # the render was not repeated, only the undelivered step
        deadline = time.monotonic() + 5
        while second.get(job_id).webhook.get("status") != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.get(job_id).webhook["status"] == "delivered"
    finally:
        second.stop()
        receiver.close()
