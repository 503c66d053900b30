"""Build argparse arguments from the option dataclasses (one definition of each option).

Type, default, choices (fixed or from a registry), range and help all come from the field
rules in ``pipeline.options``; values are checked by the dataclass itself.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from pipeline.options import OptionSpec, specs


def _help(s: OptionSpec) -> str:
    text = s.help
    if s.range and not any(ch.isdigit() for ch in text):
        text += f" ({s.range[0]:g}..{s.range[1]:g})"
    return f"{text} (default: {s.default})"


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (), prefix: str = "") -> None:
    """One ``--flag`` (``--<prefix><field>``) per field of ``cls``."""
    group = parser.add_argument_group(cls.__name__)
    for s in specs(cls):
        if s.name in skip:
            continue
        flag = "--" + (prefix + s.name).replace("_", "-")
        # absent flags stay absent (SUPPRESS) so presets can fill them and explicit flags win
        kwargs: dict[str, Any] = {"dest": f"{cls.__name__}.{s.name}", "default": argparse.SUPPRESS, "help": _help(s)}
        if s.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif s.choices is not None:
            kwargs["choices"] = list(s.choices)
        else:
            kwargs["type"] = s.kind
            kwargs["metavar"] = s.name.upper()
        group.add_argument(flag, **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, base: Any = None):
    """``base`` (or the defaults) with the flags the user actually gave."""
    given = {
        f.name: getattr(args, f"{cls.__name__}.{f.name}")
        for f in dataclasses.fields(cls)
        if hasattr(args, f"{cls.__name__}.{f.name}")
    }
    return dataclasses.replace(base, **given) if base is not None else cls(**given)
