"""``GET /metrics``: Prometheus text format, read from the job store at each scrape.

Jobs by state and the queue depth are gauges; render durations and speed are histograms
over every finished job in the store (so they agree across restarts and across executor
processes sharing one database). Each job's numbers are read once and kept, since a
finished job no longer changes. API-level counters (requests by status, 429s) live in
this process.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

DURATION_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
SPEED_BUCKETS = (5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0)
STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
PAGE = 200


def _histogram(name: str, doc: str, values: list[float], buckets: tuple[float, ...]) -> HistogramMetricFamily:
    counts = [sum(1 for v in values if v <= b) for b in buckets]
    pairs = [(f"{b:g}", float(c)) for b, c in zip(buckets, counts)] + [("+Inf", float(len(values)))]
    return HistogramMetricFamily(name, doc, buckets=pairs, sum_value=float(sum(values)))


class JobCollector:
    """Collects the job metrics from ``jobs()`` (the running JobSystem, or None)."""

    def __init__(self, jobs: Callable[[], Any], queue_limit: Callable[[], int | None]) -> None:
        self._jobs = jobs
        self._queue_limit = queue_limit
        self._seen: dict[str, tuple[str, float | None, float | None]] = {}  # id -> (state, seconds, fps)
        self._lock = threading.Lock()

    def _finished(self, system: Any) -> list[tuple[str, float | None, float | None]]:
        with self._lock:
            for state in FINISHED:
                offset = 0
                while True:
                    page, total = system.list(offset=offset, limit=PAGE, state=state)
                    for job in page:
                        if job.id not in self._seen and job.state in FINISHED:
                            t = job.timings or {}
                            seconds = t.get("total") or (
                                job.finished_at - job.started_at if job.finished_at and job.started_at else None)
                            self._seen[job.id] = (job.state, seconds, t.get("fps"))
                    offset += len(page)
                    if not page or offset >= total:
                        break
            return list(self._seen.values())

    def collect(self) -> Iterable[Metric]:
        system = self._jobs()
        up = GaugeMetricFamily("avatar_studio_jobs_up", "1 when the job system is running in this process")
        up.add_metric([], 1.0 if system is not None else 0.0)
        yield up
        if system is None:
            return
        counts = system.counts()
        jobs = GaugeMetricFamily("avatar_studio_jobs", "render jobs in the store, by state", labels=["state"])
        for state in STATES:
            jobs.add_metric([state], float(counts.get(state, 0)))
        yield jobs
        depth = GaugeMetricFamily("avatar_studio_queue_depth",
                                  "jobs counted against the queue limit (queued + running)")
        depth.add_metric([], float(counts.get("queued", 0) + counts.get("running", 0)))
        yield depth
        queued = GaugeMetricFamily("avatar_studio_queue_waiting", "jobs queued and not started yet")
        queued.add_metric([], float(counts.get("queued", 0)))
        yield queued
        limit = self._queue_limit()
        if limit:
            lim = GaugeMetricFamily("avatar_studio_queue_limit", "--queue-limit: queued + running jobs accepted")
            lim.add_metric([], float(limit))
            yield lim
        finished = self._finished(system)
        done = [(s, f) for state, s, f in finished if state == "done"]
        yield _histogram("avatar_studio_render_duration_seconds", "wall-clock seconds of each finished render job",
                         [s for s, _ in done if s is not None], DURATION_BUCKETS)
        yield _histogram("avatar_studio_render_speed_fps", "output frames per second of wall-clock time, per done job",
                         [f for _, f in done if f is not None], SPEED_BUCKETS)


class Metrics:
    """The registry behind ``/metrics`` (one per router, so tests can build several)."""

    def __init__(self, jobs: Callable[[], Any], queue_limit: Callable[[], int | None]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(JobCollector(jobs, queue_limit))  # type: ignore[arg-type]
        self.requests = Counter("avatar_studio_api_requests", "API requests answered, by method, route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.rejected = Counter("avatar_studio_api_rejected", "render submissions refused, by error code",
                                ["code"], registry=self.registry)

    def render(self) -> bytes:
        """This router's metrics, then the process-wide registry's: the live mic avatar's
        latency, frames and sessions (``pipeline.live.mic``) and the process collectors."""
        from prometheus_client import REGISTRY, generate_latest

        return generate_latest(self.registry) + generate_latest(REGISTRY)
