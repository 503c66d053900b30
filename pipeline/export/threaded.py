"""Encode on a second thread while the next frames are rendered.

x264, VP9 and the colour conversion release the GIL inside FFmpeg, so on two cores a
render loop and its encoder overlap. Frames are handed over through a small bounded
queue (memory stays at a few frames); the first error on the encoder side is raised
in the caller at its next ``write`` or at ``close``.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from pipeline.export.base import WriterContext

_STOP = object()


class _Audio:
    """Audio to append (``extend_audio``), in order with the frames around it."""

    def __init__(self, clip) -> None:
        self.clip = clip


class ThreadedWriter(WriterContext):
    """Wraps a writer (``write``/``close``/``abort``) so that ``write`` only enqueues.

    Frames must not be modified after ``write`` (the engines yield a new array per frame).
    """

    def __init__(self, writer, depth: int = 4) -> None:
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None:
                try:
                    if isinstance(item, _Audio):
                        self.writer.extend_audio(item.clip)
                        continue
                    self.writer.write(item)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, frame: np.ndarray) -> None:
        self._raise()
        self._queue.put(frame)

    def extend_audio(self, clip) -> None:
        """The writer's ``extend_audio``, in order with the frames written before and after."""
        self._raise()
        self._queue.put(_Audio(clip))

    def _drain(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def close(self):
        self._drain()
        if self._error is not None:
            self.writer.abort()
            raise self._error
        return self.writer.close()

    def abort(self) -> None:
        self._drain()
        self.writer.abort()

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written

