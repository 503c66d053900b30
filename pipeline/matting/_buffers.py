"""Scratch arrays reused from one frame to the next.

Per-frame matting and compositing create several full-resolution temporaries. Freeing
them at the end of a frame lets the allocator hand the pages back to the kernel, and
touching fresh pages again next frame costs more than the arithmetic itself on some
machines (virtualised CPUs: ~3 ms per 4 MB). Keeping named buffers alive avoids that.
"""

from __future__ import annotations

import threading

import numpy as np


class Workspace:
    """Named scratch arrays; ``get`` returns the same array while shape and dtype match.

    The contents are garbage between uses; never hand a workspace array to a caller.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type | np.dtype = np.float32) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
            a = np.empty(shape, dtype)
            self._arrays[name] = a
        return a

    def clear(self) -> None:
        self._arrays.clear()


_local = threading.local()


def thread_workspace() -> Workspace:
    """The calling thread's workspace (matters are shared between threads; buffers are not)."""
    ws = getattr(_local, "ws", None)
    if ws is None:
        ws = _local.ws = Workspace()
    return ws
