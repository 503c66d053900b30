"""Animators. ``get_engine(name)`` imports an engine lazily from the registry."""

from __future__ import annotations

import importlib
from typing import Any, Iterator, Protocol

from pipeline.errors import InvalidOption
from pipeline.options import RenderOptions
from pipeline.types import Avatar, Frame, Tracks

REGISTRY: dict[str, str] = {
    "warp": "pipeline.engines.warp:WarpEngine",
}


class Engine(Protocol):
    name: str

    def prepare(self, avatar: Avatar, opts: RenderOptions) -> Any:
        """Per-avatar work, done once; the result is passed to render()."""

    def output_size(self, prepared: Any) -> tuple[int, int]:
        """(width, height) of the frames render() yields."""

    def render(self, prepared: Any, tracks: Tracks) -> Iterator[Frame]:
        """One RGB frame per track frame, streamed."""


_instances: dict[str, Engine] = {}


def get_engine(name: str) -> Engine:
    if name not in REGISTRY:
        raise InvalidOption(f"Unknown engine {name!r}; available: {', '.join(sorted(REGISTRY))}.")
    if name not in _instances:
        module, cls = REGISTRY[name].split(":")
        _instances[name] = getattr(importlib.import_module(module), cls)()
    return _instances[name]
