"""Batch throughput: 50 rows of 12-14 s of speech each, one presenter photo, through the real
command (`launch.py batch`), from a cold process to the summary.

    .venv/bin/python bench/batch_speed.py                 # 50 rows, --workers 2, the sample face
    .venv/bin/python bench/batch_speed.py --rows 10 --workers 1 --keep /tmp/batch-bench

Prints the wall-clock time of the whole command, the video seconds made, the per-row render
times from the job store, and the range of row durations (the target is 12-14 s a row).
Numbers on a shared machine are noisy: run it a few times and quote the median.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLACES = ["Lisbon", "Denver", "Osaka", "Nairobi", "Toronto", "Munich", "Austin", "Dublin", "Seoul", "Lagos",
          "Oslo", "Lima", "Perth", "Prague", "Boston", "Madrid", "Cairo", "Quito", "Hanoi", "Zurich", "Chicago",
          "Bogota", "Vienna", "Sydney", "Athens", "Manila", "Geneva", "Santiago", "Phoenix", "Warsaw", "Dakar",
          "Helsinki", "Seattle", "Milan", "Accra", "Auckland", "Porto", "Calgary", "Kyoto", "Tunis", "Bristol",
          "Valencia", "Mumbai", "Leeds", "Riga", "Tallinn", "Houston", "Belfast", "Durban", "Marseille"]
PRODUCTS = ["faster exports", "a cleaner dashboard", "shared folders", "smarter search", "team calendars",
            "offline mode", "better reports", "quick replies", "custom themes", "safer logins"]


def script(i: int) -> str:
    """About 35 words: 12-14 s with the default voice."""
    place, product = PLACES[i % len(PLACES)], PRODUCTS[i % len(PRODUCTS)]
    return (f"Hello to everyone in {place}! This week we are bringing you {product}, along with a few small fixes "
            f"that many of you asked for. Try it today, tell us what you think, and thank you for watching, from all of "
            f"us on the team here.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--avatar", default="", help="presenter photo (default: the bundled sample face)")
    ap.add_argument("--keep", default="", help="work in this folder and keep it (default: a temp folder)")
    ap.add_argument("--extra", default="", help="extra columns as name=value,... (e.g. size=512)")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = dict(kv.split("=", 1) for kv in args.extra.split(",") if kv)
    csv_path = work / "scripts.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "text", *extra])
        for i in range(args.rows):
            w.writerow([f"row{i:02d}", script(i), *extra.values()])
    data, out = work / "data", work / "out"
    cmd = [sys.executable, str(ROOT / "launch.py"), "--data-dir", str(data), "batch", str(csv_path),
           "--out-dir", str(out), "--workers", str(args.workers)]
    if args.avatar:
        cmd += ["--avatar", args.avatar]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GLOG_minloglevel": "2", "AVATAR_STUDIO_EXECUTOR_ID": "bench"}
    import resource

    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return proc.returncode
    from pipeline.jobs.store import JobStore

    store = JobStore(f"sqlite:///{data / 'jobs.sqlite'}")
    jobs, _ = store.list(limit=10_000)
    store.close()
    durations = [j.timings["duration"] for j in jobs]
    totals = [j.timings["total"] for j in jobs]
    frames = sum(int(j.timings["frames"]) for j in jobs)
    video = sum(durations)
    print(f"{len(jobs)} rows, --workers {args.workers}, {os.cpu_count()} cores: {wall:.1f} s wall clock "
          f"(process start to summary), {video:.0f} s of video ({video / wall:.1f} s of video per second, "
          f"{frames / wall:.0f} frames/s overall)")
    print(f"row durations {min(durations):.1f}-{max(durations):.1f} s (median {statistics.median(durations):.1f}); "
          f"per-row job time median {statistics.median(totals):.2f} s, max {max(totals):.2f} s")
    print(f"CPU time of the command {cpu:.1f} s (user+sys; {cpu / len(jobs):.2f} s a row): on {os.cpu_count()} idle "
          f"cores the floor is about {cpu / (os.cpu_count() or 1):.0f} s; load average now "
          f"{os.getloadavg()[0]:.1f} (other work on the machine stretches the wall clock)")
    print(f"target: under 180 s -> {'met' if wall < 180 else 'NOT met'}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
