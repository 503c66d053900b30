"""A persistent pool of worker processes for CPU-bound speech analysis.

pocketsphinx holds the GIL while it decodes (measured: two threads decoding the two
halves of a recording take as long as one thread decoding both), so the segments of a
recording are analysed in other processes.

- Created on first use (never at import), reused by every later call, shut down at exit.
- Each worker is a fresh interpreter (``python -m pipeline.speech.workers``, the 'spawn'
  model): it shares no state with the threads of MediaPipe, Gradio or PyAV in the parent
  (which a plain fork would copy mid-flight). Unlike multiprocessing's spawn and
  forkserver methods it does not re-import the parent's ``__main__``: a script that calls
  ``load_speech`` at module level (no ``if __name__ == "__main__"`` guard) would otherwise
  run again inside every worker, and the Studio's entry point would drag its imports in.
- Each worker loads its models once (the pocketsphinx recogniser, when it starts) and
  keeps them for every task; the workers start in the background while the caller goes
  on decoding its audio (:func:`warm_up`).
- A parent thread per worker feeds it tasks from one queue and resolves their futures; a
  worker that dies fails only its current task (the caller redoes it) and is restarted
  for the next one.

Tasks are module-level functions named ``"module:function"`` inside ``pipeline`` with
picklable arguments and results. ``AVATAR_STUDIO_TIMING_WORKERS`` sets the number of
workers (0 or 1: no pool; callers then run serially).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

WORKERS_ENV = "AVATAR_STUDIO_TIMING_WORKERS"
MAX_WORKERS = 8  # a recording has few segments; more workers mostly cost start-up
INIT_TASK = "pipeline.speech.segment_phones:load_models"  # what a new worker loads first
_HEADER = struct.Struct("<Q")


class WorkerDied(RuntimeError):
    """The worker process running a task exited before answering."""


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count() -> int:
    """How many worker processes the pool has (or would have); < 2 means serial."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            log.warning("%s=%r is not a number; using the core count", WORKERS_ENV, env)
    return min(cores(), MAX_WORKERS)


# ------------------------------------------------------------------ wire format


def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream: BinaryIO) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (n,) = _HEADER.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def _resolve(name: str):
    module, _, func = name.partition(":")
    if not module.startswith("pipeline."):
        raise ValueError(f"not a pipeline task: {name!r}")
    return getattr(importlib.import_module(module), func)


# ------------------------------------------------------------------ parent side


class _Process:
    """One worker process and its pipes (used by one parent thread at a time)."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the folder holding ``pipeline``
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        r_fd, w_fd = os.pipe()  # answers come back on their own pipe: stray prints cannot corrupt them
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.speech.workers", str(w_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=(w_fd,),
                env=env,
                cwd=root,
            )
        finally:
            os.close(w_fd)
        self.answers = os.fdopen(r_fd, "rb")

    def call(self, name: str, args: tuple) -> Any:
        try:
            assert self.proc.stdin is not None
            _send(self.proc.stdin, (name, args))
            ok, value = _recv(self.answers)
        except (EOFError, BrokenPipeError, OSError) as exc:
            raise WorkerDied(f"speech worker {self.proc.pid} exited (code {self.proc.poll()})") from exc
        if ok:
            return value
        raise value

    def close(self, timeout: float = 2.0) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the worker exits
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.answers.close()


class Pool:
    """``n`` worker processes behind one task queue."""

    def __init__(self, n: int) -> None:
        self.size = n
        self.completed = 0  # tasks answered so far (diagnostics, tests)
        self.started = 0  # workers that have loaded their models
        self._count_lock = threading.Lock()
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._procs: list[_Process | None] = [None] * n
        self._threads = [
            threading.Thread(target=self._serve, args=(i,), name=f"speech-worker-{i}", daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _start(self, i: int) -> _Process:
        p = _Process()
        p.call(INIT_TASK, ())
        self._procs[i] = p
        with self._count_lock:
            self.started += 1
        return p

    @property
    def ready(self) -> bool:
        """Whether at least one worker has started (callers can work themselves until then)."""
        return self.started > 0

    def _serve(self, i: int) -> None:
        proc: _Process | None = None
        try:
            proc = self._start(i)
        except Exception as exc:  # noqa: BLE001 - reported on the first task instead
            log.warning("speech worker %d did not start (%s)", i, exc)
            proc = None
        while True:
            item = self._tasks.get()
            if item is None:
                break
            fut, name, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                if proc is None:
                    proc = self._start(i)
                fut.set_result(proc.call(name, args))
            except WorkerDied as exc:
                if proc is not None:
                    proc.close(0.1)
                proc = self._procs[i] = None
                fut.set_exception(exc)
            except BaseException as exc:  # noqa: BLE001 - the task's own error, raised to the caller
                fut.set_exception(exc)
            with self._count_lock:
                self.completed += 1
        if proc is not None:
            proc.close()
        self._procs[i] = None

    def submit(self, name: str, *args: Any) -> Future:
        fut: Future = Future()
        self._tasks.put((fut, name, args))
        return fut

    def shutdown(self, timeout: float = 2.0) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join(timeout)
        for p in self._procs:  # workers whose thread is stuck on a long task
            if p is not None:
                p.close(0.1)


_lock = threading.Lock()
_pool: Pool | None = None


def get_pool() -> Pool | None:
    """The shared pool, started on first call; None when analysis should run serially."""
    global _pool
    n = worker_count()
    if n < 2:
        return None
    with _lock:
        if _pool is None or _pool.size != n:
            if _pool is not None:
                _pool.shutdown(0.1)
            log.info("starting %d speech analysis workers", n)
            _pool = Pool(n)
        return _pool


def warm_up() -> None:
    """Start the workers now (returns at once): they load their models while the caller
    decodes its audio."""
    get_pool()


def submit(name: str, *args: Any) -> Future | None:
    """Run task ``name`` ("module:function") on a worker; None when there is no pool."""
    pool = get_pool()
    return pool.submit(name, *args) if pool is not None else None


def shutdown(timeout: float = 2.0) -> None:
    """Stop the workers (at exit, and in tests); the next call starts new ones."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(timeout)


def reset() -> None:
    """Drop a failing pool without waiting for it; the next call starts a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        threading.Thread(target=pool.shutdown, args=(1.0,), name="speech-workers-reset", daemon=True).start()


atexit.register(shutdown)


# ------------------------------------------------------------------ worker side


def _serve(answer_fd: int) -> None:
    """The worker loop: (task name, args) in on stdin, (ok, value) out on ``answer_fd``,
    until stdin closes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    requests = sys.stdin.buffer
    answers = os.fdopen(answer_fd, "wb")
    while True:
        try:
            name, args = _recv(requests)
        except EOFError:
            return
        try:
            answer = (True, _resolve(name)(*args))
        except Exception as exc:  # noqa: BLE001 - sent back to the caller
            answer = (False, exc)
        try:
            _send(answers, answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _send(answers, (False, RuntimeError(f"{name}: result could not be sent back ({exc})")))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
