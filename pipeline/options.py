"""Options for every stage: frozen dataclasses with defaults, one comment per field.

One definition feeds the CLI (``launch.py`` builds argparse from these), the UI
controls and the API schema. Per-request changes use ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.errors import InvalidOption

EngineName = Literal["warp"]
ExportFormat = Literal["mp4"]


@dataclass(frozen=True)
class VoiceOptions:
    voice: str = "en_US-joe-medium"  # TTS voice name (see presets/voices.toml)
    speed: float = 1.0  # speaking rate multiplier, 0.5 (slow) .. 2.0 (fast)
    max_chars: int = 20000  # longest text accepted for one render

    def __post_init__(self) -> None:
        _check_range(self, "speed", 0.25, 4.0)


@dataclass(frozen=True)
class RenderOptions:
    fps: float = 25.0  # output frames per second (constant frame rate)
    size: int = 0  # longest side of the output in pixels; 0 keeps the source size
    engine: EngineName = "warp"  # animator that turns the avatar and poses into frames
    mouth_scale: float = 1.0  # multiplier on mouth opening, 0.5 (subtle) .. 1.5 (wide)
    blinks: bool = True  # natural eye blinks every few seconds
    head_motion: float = 0.35  # head movement with the speech: 0 (still) .. 1 (lively)
    smile: float = 0.0  # constant smile: 0 (neutral) .. 1 (broad)
    brows: float = 0.5  # brow raise on emphasised syllables: 0 (none) .. 1 (strong)
    seed: int = 0  # seed for blinks and other random motion; same seed, same frames

    def __post_init__(self) -> None:
        _check_range(self, "fps", 1.0, 120.0)
        _check_range(self, "mouth_scale", 0.0, 3.0)
        _check_range(self, "head_motion", 0.0, 1.0)
        _check_range(self, "smile", 0.0, 1.0)
        _check_range(self, "brows", 0.0, 1.0)
        if self.size != 0 and not 64 <= self.size <= 4096:
            raise InvalidOption(f"size must be 0 (source size) or between 64 and 4096 pixels, not {self.size}.")


@dataclass(frozen=True)
class ExportOptions:
    format: ExportFormat = "mp4"  # container/codec family of the output file
    crf: int = 18  # H.264 constant rate factor: 0 lossless .. 51 worst; 18 looks transparent
    preset: Literal["ultrafast", "veryfast", "fast", "medium", "slow"] = "veryfast"  # x264 speed/size


def _check_range(opts: Any, name: str, lo: float, hi: float) -> None:
    value = getattr(opts, name)
    if not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise InvalidOption(f"{name} must be between {lo:g} and {hi:g}, not {value!r}.")


def field_help(cls: type) -> dict[str, str]:
    """The trailing comment of each field, read from the source, used as help text."""
    import inspect
    import re

    src = inspect.getsource(cls)
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s+(\w+):[^=\n]+=[^#\n]+#\s*(.+)$", src, re.M):
        out[m.group(1)] = m.group(2).strip()
    return out


def to_dict(opts: Any) -> dict[str, Any]:
    return dataclasses.asdict(opts)
