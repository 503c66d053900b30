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
ExportFormat = Literal["mp4", "webm", "mov", "gif", "png", "wav"]
ExportQuality = Literal["web", "social", "archive"]
MovAudio = Literal["pcm", "aac"]
SubtitleMode = Literal["none", "srt", "vtt", "burn"]
ALPHA_FORMATS = ("webm", "mov", "png")  # export formats that can keep transparency


@dataclass(frozen=True)
class VoiceOptions:
    voice: str = "en_US-joe-medium"  # TTS voice: an id from presets/voices.toml, espeak:<language>, a Piper voice name or a .onnx path
    speed: float = 1.0  # speaking rate multiplier, 0.5 (slow) .. 2.0 (fast)
    max_chars: int = 20000  # longest text accepted for one render
    normalize: bool = True  # rewrite what engines misread before speaking: titles (Dr.), money ($5.50), numeric dates (3/14/2024)

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
    gaze: float = 0.0  # small sideways eye movements: 0 (steady gaze) .. 1 (restless)
    seed: int = 0  # seed for blinks and other random motion; same seed, same frames

    def __post_init__(self) -> None:
        _check_range(self, "fps", 1.0, 120.0)
        _check_range(self, "mouth_scale", 0.0, 3.0)
        _check_range(self, "head_motion", 0.0, 1.0)
        _check_range(self, "smile", 0.0, 1.0)
        _check_range(self, "brows", 0.0, 1.0)
        _check_range(self, "gaze", 0.0, 1.0)
        if self.size != 0 and not 64 <= self.size <= 4096:
            raise InvalidOption(f"size must be 0 (source size) or between 64 and 4096 pixels, not {self.size}.")


@dataclass(frozen=True)
class ExportOptions:
    format: ExportFormat = "mp4"  # mp4 (H.264+AAC), webm (VP9+Opus), mov (ProRes+PCM), gif, png (frames+WAV), wav
    crf: int = -1  # H.264 CRF 0..51 / VP9 CRF 0..63 (lower is better); -1 takes it from quality
    preset: Literal["ultrafast", "veryfast", "fast", "medium", "slow"] = "veryfast"  # x264 speed/size
    quality: ExportQuality = "web"  # encoder preset: web (small), social (re-upload master), archive (near lossless)
    alpha: bool = False  # keep transparency (webm, mov, png only)
    mov_audio: MovAudio = "pcm"  # MOV audio track: PCM 16-bit (editors) or AAC (smaller)
    subtitles: SubtitleMode = "none"  # captions from the script: .srt/.vtt file beside the output, or burned in

    def __post_init__(self) -> None:
        if self.crf != -1 and not (isinstance(self.crf, int) and 0 <= self.crf <= 63):
            raise InvalidOption(f"crf must be -1 (from the quality preset) or between 0 and 63, not {self.crf!r}.")
        if self.alpha and self.format not in ALPHA_FORMATS:
            raise InvalidOption(
                f"{self.format} cannot keep transparency; export as {', '.join(ALPHA_FORMATS)} or turn alpha off."
            )
        if self.subtitles == "burn" and self.format == "wav":
            raise InvalidOption("Subtitles cannot be burned into audio-only WAV; choose srt or vtt.")


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


BackgroundMode = Literal["keep", "blur", "color", "image", "video", "transparent"]
DEFAULT_BACKGROUND_COLOR = "#e8ebef"  # light studio grey


@dataclass(frozen=True)
class BackgroundOptions:
    mode: BackgroundMode = "keep"  # behind the person: keep, blur, color, image, video or transparent
    blur: float = 0.5  # background blur for mode blur: 0 (none) .. 1 (very strong)
    color: str = DEFAULT_BACKGROUND_COLOR  # solid colour for mode color (also the bars of image fit), as #rrggbb
    image: str = ""  # background image file for mode image
    image_fit: Literal["fit", "fill", "stretch"] = "fill"  # image/video background: fit (bars), fill (crop), stretch
    image_x: float = 0.5  # horizontal anchor of a cropped or barred image/video: 0 left .. 1 right
    image_y: float = 0.5  # vertical anchor of a cropped or barred image/video: 0 top .. 1 bottom
    video: str = ""  # background video file for mode video (looped, matched to the output frame rate)
    light_wrap: float = 0.3  # background light spilling over the person's edges: 0 (off) .. 1 (strong)
    color_match: float = 0.25  # pull the person's colours towards the new background: 0 (off) .. 1 (strong)
    shadow: bool = False  # soft drop shadow of the person on the background
    framing: Literal["source", "portrait", "square", "landscape"] = "source"  # output shape: source, 9:16, 1:1 or 16:9
    resolution: Literal["source", "720p", "1080p", "4k"] = "source"  # output short side; portrait 1080p is 1080x1920
    person_x: float = 0.5  # where the person sits across the output: 0 left edge .. 1 right edge
    person_y: float = 1.0  # where the person sits vertically: 0 top .. 1 bottom (standing on the bottom edge)
    person_scale: float = 1.0  # person size: 1 fits the whole source frame in the output, 2 is twice that

    def __post_init__(self) -> None:
        import re

        from pipeline.errors import InvalidOption

        for name, lo, hi in (
            ("blur", 0.0, 1.0),
            ("light_wrap", 0.0, 1.0),
            ("color_match", 0.0, 1.0),
            ("image_x", 0.0, 1.0),
            ("image_y", 0.0, 1.0),
            ("person_x", 0.0, 1.0),
            ("person_y", 0.0, 1.0),
            ("person_scale", 0.1, 5.0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise InvalidOption(f"{name} must be between {lo:g} and {hi:g}, not {value!r}.")
        if not re.fullmatch(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", str(self.color).strip()):
            raise InvalidOption(f"color must be a hex colour like #1a2b3c, not {self.color!r}.")
