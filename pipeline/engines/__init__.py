"""Animators behind one contract. ``get_engine(name)`` imports an engine lazily from the registry.

The contract (:class:`Engine`):

- ``check(opts)`` (optional): raise before any work when the engine cannot run with these
  options (its weights are missing: ``ModelMissing`` naming ``models pull``), so that a
  render fails in a moment, before the speech is made.
- ``prepare(avatar, opts)``: per-avatar work, done once. ``avatar`` is a photo
  (``avatar.kind == "photo"``: one still) or a clip (``"clip"``: a presenter video with a
  face track); an engine that cannot animate the given kind raises ``InvalidOption`` saying
  which kinds it takes (``info.sources``).
- ``render(prepared, tracks, audio)``: one frame per track frame, streamed (the first at
  once). ``audio`` is the speech's PCM (mono float32 with its rate), the same samples the
  writers mux: engines that listen (mel or whisper features) read it, engines driven by
  the tracks alone may ignore it.
- The matte channel: when the avatar carries a person matte (``avatar.matte``) and the
  engine's ``info.carries_matte`` is true, frames are RGBA whose alpha is that matte moved
  with the pixels (the mouth interior opaque); otherwise frames are RGB and the render
  session mattes them itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Protocol

from pipeline.errors import InvalidOption
from pipeline.types import AudioClip, Avatar, Frame, Tracks

# engine name -> "module:Class", imported on first use
REGISTRY: dict[str, str] = {
    "warp": "pipeline.engines.warp:WarpEngine",
    "wav2lip": "pipeline.engines.wav2lip:Wav2LipEngine",
    "musetalk": "pipeline.engines.musetalk:MuseTalkEngine",
}


@dataclass(frozen=True)
class EngineInfo:
    """What the render session needs to know about an engine before using it."""

    name: str
    sources: tuple[Literal["photo", "clip"], ...]  # avatar kinds it animates
    carries_matte: bool  # frames keep the avatar's matte as alpha (else RGB only)
    device: Literal["cpu", "gpu", "any"] = "cpu"  # where it runs
    summary: str = ""  # one line for menus and `--help`


class Engine(Protocol):
    info: EngineInfo

    def prepare(self, avatar: Avatar, opts: Any) -> Any:
        """Per-avatar work for ``opts`` (RenderOptions), done once; passed to render()."""

    def output_size(self, prepared: Any) -> tuple[int, int]:
        """(width, height) of the frames render() yields."""

    def render(self, prepared: Any, tracks: Tracks, audio: AudioClip) -> Iterator[Frame]:
        """One uint8 RGB (or RGBA, see the module docstring) frame per track frame, streamed."""


_instances: dict[str, Engine] = {}


def names() -> list[str]:
    """Every registered engine name (the choices of ``RenderOptions.engine``)."""
    return sorted(REGISTRY)


def get_engine(name: str) -> Engine:
    if name not in REGISTRY:
        raise InvalidOption(f"Unknown engine {name!r}; available: {', '.join(names())}.")
    if name not in _instances:
        module, cls = REGISTRY[name].split(":")
        _instances[name] = getattr(importlib.import_module(module), cls)()
    return _instances[name]


def check_ready(name: str, opts: Any) -> None:
    """The engine's optional ``check(opts)``: missing weights fail before any work is done."""
    check = getattr(get_engine(name), "check", None)
    if check is not None:
        check(opts)


def check_source(engine: Engine, avatar: Avatar) -> None:
    """Refuse an avatar kind the engine cannot animate, with what it can."""
    if avatar.kind not in engine.info.sources:
        raise InvalidOption(
            f"The {engine.info.name} engine animates {' or '.join(engine.info.sources)} avatars, "
            f"not a {avatar.kind}; choose another engine or another face source."
        )
