"""Build argparse arguments from the option dataclasses (one definition of each option)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, get_args, get_origin

from pipeline.options import field_help


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (), prefix: str = "") -> None:
    """One ``--flag`` (``--<prefix><field>``) per field of ``cls``, with its default,
    type, choices and help."""
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        hint = hints[f.name]
        # absent flags stay absent (SUPPRESS) so presets can fill them and explicit flags win
        kwargs: dict[str, Any] = {
            "dest": f"{cls.__name__}.{f.name}",
            "default": argparse.SUPPRESS,
            "help": helps.get(f.name, "") + f" (default: {f.default})",
        }
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(hint) is typing.Literal:
            kwargs["choices"] = list(get_args(hint))
        else:
            kwargs["type"] = hint if hint in (int, float, str) else str
            kwargs["metavar"] = f.name.upper()
        group.add_argument(flag, **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, base: Any = None):
    """``base`` (or the defaults) with the flags the user actually gave."""
    given = {
        f.name: getattr(args, f"{cls.__name__}.{f.name}")
        for f in dataclasses.fields(cls)
        if hasattr(args, f"{cls.__name__}.{f.name}")
    }
    return dataclasses.replace(base, **given) if base is not None else cls(**given)
