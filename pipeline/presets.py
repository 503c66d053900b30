"""TOML presets in ``presets/`` that fill option dataclasses (never read at import)."""

from __future__ import annotations

import dataclasses
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import InvalidOption

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
T = TypeVar("T")


@lru_cache(maxsize=None)
def load(kind: str) -> dict[str, dict[str, Any]]:
    """All presets of one kind, e.g. ``load("expressions")`` -> {"friendly": {...}}."""
    path = PRESET_DIR / f"{kind}.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def apply(opts: T, kind: str, name: str) -> T:
    """``opts`` with the preset's values (only fields the dataclass has)."""
    presets = load(kind)
    if name not in presets:
        raise InvalidOption(f"Unknown {kind} preset {name!r}; choose one of: {', '.join(presets)}.")
    fields = {f.name for f in dataclasses.fields(opts)}  # type: ignore[arg-type]
    values = {k: v for k, v in presets[name].items() if k in fields}
    return dataclasses.replace(opts, **values)  # type: ignore[type-var]
