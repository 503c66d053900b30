"""UI controls generated from the option dataclasses, and UI values turned back into options.

One definition of each option (``pipeline.options``) feeds the controls: the field's kind
picks the component, its default is the value, its help is the info text, its ``range`` and
``step`` make a slider, its ``menu`` a dropdown of suggested values and its ``choices`` (fixed
or from a registry) a dropdown. Nothing here repeats a rule.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, TypeVar

import gradio as gr

from pipeline.options import spec, specs

O = TypeVar("O")


def _label(cls: type, name: str) -> str:
    return spec(cls, name).label or name.replace("_", " ").capitalize()


def _info(text: str) -> str:
    return text[:1].upper() + text[1:] if text else ""


def _plain(value: Any) -> Any:
    """25.0 -> 25 so a float default matches an int menu entry."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def option_control(cls: type, name: str) -> gr.components.Component | None:
    """The component for field ``name`` of ``cls``; None when there is nothing to choose."""
    s = spec(cls, name)
    info, label, default = _info(s.help), _label(cls, name), s.default
    if s.menu:
        return gr.Dropdown(choices=list(s.menu), value=_plain(default), label=label, info=info)
    if s.choices is not None:
        if len(s.choices) < 2:
            return None
        return gr.Dropdown(choices=list(s.choices), value=default, label=label, info=info)
    if s.kind is bool:
        return gr.Checkbox(value=default, label=label, info=info)
    if s.kind in (int, float) and s.range is not None and s.step is not None:
        lo, hi = s.range
        return gr.Slider(minimum=lo, maximum=hi, step=s.step, value=default, label=label, info=info)
    if s.kind is int:
        return gr.Number(value=default, precision=0, label=label, info=info)
    if s.kind is float:
        return gr.Number(value=default, label=label, info=info)
    return gr.Textbox(value=str(default), label=label, info=info)


def option_controls(cls: type, skip: Sequence[str] = ()) -> dict[str, gr.components.Component]:
    """Components for every field of ``cls`` (in declaration order), keyed by field name."""
    out: dict[str, gr.components.Component] = {}
    for s in specs(cls):
        if s.name in skip:
            continue
        control = option_control(cls, s.name)
        if control is not None:
            out[s.name] = control
    return out


def options_from_values(cls: type[O], values: dict[str, Any]) -> O:
    """An instance of ``cls`` from UI values: coerced to the field types, None keeps the default.

    Raises ValueError naming the option when a value cannot be converted.
    """
    kinds = {s.name: s.kind for s in specs(cls)}
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in kinds:
            raise ValueError(f"Unknown option '{name}'.")
        if value is None or value == "":
            continue
        kind = kinds[name]
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
            raise ValueError(f"{_label(cls, name)}: '{value}' is not a valid value.") from exc
    return dataclasses.replace(cls(), **changes)  # type: ignore[call-arg, type-var]
