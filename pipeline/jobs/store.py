"""The job store: one row per job (state, progress, timings, outputs, error, request).

DBOS holds the durable execution (which workflow runs where, which steps finished); this
table holds what a person asks about a job, so the Jobs tab, the API and the batch runner
read one place, whichever process or machine ran the job. It lives beside the DBOS system
database: a SQLite file in the data directory by default, a table in the same PostgreSQL
database when the system database is PostgreSQL (so every executor sees every job).

Every write is one short transaction; progress writes are throttled by the caller.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, get_args

import sqlalchemy as sa

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
STATES: tuple[str, ...] = get_args(JobState)
ACTIVE: tuple[str, ...] = ("queued", "running")
FINISHED: tuple[str, ...] = ("done", "failed", "cancelled")

_META = sa.MetaData()
JOBS = sa.Table(
    "avatar_studio_jobs",
    _META,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("timings", sa.Text, nullable=False, default="{}"),
    sa.Column("outputs", sa.Text, nullable=False, default="[]"),
    sa.Column("error", sa.Text),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("webhook_url", sa.Text),
    sa.Column("webhook", sa.Text),  # delivery status: {"id", "status", "attempts", "error"}
    sa.Column("batch", sa.String(64), index=True),
    sa.Column("row_key", sa.String(64), index=True),  # batch row content key (re-runs skip done rows)
    sa.Column("line", sa.Integer),  # batch CSV line
    sa.Column("out_dir", sa.Text, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("runs", sa.Integer, nullable=False, default=0),  # render step starts (1 unless resumed)
    sa.Column("executor", sa.Text, nullable=False, default=""),  # who ran it last
)


@dataclass
class Job:
    """One render job as stored (see :mod:`pipeline.jobs`)."""

    id: str
    name: str
    state: JobState
    progress: float  # 0..1
    message: str  # last progress message
    created_at: float  # epoch seconds
    started_at: float | None
    finished_at: float | None
    timings: dict[str, float]  # prepare, render, total (s); fps
    outputs: list[str]  # final output paths; complete when state == "done"
    error: dict | None  # {"code", "message"} when failed or cancelled
    request: dict  # RenderRequest.to_dict(), paths into the job's folder
    webhook_url: str | None
    batch: str | None
    line: int | None = None
    out_dir: str = ""
    runs: int = 0
    executor: str = ""
    webhook: dict | None = None
    row_key: str | None = None
    cancel_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict:
        """JSON-safe: what the API returns."""
        return {
            "id": self.id, "name": self.name, "state": self.state, "status": self.state,
            "progress": round(float(self.progress), 4), "message": self.message,
            "created_at": self.created_at, "started_at": self.started_at, "finished_at": self.finished_at,
            "timings": dict(self.timings), "outputs": list(self.outputs), "error": self.error,
            "request": self.request, "webhook_url": self.webhook_url, "webhook": self.webhook,
            "batch": self.batch, "line": self.line, "runs": self.runs, "executor": self.executor,
        }


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _row_to_job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"], name=m["name"], state=m["state"], progress=float(m["progress"] or 0.0), message=m["message"] or "",
        created_at=float(m["created_at"]), started_at=m["started_at"], finished_at=m["finished_at"],
        timings=_loads(m["timings"], {}), outputs=_loads(m["outputs"], []), error=_loads(m["error"], None),
        request=_loads(m["request"], {}), webhook_url=m["webhook_url"], batch=m["batch"], line=m["line"],
        out_dir=m["out_dir"], runs=int(m["runs"] or 0), executor=m["executor"] or "",
        webhook=_loads(m["webhook"], None), row_key=m["row_key"], cancel_requested=bool(m["cancel_requested"]),
    )


def store_url(data_dir: Path, database_url: str | None) -> str:
    """Where the job table lives: PostgreSQL beside DBOS, else ``<data dir>/jobs.sqlite``."""
    if database_url and not database_url.startswith("sqlite"):
        url = database_url
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    return f"sqlite:///{Path(data_dir) / 'jobs.sqlite'}"


class JobStore:
    """The job table (SQLite or PostgreSQL through SQLAlchemy)."""

    def __init__(self, url: str) -> None:
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(conn: Any, _record: Any) -> None:  # WAL: readers never wait for the writer
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
        for attempt in range(5):  # two processes starting at once may both try to create the table
            try:
                _META.create_all(self.engine, checkfirst=True)
                break
            except sa.exc.DBAPIError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes

    def insert(self, job: Job) -> None:
        with self.engine.begin() as conn:
            conn.execute(JOBS.insert().values(
                id=job.id, name=job.name, state=job.state, progress=job.progress, message=job.message,
                created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
                timings=json.dumps(job.timings), outputs=json.dumps(job.outputs),
                error=json.dumps(job.error) if job.error else None, request=json.dumps(job.request),
                webhook_url=job.webhook_url, batch=job.batch, row_key=job.row_key, line=job.line,
                out_dir=job.out_dir, cancel_requested=False, runs=0, executor="",
            ))

    def update(self, job_id: str, *, only_states: Iterable[str] | None = None, **values: Any) -> bool:
        """Set columns of one job (dicts and lists stored as JSON); with ``only_states``, only
        while the job is in one of them. True when a row changed."""
        for key in ("timings", "outputs", "error", "webhook"):
            if key in values and values[key] is not None and not isinstance(values[key], str):
                values[key] = json.dumps(values[key])
        stmt = JOBS.update().where(JOBS.c.id == job_id)
        if only_states is not None:
            stmt = stmt.where(JOBS.c.state.in_(list(only_states)))
        with self.engine.begin() as conn:
            return conn.execute(stmt.values(**values)).rowcount > 0

    def start_run(self, job_id: str, executor: str) -> bool:
        """Mark a queued or running job running (one more render step start)."""
        with self.engine.begin() as conn:
            res = conn.execute(
                JOBS.update().where(JOBS.c.id == job_id, JOBS.c.state.in_(list(ACTIVE)))
                .values(state="running", started_at=time.time(), runs=JOBS.c.runs + 1, executor=executor,
                        progress=0.0, message="Starting")
            )
            return res.rowcount > 0

    # ------------------------------------------------------------------ reads

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(JOBS).where(JOBS.c.id == job_id)).first()
        return _row_to_job(row) if row is not None else None

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.select(JOBS.c.cancel_requested).where(JOBS.c.id == job_id)).scalar())

    def list(self, *, offset: int = 0, limit: int = 50, state: str | None = None, batch: str | None = None
             ) -> tuple[list[Job], int]:
        """Newest first; with the total count of the filter."""
        where = []
        if state:
            where.append(JOBS.c.state == state)
        if batch:
            where.append(JOBS.c.batch == batch)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(JOBS).where(*where)).scalar() or 0
            rows = conn.execute(
                sa.select(JOBS).where(*where).order_by(JOBS.c.created_at.desc(), JOBS.c.id)
                .offset(max(0, offset)).limit(max(0, limit))
            ).all()
        return [_row_to_job(r) for r in rows], int(total)

    def by_row_key(self, key: str) -> list[Job]:
        """Every job made for one batch row content, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(JOBS).where(JOBS.c.row_key == key).order_by(JOBS.c.created_at.desc())
            ).all()
        return [_row_to_job(r) for r in rows]

    def active(self) -> list[Job]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(JOBS).where(JOBS.c.state.in_(list(ACTIVE)))).all()
        return [_row_to_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        with self.engine.connect() as conn:
            for state, n in conn.execute(sa.select(JOBS.c.state, sa.func.count()).group_by(JOBS.c.state)):
                out[state] = int(n)
        return out

    def recent_seconds(self, n: int = 20) -> list[float]:
        """Total seconds of the last ``n`` done jobs (for Retry-After estimates)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(JOBS.c.timings).where(JOBS.c.state == "done").order_by(JOBS.c.finished_at.desc()).limit(n)
            ).all()
        return [float(t["total"]) for (text,) in rows if "total" in (t := _loads(text, {}))]
