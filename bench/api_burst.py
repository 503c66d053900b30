"""Burst benchmark of the HTTP API: N concurrent POST /api/v1/renders against a studio.

    .venv/bin/python bench/api_burst.py                      # starts its own studio (queue limit 3, key K)
    .venv/bin/python bench/api_burst.py --n 50 --retry       # clients that honour Retry-After until accepted
    .venv/bin/python bench/api_burst.py --url http://127.0.0.1:7860 --key K

Prints how each request was answered (202 / 429 / other), the answer latencies (median,
95th percentile, max), and whether every accepted job ended done, failed or cancelled and is
listed. With ``--retry`` each client waits Retry-After and tries again, so all N renders
must end done: nothing dropped. Renders are tiny (96 px, 8 fps) so that the API, not the
render, is measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TINY = json.dumps({"size": 96, "fps": 8, "head_motion": 0, "blinks": False})


def start_studio(queue_limit: int, key: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="api-burst-")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2"}
    proc = subprocess.Popen([sys.executable, "launch.py", "--port", str(port), "--queue-limit", str(queue_limit),
                             "--api-key", key, "--data-dir", data], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        try:
            if httpx.get(url + "/api/v1/health", headers={"Authorization": f"Bearer {key}"}).status_code == 200:
                print(f"studio up in {time.monotonic() - t0:.1f} s at {url} (data {data})")
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the studio did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="", help="an already running studio (default: start one)")
    ap.add_argument("--key", default="K")
    ap.add_argument("--n", type=int, default=12, help="requests in the burst")
    ap.add_argument("--queue-limit", type=int, default=3, help="for the studio this script starts")
    ap.add_argument("--retry", action="store_true", help="honour Retry-After until every request is accepted")
    args = ap.parse_args()
    proc, url = (None, args.url) if args.url else start_studio(args.queue_limit, args.key)
    headers = {"Authorization": f"Bearer {args.key}"}
    try:
        def submit(i: int) -> tuple[list[tuple[int, float]], str | None]:
            tries: list[tuple[int, float]] = []
            with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                while True:
                    t = time.perf_counter()
                    r = c.post("/api/v1/renders", data={"text": f"Burst request {i}.", "name": f"burst-{i}",
                                                        "options": TINY})
                    tries.append((r.status_code, time.perf_counter() - t))
                    if r.status_code == 202:
                        return tries, r.json()["id"]
                    if r.status_code != 429 or not args.retry:
                        return tries, None
                    time.sleep(float(r.headers["retry-after"]))

        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(args.n) as pool:
            results = list(pool.map(submit, range(args.n)))
        first = [tries[0] for tries, _ in results]
        ids = [job for _, job in results if job]
        lat = sorted(s for tries, _ in results for _, s in tries)
        codes: dict[int, int] = {}
        for code, _ in first:
            codes[code] = codes.get(code, 0) + 1
        print(f"{args.n} concurrent POSTs, first answers: {codes}; accepted in the end: {len(ids)}"
              f"{' (with retries: ' + str(sum(len(t) for t, _ in results)) + ' requests)' if args.retry else ''}")
        print(f"answer latency: median {statistics.median(lat) * 1000:.0f} ms, "
              f"p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            while True:
                jobs = [c.get(f"/api/v1/renders/{j}").json() for j in ids]
                if all(j["status"] in ("done", "failed", "cancelled") for j in jobs):
                    break
                time.sleep(0.3)
            listed = {j["id"] for j in c.get("/api/v1/renders", params={"limit": 200}).json()["items"]}
        states: dict[str, int] = {}
        for j in jobs:
            states[j["status"]] = states.get(j["status"], 0) + 1
        print(f"all accepted jobs finished {time.perf_counter() - t0:.1f} s after the burst began: {states}; "
              f"listed: {len(set(ids) & listed)}/{len(ids)}")
        return 0 if set(ids) <= listed and len(ids) == sum(states.values()) else 1
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
