"""Options for every stage: frozen dataclasses with defaults and one rule set per field.

Each field is declared with :func:`opt`: its default, its help text, and the rules that
the CLI (``pipeline.cli_options``), the studio's controls (``studio.controls``), validation
(``__post_init__`` via :func:`check_fields`) and the API schema (:func:`json_schema`) all read
from the field's metadata: a numeric ``range`` (plus ``special`` values allowed outside it,
such as ``size = 0`` for "source size"), a fixed set of ``choices`` (a ``Literal`` type, or a
callable returning the names a registry knows, such as the engines), a UI ``step`` and a
``menu`` of suggested values. Per-request changes use ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

from pipeline.errors import InvalidOption

ExportQuality = Literal["web", "social", "archive"]
MovAudio = Literal["pcm", "aac"]
SubtitleMode = Literal["none", "srt", "vtt", "burn"]
BackgroundMode = Literal["keep", "blur", "color", "image", "video", "transparent"]
DEFAULT_BACKGROUND_COLOR = "#e8ebef"  # light studio grey

MenuItem = int | float | str | tuple[str, int | float | str]


def opt(
    default: Any,
    help: str,
    *,
    range: tuple[float, float] | None = None,
    special: dict[Any, str] | None = None,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    step: float | None = None,
    menu: Sequence[MenuItem] | None = None,
    label: str = "",
    pattern: str = "",
    hint: str = "",
) -> Any:
    """A dataclass field with its rules in the metadata (see the module docstring).

    ``special``: values accepted outside ``range`` with what they mean ({0: "source size"}).
    ``pattern``: a regular expression a string value must match in full; ``hint`` says what
    it looks like in the error message.
    """
    meta = {"help": help, "range": range, "special": dict(special or {}), "choices": choices, "step": step,
            "menu": tuple(menu) if menu else None, "label": label, "pattern": pattern, "hint": hint}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionSpec:
    """Everything known about one option field, resolved for its consumers."""

    name: str
    kind: type  # bool, int, float or str
    default: Any
    help: str
    range: tuple[float, float] | None
    special: dict[Any, str]
    choices: tuple[str, ...] | None  # the allowed values, when the set is fixed
    step: float | None
    menu: tuple[MenuItem, ...] | None
    label: str
    pattern: str
    hint: str


def specs(cls: type) -> list[OptionSpec]:
    """The :class:`OptionSpec` of every field of ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            continue  # a nested option group (checked by its own rules)
        choices: tuple[str, ...] | None = None
        kind: type = hint if hint in (bool, int, float, str) else str
        if typing.get_origin(hint) is Literal:
            choices = tuple(typing.get_args(hint))
            kind = type(choices[0])
        provider = meta.get("choices")
        if provider is not None:
            choices = tuple(provider() if callable(provider) else provider)
        out.append(OptionSpec(
            f.name, kind, f.default, meta.get("help", ""), meta.get("range"), dict(meta.get("special") or {}),
            choices, meta.get("step"), meta.get("menu"), meta.get("label", ""), meta.get("pattern", ""),
            meta.get("hint", ""),
        ))
    return out


def spec(cls: type, name: str) -> OptionSpec:
    found = next((s for s in specs(cls) if s.name == name), None)
    if found is None:
        raise KeyError(f"{cls.__name__} has no option {name!r}")
    return found


