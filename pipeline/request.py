"""RenderRequest: one render described as data (face source, voice source, option groups).

Every caller (CLI, studio, HTTP API, batch runner, live) builds a :class:`RenderRequest`,
validates it in one place (:meth:`RenderRequest.validate`: every field rule of the option
dataclasses plus the rules that span groups, with the pipeline's clear errors) and hands
it to the render session (``pipeline.render``). It round-trips through JSON
(:meth:`to_json` / :meth:`from_json`) so jobs and the API can store it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import InvalidOption, InvalidText, UnsupportedMedia
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions, check_fields, opt

TimingMode = Literal["auto", "align", "synth", "phones", "acoustic"]
TIMING_MODES: tuple[str, ...] = typing.get_args(TimingMode)  # how a recording's mouth timing is found


@dataclass(frozen=True)
class FaceSource:
    path: str = opt("", "face photo (any format Pillow reads) or presenter clip; empty uses the bundled sample")
    multi_face: Literal["largest", "refuse"] = opt("largest", "several faces: animate the best one, or refuse")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class VoiceSource:
    """Text spoken by a TTS voice, or a recording with how to time it (exactly one of the two)."""

    text: str = opt("", "what the avatar says, spoken with the TTS voice")
    audio: str = opt("", "a speech recording or upload instead of text (wav, mp3, m4a, ogg, flac, webm, ...)")
    voice: VoiceOptions = field(default_factory=VoiceOptions)  # TTS voice and rate, for text
    transcript: str = opt("", "with audio: what is said, for exact phoneme timing")
    timing: TimingMode = opt("auto", "with audio: how mouth timing is found: align (pocketsphinx, English), "
                             "synth (alignment by espeak-ng synthesis, any language), phones (recognition, "
                             "English), acoustic (any audio); auto picks the best available")
    language: str = opt("en", "with audio: language of the speech, e.g. en, de, pt-br")

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def kind(self) -> Literal["text", "audio"]:
        return "audio" if self.audio else "text"


@dataclass(frozen=True)
class RenderRequest:
    face: FaceSource = field(default_factory=FaceSource)
    voice: VoiceSource = field(default_factory=VoiceSource)
    render: RenderOptions = field(default_factory=RenderOptions)
    background: BackgroundOptions = field(default_factory=BackgroundOptions)
    export: ExportOptions = field(default_factory=ExportOptions)

    # ------------------------------------------------------------------ validation

    def validate(self, check_files: bool = True) -> "RenderRequest":
        """Raise the pipeline's specific error for the first thing wrong; returns self.

        Field rules are checked again (a request built from JSON bypasses nothing), then
        the rules across groups: exactly one voice source, text length, transparency needs
        a format with alpha, files that must exist, the engine's weights (with ``check_files``)."""
        for group in (self.face, self.voice, self.voice.voice, self.render, self.background, self.export):
            check_fields(group)
        v = self.voice
        if bool(v.text.strip()) == bool(v.audio):
            raise InvalidText("Give the avatar something to say: either a text or a recording (not both).")
        if v.text and len(v.text) > v.voice.max_chars:
            raise InvalidText(
                f"The text is {len(v.text)} characters long; the limit for one render is {v.voice.max_chars}."
            )
        check_transparency(self.background, self.export)
        if check_files:
            for what, path in (("face", self.face.path), ("audio", v.audio), ("background image", self._bg("image")),
                               ("background video", self._bg("video"))):
                if path and not Path(path).is_file():
                    raise UnsupportedMedia(f"The {what} file '{path}' was not found.")
            from pipeline.engines import check_ready

            check_ready(self.render.engine, self.render)  # weights on this machine (ModelMissing)
        return self

    def _bg(self, name: str) -> str:
        return getattr(self.background, name) if self.background.mode == name else ""

    @property
    def export_alpha(self) -> ExportOptions:
        """The export options with alpha on when the background is transparent (see :func:`export_for`)."""
        return export_for(self.background, self.export)

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RenderRequest":
        """A request from its dict form; unknown keys are refused (a typo is not silently ignored)."""
        if not isinstance(data, dict):
            raise InvalidOption("A render request must be a JSON object.")
        voice = dict(_group(data, "voice", VoiceSource))
        voice["voice"] = _build(VoiceOptions, voice.get("voice", {}), "voice.voice")
        return cls(
            face=_build(FaceSource, _group(data, "face", FaceSource), "face"),
            voice=_build(VoiceSource, voice, "voice"),
            render=_build(RenderOptions, _group(data, "render", RenderOptions), "render"),
            background=_build(BackgroundOptions, _group(data, "background", BackgroundOptions), "background"),
            export=_build(ExportOptions, _group(data, "export", ExportOptions), "export"),
        )

    @classmethod
    def from_json(cls, text: str) -> "RenderRequest":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidOption(f"The render request is not valid JSON: {exc}.") from exc
        return cls.from_dict(data)


def export_for(background: BackgroundOptions, export: ExportOptions) -> ExportOptions:
    """``export`` with alpha on when the background is transparent and the format keeps it."""
    if background.mode != "transparent" or export.alpha:
        return export
    from pipeline.export.formats import format_info

    return dataclasses.replace(export, alpha=True) if format_info(export.format).supports_alpha else export


def check_transparency(background: BackgroundOptions, export: ExportOptions) -> None:
    """A transparent background needs an export format that keeps alpha."""
    if background.mode != "transparent":
        return
    from pipeline.export.formats import alpha_formats, format_info

    if not format_info(export.format).supports_alpha:
        raise InvalidOption(
            f"A transparent background needs an export format with alpha ({', '.join(alpha_formats())}), "
            f"not {export.format}."
        )


_GROUPS = ("face", "voice", "render", "background", "export")


def _group(data: dict[str, Any], name: str, cls: type) -> dict[str, Any]:
    unknown = set(data) - set(_GROUPS)
    if unknown:
        raise InvalidOption(f"Unknown request section(s): {', '.join(sorted(unknown))}; known: {', '.join(_GROUPS)}.")
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise InvalidOption(f"Request section '{name}' must be an object.")
    return value


def _build(cls: type, values: Any, where: str) -> Any:
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise InvalidOption(f"Request section '{where}' must be an object.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise InvalidOption(f"Unknown option(s) in '{where}': {', '.join(sorted(unknown))}.")
    return cls(**values)
