"""Webhooks from the jobs workflow: a receiver on loopback that fails the first attempts still
gets the delivery, with a valid Standard Webhooks signature and the same webhook-id on every
attempt; the first retry comes within 2 s."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image
from standardwebhooks import Webhook

from tests.test_jobs import tiny_request, wait_for

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """An HTTP server on 127.0.0.1 that answers 500 to the first ``fail`` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.calls: list[tuple[float, dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = 500 if len(receiver.calls) < receiver.fail else 200
                receiver.calls.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"try again")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.calls) >= n, f"{len(self.calls)} webhook calls after {timeout} s, wanted {n}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from pipeline.jobs import JobSystem, current

    assert current() is None, "another JobSystem is running in this test process"
    jobs = JobSystem(tmp_path_factory.mktemp("hooks-data"), workers=1, executor_id="test-hooks", webhook_secret=SECRET)
    jobs.start()
    yield jobs
    jobs.stop()


def test_delivery_survives_failing_attempts_with_one_id_and_valid_signatures(system):
    receiver = Receiver(fail=2)
    try:
        job = system.submit(tiny_request(), name="hooked", webhook_url=receiver.url)
        assert wait_for(system, job.id).state == "done"
        receiver.wait(3)
        time.sleep(0.3)
        assert [c[3] for c in receiver.calls] == [500, 500, 200]  # delivered once it succeeded, not again
        ids = {c[1]["webhook-id"] for c in receiver.calls}
        assert len(ids) == 1, ids
        assert receiver.calls[1][0] - receiver.calls[0][0] < 2.0  # first retry within 2 s
        assert receiver.calls[2][0] > receiver.calls[1][0]
        verifier = Webhook(SECRET)
        for _, headers, body, _ in receiver.calls:
            payload = verifier.verify(body, headers)  # raises on a bad signature or an old timestamp
            assert payload["type"] == "render.done"
            assert payload["data"]["id"] == job.id and payload["data"]["state"] == "done"
            assert payload["data"]["outputs"] and payload["data"]["outputs"][0].endswith("hooked.mp4")
        with pytest.raises(Exception):  # a wrong secret does not verify
            Webhook("whsec_" + "A" * 32).verify(receiver.calls[-1][2], receiver.calls[-1][1])
        stored = wait_for(system, job.id).webhook
        assert stored["status"] == "delivered" and stored["attempts"] == 3 and stored["id"] in ids
    finally:
        receiver.close()


def test_a_failed_render_is_reported_as_render_failed(system, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(blank)
    receiver = Receiver(fail=0)
    try:
        job = system.submit(tiny_request(face=str(blank)), name="noface", webhook_url=receiver.url)
        assert wait_for(system, job.id).state == "failed"
        receiver.wait(1)
        payload = json.loads(receiver.calls[0][2])
        assert payload["type"] == "render.failed" and payload["data"]["error"]["code"] == "no_face"
        Webhook(SECRET).verify(receiver.calls[0][2], receiver.calls[0][1])
    finally:
        receiver.close()


def test_a_plain_text_secret_signs_with_its_bytes():
    from datetime import datetime, timezone

    from pipeline.jobs.webhooks import signer

    now = datetime.now(tz=timezone.utc)
    sig = signer("S").sign("msg_1", now, '{"a": 1}')
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": sig}
    assert Webhook(b"S").verify('{"a": 1}', headers) == {"a": 1}



def test_a_job_cancelled_while_queued_is_reported_at_once(system):
    from tests.test_jobs import slow_request

    receiver = Receiver(fail=0)
    try:
        blocker = system.submit(slow_request(), name="blocker")
        queued = system.submit(tiny_request(), name="queued", webhook_url=receiver.url)
        assert system.cancel(queued.id).state == "cancelled"
        receiver.wait(1, timeout=10)  # while the blocker still holds the only worker
        assert system.get(blocker.id).state in ("queued", "running")
        payload = Webhook(SECRET).verify(receiver.calls[0][2], receiver.calls[0][1])
        assert payload["type"] == "render.cancelled" and payload["data"]["id"] == queued.id
        system.cancel(blocker.id)
        wait_for(system, blocker.id)
        wait_for(system, queued.id)
        from dbos import DBOS

        deadline = time.monotonic() + 30
        while DBOS.get_workflow_status(queued.id).status != "SUCCESS" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert DBOS.get_workflow_status(queued.id).status == "SUCCESS"  # its own workflow ran to its end
        time.sleep(0.2)
        assert len(receiver.calls) == 1  # and sent nothing more
    finally:
        receiver.close()
