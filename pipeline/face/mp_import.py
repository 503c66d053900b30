"""``import mediapipe`` without paying for matplotlib.

mediapipe 0.10.21's ``solutions`` package imports its drawing helpers at import time, and
they import ``matplotlib.pyplot`` (for ``plot_landmarks``, which the studio never calls):
about 0.3-0.5 s of every process that finds a face, measured on 2 cores (0.81 -> 0.48 s
for ``import mediapipe`` under load). :func:`mediapipe` imports it with a stand-in for
``matplotlib.pyplot`` that becomes the real module on first use, so nothing breaks if
anyone does draw.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


class _LazyPyplot(types.ModuleType):
    """Stands in for ``matplotlib.pyplot`` until an attribute is read."""

    def __getattr__(self, name: str) -> Any:
        real = self.__dict__.get("_real")
        if real is None:
            with _lock:
                if sys.modules.get("matplotlib.pyplot") is self:
                    del sys.modules["matplotlib.pyplot"]
                real = importlib.import_module("matplotlib.pyplot")
                self.__dict__["_real"] = real
        return getattr(real, name)


def mediapipe() -> Any:
    """The ``mediapipe`` module (imported once, without importing ``matplotlib.pyplot``)."""
    module = sys.modules.get("mediapipe")
    if module is not None:
        return module
    with _lock:
        stub = None
        if "matplotlib.pyplot" not in sys.modules:
            stub = sys.modules["matplotlib.pyplot"] = _LazyPyplot("matplotlib.pyplot")
        try:
            return importlib.import_module("mediapipe")
        finally:
            if stub is not None and sys.modules.get("matplotlib.pyplot") is stub and "_real" not in stub.__dict__:
                del sys.modules["matplotlib.pyplot"]  # later `import matplotlib.pyplot` gets the real one