def field_help(cls: type) -> dict[str, str]:
    """The help text of each field of ``cls``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def check_value(s: OptionSpec, value: Any) -> None:
    """Raise InvalidOption when ``value`` breaks the rules of option ``s``."""
    if value in s.special and type(value) is not bool:
        return
    if s.kind is bool:
        if not isinstance(value, bool):
            raise InvalidOption(f"{s.name} must be true or false, not {value!r}.")
        return
    if s.kind in (int, float):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if s.kind is int and numeric and not float(value).is_integer():
            numeric = False
        lo, hi = s.range if s.range else (float("-inf"), float("inf"))
        if not numeric or not lo <= value <= hi:
            allowed = "".join(f"{k!r} ({v}) or " for k, v in s.special.items())
            what = f"between {_num(lo)} and {_num(hi)}" if s.range else ("a whole number" if s.kind is int else "a number")
            raise InvalidOption(f"{s.name} must be {allowed}{what}, not {value!r}.")
        return
    if not isinstance(value, str):
        raise InvalidOption(f"{s.name} must be text, not {value!r}.")
    if s.choices is not None and value not in s.choices:
        raise InvalidOption(f"{s.name} must be one of {', '.join(map(str, s.choices))}, not {value!r}.")
    if s.pattern and not re.fullmatch(s.pattern, value.strip()):
        raise InvalidOption(f"{s.name} must be {s.hint or 'like ' + s.pattern}, not {value!r}.")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_fields(opts: Any) -> None:
    """Check every field of a dataclass instance against its rules (called by __post_init__)."""
    for s in specs(type(opts)):
        check_value(s, getattr(opts, s.name))


def json_schema(cls: type) -> dict[str, Any]:
    """A JSON Schema object for ``cls`` built from the same rules (for the HTTP API)."""
    props: dict[str, Any] = {}
    for s in specs(cls):
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}[s.kind]
        prop: dict[str, Any] = {"type": kind, "default": s.default, "description": s.help}
        if s.choices is not None:
            prop["enum"] = list(s.choices)
        if s.range is not None:
            rng = {"type": kind, "minimum": s.range[0], "maximum": s.range[1]}
            if s.special:
                prop.pop("type")
                prop["anyOf"] = [rng, {"enum": list(s.special)}]
            else:
                prop.update(minimum=s.range[0], maximum=s.range[1])
        if s.pattern:
            prop["pattern"] = s.pattern
        props[s.name] = prop
    return {"type": "object", "title": cls.__name__, "properties": props, "additionalProperties": False}


def _engine_names() -> list[str]:
    from pipeline.engines import names

    return names()


def _format_names() -> list[str]:
    from pipeline.export.formats import format_names

    return format_names()


@dataclass(frozen=True)
class VoiceOptions:
    voice: str = opt("en_US-joe-medium", "TTS voice: an id from presets/voices.toml, espeak:<language>, "
                     "a Piper voice name or a .onnx path")
    speed: float = opt(1.0, "speaking rate multiplier: 0.5 (slow) .. 2.0 (fast)", range=(0.5, 2.0), step=0.05,
                       label="Speaking rate")
    variation: float = opt(1.0, "natural variation of a neural voice: 1 as trained .. 0 the same audio for the "
                           "same text every time (a little flatter)", range=(0.0, 1.0), step=0.05)
    max_chars: int = opt(20000, "longest text accepted for one render", range=(1, 1_000_000))
    normalize: bool = opt(True, "rewrite what engines misread before speaking: titles (Dr.), money ($5.50), "
                          "numeric dates (3/14/2024)")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RenderOptions:
    fps: float = opt(25.0, "output frames per second (constant frame rate)", range=(1.0, 120.0),
                     menu=(24, 25, 30, 50, 60), label="Frame rate (fps)")
    size: int = opt(0, "longest side of the output in pixels; 0 keeps the source size (photos larger than "
                    "1920 px are then rendered at 1920)", range=(64, 4096), special={0: "source size"},
                    menu=(("Source size (up to 1920 px)", 0), ("512 px", 512), ("720 px", 720), ("1080 px", 1080),
                          ("1920 px", 1920), ("4K (3840 px)", 3840)),
                    label="Output size")
    engine: str = opt("warp", "animator that turns the avatar and poses into frames", choices=_engine_names)
    mouth_scale: float = opt(1.0, "multiplier on mouth opening: 0.5 (subtle) .. 1.5 (wide)", range=(0.5, 1.5),
                             step=0.05, label="Mouth movement")
    blinks: bool = opt(True, "natural eye blinks every few seconds", label="Eye blinks")
    head_motion: float = opt(0.35, "head movement with the speech: 0 (still) .. 1 (lively)", range=(0.0, 1.0),
                             step=0.05)
    smile: float = opt(0.0, "constant smile: 0 (neutral) .. 1 (broad)", range=(0.0, 1.0), step=0.05)
    brows: float = opt(0.5, "brow raise on emphasised syllables: 0 (none) .. 1 (strong)", range=(0.0, 1.0), step=0.05)
    gaze: float = opt(0.0, "small sideways eye movements: 0 (steady gaze) .. 1 (restless)", range=(0.0, 1.0),
                      step=0.05)
    seed: int = opt(0, "seed for blinks and other random motion; same seed, same frames", range=(0, 2**31 - 1))
    random_weights: bool = opt(False, "neural engines only: build the network with random weights instead of the "
                               "downloaded ones; the mouth is noise (for tests and speed measurements)",
                               label="Random network weights (output is noise: tests only)")

    def __post_init__(self) -> None:
        check_fields(self)


SOURCE_SIZE_CAP = 1920  # longest output side when RenderOptions.size is 0 and the photo is larger


@dataclass(frozen=True)
class ExportOptions:
    format: str = opt("mp4", "mp4 (H.264+AAC), webm (VP9+Opus), mov (ProRes+PCM), gif, png (frames+WAV), wav",
                      choices=_format_names)
    crf: int = opt(-1, "H.264 CRF 0..51 / VP9 CRF 0..63 (lower is better); -1 takes it from quality",
                   range=(0, 63), special={-1: "from the quality preset"})
    preset: Literal["auto", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = opt(
        "auto", "x264 speed/size; auto: veryfast, ultrafast for a presenter clip (fast enough for 720p)")
    quality: ExportQuality = opt("web", "encoder preset: web (small), social (re-upload master), "
                                 "archive (near lossless)")
    alpha: bool = opt(False, "keep transparency (formats with alpha only: webm, mov, png)")
    mov_audio: MovAudio = opt("pcm", "MOV audio track: PCM 16-bit (editors) or AAC (smaller)")
    subtitles: SubtitleMode = opt("none", "captions from the script: .srt/.vtt file beside the output, or burned in")

    def __post_init__(self) -> None:
        check_fields(self)
        if not (self.alpha or self.subtitles == "burn"):
            return  # nothing that depends on the format's facts (no writer import needed)
        from pipeline.export.formats import format_info

        info = format_info(self.format)
        if self.alpha and not info.supports_alpha:
            from pipeline.export.formats import alpha_formats

            raise InvalidOption(
                f"{self.format} cannot keep transparency; export as {', '.join(alpha_formats())} or turn alpha off."
            )
        if self.subtitles == "burn" and not info.has_video:
            raise InvalidOption(f"Subtitles cannot be burned into {info.label}; choose srt or vtt.")


_HEX = r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})"
_UNIT = {"range": (0.0, 1.0), "step": 0.05}


@dataclass(frozen=True)
class BackgroundOptions:
    mode: BackgroundMode = opt("keep", "behind the person: keep, blur, color, image, video or transparent")
    blur: float = opt(0.5, "background blur for mode blur: 0 (none) .. 1 (very strong)", **_UNIT)
    color: str = opt(DEFAULT_BACKGROUND_COLOR, "solid colour for mode color (also the bars of image fit), "
                     "as #rrggbb", pattern=_HEX, hint="a hex colour like #1a2b3c")
    image: str = opt("", "background image file for mode image")
    image_fit: Literal["fit", "fill", "stretch"] = opt("fill", "image/video background: fit (bars), fill (crop), "
                                                       "stretch")
    image_x: float = opt(0.5, "horizontal anchor of a cropped or barred image/video: 0 left .. 1 right", **_UNIT)
    image_y: float = opt(0.5, "vertical anchor of a cropped or barred image/video: 0 top .. 1 bottom", **_UNIT)
    video: str = opt("", "background video file for mode video (looped, matched to the output frame rate)")
    light_wrap: float = opt(0.3, "background light spilling over the person's edges: 0 (off) .. 1 (strong)", **_UNIT)
    color_match: float = opt(0.25, "pull the person's colours towards the new background: 0 (off) .. 1 (strong)",
                             **_UNIT)
    shadow: bool = opt(False, "soft drop shadow of the person on the background")
    framing: Literal["source", "portrait", "square", "landscape"] = opt(
        "source", "output shape: source, 9:16, 1:1 or 16:9")
    resolution: Literal["source", "720p", "1080p", "4k"] = opt(
        "source", "output short side; portrait 1080p is 1080x1920")
    person_x: float = opt(0.5, "where the person sits across the output: 0 left edge .. 1 right edge", **_UNIT)
    person_y: float = opt(1.0, "where the person sits vertically: 0 top .. 1 bottom (standing on the bottom edge)",
                          **_UNIT)
    person_scale: float = opt(1.0, "person size: 1 fits the whole source frame in the output, 2 is twice that",
                              range=(0.1, 5.0), step=0.05)
    matting: Literal["selfie", "rvm"] = opt(
        "selfie", "person matte of video frames: selfie (MediaPipe, bundled) or rvm (Robust Video Matting, "
        "GPL-3.0 weights: models pull rvm_mobilenetv3)", label="Matting")

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def composites(self) -> bool:
        """Whether the render needs the person matte and a compositor (anything but the plain photo)."""
        return self.mode != "keep" or self.framing != "source" or self.resolution != "source"
