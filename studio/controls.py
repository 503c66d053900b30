"""UI controls generated from the option dataclasses, and UI values turned back into options.

One definition of each option (``pipeline.options``) feeds the controls: the field type
picks the component, the default is its value and the field's trailing comment (via
``field_help``) is its help text. This module only holds presentation choices (labels,
the menus for fps and size); ranges come from the help text ("0.5 (subtle) .. 1.5 (wide)").
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Literal, Sequence, TypeVar

import gradio as gr

from pipeline.options import field_help

O = TypeVar("O")

Choices = Sequence[int | float | str | tuple[str, int | float | str]]

# Presentation only: menus for fields where free values make no sense in a UI.
CHOICES: dict[str, Choices] = {
    "fps": [24, 25, 30, 50, 60],
    "size": [("Source size", 0), ("512 px", 512), ("720 px", 720), ("1080 px", 1080)],
}

LABELS: dict[str, str] = {
    "fps": "Frame rate (fps)",
    "size": "Output size",
    "mouth_scale": "Mouth movement",
    "blinks": "Eye blinks",
    "speed": "Speaking rate",
}

_RANGE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:\([^)]*\))?\s*\.\.\s*(-?\d+(?:\.\d+)?)")


def help_range(text: str) -> tuple[float, float] | None:
    """The ``lo .. hi`` range written in a field's help text, if there is one."""
    m = _RANGE.search(text)
    if not m:
        return None
    lo, hi = float(m.group(1)), float(m.group(2))
    return (lo, hi) if lo < hi else None


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _info(text: str) -> str:
    return text[:1].upper() + text[1:] if text else ""


def _plain(value: Any) -> Any:
    """25.0 -> 25 so a float default matches an int menu entry."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def option_control(cls: type, name: str) -> gr.components.Component | None:
    """The component for field ``name`` of ``cls``; None when there is nothing to choose."""
    hints = typing.get_type_hints(cls)
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    kind = hints[name]
    default = field.default
    info = _info(field_help(cls).get(name, ""))
    label = _label(name)
    if name in CHOICES:
        return gr.Dropdown(choices=list(CHOICES[name]), value=_plain(default), label=label, info=info)
    if typing.get_origin(kind) is Literal:
        options = typing.get_args(kind)
        if len(options) < 2:
            return None
        return gr.Dropdown(choices=list(options), value=default, label=label, info=info)
    if kind is bool:
        return gr.Checkbox(value=default, label=label, info=info)
    span = help_range(info)
    if kind in (int, float) and span is not None:
        step = 1 if kind is int else 0.05
        return gr.Slider(minimum=span[0], maximum=span[1], step=step, value=default, label=label, info=info)
    if kind is int:
        return gr.Number(value=default, precision=0, label=label, info=info)
    if kind is float:
        return gr.Number(value=default, label=label, info=info)
    return gr.Textbox(value=str(default), label=label, info=info)


def option_controls(cls: type, skip: Sequence[str] = ()) -> dict[str, gr.components.Component]:
    """Components for every field of ``cls`` (in declaration order), keyed by field name."""
    out: dict[str, gr.components.Component] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        control = option_control(cls, f.name)
        if control is not None:
            out[f.name] = control
    return out


def options_from_values(cls: type[O], values: dict[str, Any]) -> O:
    """An instance of ``cls`` from UI values: coerced to the field types, None keeps the default.

    Raises ValueError naming the option when a value cannot be converted.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"Unknown option '{name}'.")
        if value is None or value == "":
            continue
        kind = hints[name]
        try:
            if kind is bool:
                changes[name] = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif kind is int:
                changes[name] = int(round(float(value)))
            elif kind is float:
                changes[name] = float(value)
            else:
                changes[name] = value
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{_label(name)}: '{value}' is not a valid value.") from exc
    return dataclasses.replace(cls(), **changes)  # type: ignore[call-arg, type-var]
