"""``import mediapipe`` without paying for matplotlib's pyplot and the Tasks API.

mediapipe 0.10.21's ``solutions`` package imports its drawing helpers at import time, and
they import ``matplotlib.pyplot`` (for ``plot_landmarks``, which the studio never calls):
about 0.3-0.5 s of every process that finds a face, measured on 2 cores (0.81 -> 0.48 s
for ``import mediapipe`` under load). Its top package also imports the whole Tasks API
(``mediapipe.tasks.python``: audio, vision, text and genai tasks, with ``sounddevice``),
while the studio runs the ``solutions`` graphs only: 0.48 -> 0.29 s more on a quiet
machine (medians of 5).

:func:`mediapipe` imports it with stand-ins for those modules (:data:`LAZY`) that become
the real modules on first use, so nothing breaks if anyone does draw or use a task
(``mp.tasks.vision.FaceLandmarker`` works as before). A stand-in is made by the import
system itself (a finder on ``sys.meta_path`` for the length of the import), so its parent
packages are imported and bound as usual.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.RLock()
LAZY = ("matplotlib.pyplot", "mediapipe.tasks.python")  # imported on first use


class _LazyModule(types.ModuleType):
    """Stands in for a module until an attribute is read; from then on it is the real one."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # what the import machinery and copy look for
            raise AttributeError(name)
        real = self.__dict__.get("_real")
        if real is None:
            with _lock:
                real = self.__dict__.get("_real")
                if real is None:
                    if sys.modules.get(self.__name__) is self:
                        del sys.modules[self.__name__]
                    real = importlib.import_module(self.__name__)
                    self.__dict__["_real"] = real
        return getattr(real, name)


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the modules of :data:`LAZY` and loads each as a :class:`_LazyModule`."""

    def __init__(self) -> None:
        self.made: list[_LazyModule] = []

    def find_spec(self, fullname, path, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in LAZY else None

    def create_module(self, spec) -> _LazyModule:
        module = _LazyModule(spec.name)
        self.made.append(module)
        return module

    def exec_module(self, module) -> None:
        pass


def mediapipe() -> Any:
    """The ``mediapipe`` module (imported once, without importing :data:`LAZY` yet)."""
    module = sys.modules.get("mediapipe")
    if module is not None:
        return module
    with _lock:
        finder = _StandIns()
        sys.meta_path.insert(0, finder)
        try:
            return importlib.import_module("mediapipe")
        finally:
            sys.meta_path.remove(finder)
            for stub in finder.made:
                if sys.modules.get(stub.__name__) is stub and "_real" not in stub.__dict__:
                    del sys.modules[stub.__name__]  # a later `import` of it gets the real module
