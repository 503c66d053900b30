"""The export formats and their facts, read from the writer classes themselves.

Each writer class declares what its format is (``format``, ``label``, ``suffixes``,
``supports_alpha``, ``has_video``, ``has_audio``, ``browser_playable``); this module maps
format names to writer classes (imported on first use) and answers questions about them for
the CLI (the output suffix picks the format), the studio, option validation and the API.
It imports no writer at import time, so option checks stay cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.errors import InvalidOption

# format name -> "module:Class", imported on first use
WRITERS: dict[str, str] = {
    "mp4": "pipeline.export.mp4:Mp4Writer",
    "webm": "pipeline.export.webm:WebmWriter",
    "mov": "pipeline.export.mov:MovWriter",
    "gif": "pipeline.export.gif:GifWriter",
    "png": "pipeline.export.png:PngSequenceWriter",
    "wav": "pipeline.export.wav:WavWriter",
}


@dataclass(frozen=True)
class FormatInfo:
    name: str
    label: str
    suffixes: tuple[str, ...]  # "" means the output is a folder
    supports_alpha: bool
    has_video: bool
    has_audio: bool
    browser_playable: bool

    @property
    def folder(self) -> bool:
        return self.suffixes == ("",)

    def output_name(self, stem: str) -> str:
        return stem + self.suffixes[0]


def format_names() -> list[str]:
    return list(WRITERS)


def writer_class(name: str) -> type:
    target = WRITERS.get(name)
    if target is None:
        raise InvalidOption(f"Export format '{name}' is not available; choose one of: {', '.join(sorted(WRITERS))}.")
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


@lru_cache(maxsize=None)
def format_info(name: str) -> FormatInfo:
    cls = writer_class(name)
    return FormatInfo(name, cls.label, tuple(cls.suffixes), bool(cls.supports_alpha), bool(cls.has_video),
                      bool(cls.has_audio), bool(cls.browser_playable))


def alpha_formats() -> list[str]:
    return [n for n in WRITERS if format_info(n).supports_alpha]


def format_for_path(path: str | Path) -> str:
    """The format an output name asks for: by suffix; no suffix is a folder (PNG sequence).

    An unknown suffix raises InvalidOption listing the known ones."""
    suffix = Path(path).suffix.lower()
    for name in WRITERS:
        if suffix in format_info(name).suffixes:
            return name
    known = ", ".join(s or "(none: a folder of PNGs)" for n in WRITERS for s in format_info(n).suffixes)
    raise InvalidOption(f"Unknown output suffix '{suffix}' for {Path(path).name}; use one of: {known}.")
