"""A multipart render form -> a validated :class:`~pipeline.request.RenderRequest`.

Form fields: ``avatar`` (file), ``text`` or ``audio`` (file), ``transcript``, ``voice``,
``language``, ``name``, ``webhook_url``, ``background`` (file, for bg_mode image/video) and
``options``: a JSON object of option names as on the command line (``fps``, ``size``,
``bg_mode``, ``format``, ``timing``, ``expression``, ...; ``--bg-mode`` and ``bg-mode`` are
read as ``bg_mode``). Every value is checked with the option's own rules; unknown names,
wrong types and out-of-range values are refused with the option named. Server-side paths
(``bg_image``, ``bg_video``) and URLs are not accepted: files come as uploads.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData, UploadFile

from pipeline.api.errors import ApiError
from pipeline.api.settings import ApiSettings
from pipeline.api.uploads import probe_audio, probe_visual, save_upload
from pipeline.errors import InvalidOption, InvalidText, ModelUnavailable
from pipeline.options import BackgroundOptions, ExportOptions, OptionSpec, RenderOptions, VoiceOptions, specs
from pipeline.request import TIMING_MODES, FaceSource, RenderRequest, VoiceSource

FILE_FIELDS = ("avatar", "audio", "background")
TEXT_FIELDS = ("text", "transcript", "voice", "language", "name", "webhook_url", "options")
_GROUPS: tuple[tuple[str, type, str], ...] = (
    ("render", RenderOptions, ""), ("voice", VoiceOptions, ""), ("export", ExportOptions, ""),
    ("background", BackgroundOptions, "bg_"),
)
SERVER_ONLY = {"max_chars": "the text limit is the server's (--max-text-chars)",
               "bg_image": "upload the image as the 'background' file",
               "bg_video": "upload the video as the 'background' file"}
_NAME = re.compile(r"[\w][\w .()+,=@-]{0,99}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def option_table() -> dict[str, tuple[str, OptionSpec]]:
    """CLI option name -> (request group, spec), for every option a render form may set."""
    table: dict[str, tuple[str, OptionSpec]] = {}
    for group, cls, prefix in _GROUPS:
        for s in specs(cls):
            table[prefix + s.name] = (group, s)
    table["timing"] = ("source", next(s for s in specs(VoiceSource) if s.name == "timing"))
    table["multi_face"] = ("face", next(s for s in specs(FaceSource) if s.name == "multi_face"))
    return table


def option_names() -> list[str]:
    return sorted({*option_table(), "expression"} - set(SERVER_ONLY))


@dataclass
class RenderForm:
    request: RenderRequest
    name: str
    webhook_url: str | None


def _text(form: FormData, field: str, limit: int = 10_000) -> str:
    values = form.getlist(field)
    if not values:
        return ""
    if len(values) > 1:
        raise ApiError(400, "bad_request", f"The field '{field}' was sent {len(values)} times; send it once.")
    value = values[0]
    if isinstance(value, UploadFile):
        raise ApiError(400, "bad_request", f"'{field}' must be a text field, not a file upload.")
    if len(value) > limit:
        raise InvalidOption(f"'{field}' is {len(value)} characters long; at most {limit} are accepted.")
    return value.strip()


def _file(form: FormData, field: str) -> UploadFile | None:
    values = form.getlist(field)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "bad_request", f"The file '{field}' was sent {len(values)} times; send one.")
    value = values[0]
    if isinstance(value, UploadFile):
        return value
    if _URL.match(value.strip()):
        raise ApiError(400, "url_inputs_off",
                       f"Inputs given as URLs are off on this server: upload '{field}' as a file "
                       f"(curl -F {field}=@file).")
    if not value.strip():
        return None
    raise ApiError(400, "bad_request", f"'{field}' must be a file upload (curl -F {field}=@file), not a text value.")


def parse_options(raw: str) -> dict[str, Any]:
    """The ``options`` JSON object with names normalised (``--bg-mode`` -> ``bg_mode``)."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_option", f"'options' is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise InvalidOption(f"'options' must be a JSON object of option names and values, not {type(data).__name__}.")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key.strip().lstrip("-").replace("-", "_").lower()
        if name in out:
            raise InvalidOption(f"options: '{key}' is given twice.")
        out[name] = value
    return out


def _coerce(name: str, s: OptionSpec, value: Any) -> Any:
    if value is None or isinstance(value, (list, dict)):
        raise InvalidOption(f"options.{name} must be a single {s.kind.__name__} value, not {json.dumps(value)}.")
    if s.kind is int and isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        return int(value)
    if s.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _groups(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    table = option_table()
    groups: dict[str, dict[str, Any]] = {g: {} for g in ("render", "voice", "export", "background", "source", "face")}
    for name, value in options.items():
        if name in SERVER_ONLY:
            raise InvalidOption(f"options.{name} cannot be set in a request: {SERVER_ONLY[name]}.")
        if name == "expression":
            continue
        if name not in table:
            raise InvalidOption(f"Unknown option '{name}'. Known options: {', '.join(option_names())}.")
        group, s = table[name]
        groups[group][s.name] = _coerce(name, s, value)
    return groups


def _build(cls: type, base: Any, values: dict[str, Any], prefix: str = "") -> Any:
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except InvalidOption as exc:
        raise InvalidOption(f"options: {prefix}{exc.message}" if prefix else f"options: {exc.message}") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidOption(f"options: {exc}.") from exc


def _voice(name: str, language: str, text: str) -> str:
    """The TTS voice id: the one named, else the best installed voice of ``language``."""
    from pipeline.speech import voices

    if not isinstance(name, str):
        raise InvalidOption(f"The voice must be a voice id (text), not {json.dumps(name)}.")
    if "/" in name or "\\" in name or name.lower().endswith(".onnx"):
        raise InvalidOption(f"The voice {name[:80]!r} looks like a file path; name a voice by its id "
                            "(GET /api/v1/voices).")
    if name:
        voice = voices.resolve(name)  # ModelUnavailable for an unknown id
        if not voice.installed:
            raise ModelUnavailable(f"The voice {name!r} is not installed on this server (download it in the "
                                   "studio's Voice tab, or pick one from GET /api/v1/voices).")
        return voice.id
    if text and language:
        found = [v for v in voices.voices_for(language) if v.installed]
        if not found:
            raise ModelUnavailable(f"No installed voice speaks {language!r}; see GET /api/v1/voices.")
        return found[0].id
    return VoiceOptions().voice


def check_name(name: str) -> str:
    if name and (not _NAME.fullmatch(name) or ".." in name):
        raise InvalidOption(f"'name' ({name[:60]!r}) must be a plain file name stem: letters, digits, spaces and "
                            "- _ . ( ) + , = @, at most 100 characters, no folders and no '..'.")
    return name


def check_webhook(url: str) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048 or re.search(r"\s", url):
        raise InvalidOption(f"'webhook_url' must be an http:// or https:// URL, not {url[:80]!r}.")
    return url


def render_form(form: FormData, folder: Path, settings: ApiSettings) -> RenderForm:
    """Check every field of ``form``, save its files into ``folder`` and build the request."""
    unknown = sorted(set(form.keys()) - set(FILE_FIELDS) - set(TEXT_FIELDS))
    if unknown:
        raise ApiError(400, "bad_request", f"Unknown form field(s): {', '.join(unknown)}. "
                       f"Known: {', '.join(FILE_FIELDS + TEXT_FIELDS)}.")
    text = _text(form, "text", limit=max(settings.max_text_chars, 1) * 4)
    transcript = _text(form, "transcript", limit=max(settings.max_text_chars, 1) * 4)
    if _CONTROL.search(text) or _CONTROL.search(transcript):
        raise InvalidText("The text or transcript contains control characters (such as NUL); send plain text.")
    if len(text) > settings.max_text_chars:
        raise InvalidText(f"The text is {len(text)} characters long; this server accepts at most "
                          f"{settings.max_text_chars} per render.")
    language = _text(form, "language", 40)
    if language and not _LANGUAGE.fullmatch(language):
        raise InvalidOption(f"'language' must be a language tag like en, de or pt-BR, not {language!r}.")
    name = check_name(_text(form, "name", 200))
    webhook = check_webhook(_text(form, "webhook_url", 4096))
    options = parse_options(_text(form, "options", 100_000))
    groups = _groups(options)
    form_voice = _text(form, "voice", 300)
    if form_voice and "voice" in groups["voice"] and groups["voice"]["voice"] != form_voice:
        raise InvalidOption("The voice is given twice ('voice' field and options.voice) with different values.")

    uploads = {f: _file(form, f) for f in FILE_FIELDS}
    paths = {f: save_upload(u, folder, f) for f, u in uploads.items() if u is not None}
    if "avatar" in paths:
        probe_visual(paths["avatar"], "avatar")
    if "audio" in paths:
        if text:
            raise InvalidText("Give either 'text' or an 'audio' recording, not both.")
        probe_audio(paths["audio"])
    elif not text:
        raise InvalidText("Give the avatar something to say: a 'text' field or an 'audio' file.")
    background = groups["background"]
    if "background" in paths:
        kind = probe_visual(paths["background"], "background")
        mode = background.setdefault("mode", kind)
        if mode != kind:
            raise InvalidOption(f"The background upload is a{'n' if kind == 'image' else ''} {kind}, "
                                f"but bg_mode is {mode!r}.")
        background[kind] = str(paths["background"])
    elif background.get("mode") in ("image", "video"):
        raise InvalidOption(f"bg_mode {background['mode']} needs the {background['mode']} as the 'background' upload.")

    voice_opts = groups["voice"]
    voice_opts["voice"] = _voice(form_voice or voice_opts.get("voice", ""), language, text)
    voice_opts["max_chars"] = settings.max_text_chars
    render_base = None
    if "expression" in options:
        from pipeline import presets

        if not isinstance(options["expression"], str):
            raise InvalidOption("options.expression must be the name of an expression preset.")
        render_base = presets.apply(RenderOptions(), "expressions", options["expression"])
    source = groups["source"]
    if "timing" in source and source["timing"] not in TIMING_MODES:
        raise InvalidOption(f"options.timing must be one of {', '.join(TIMING_MODES)}, not {source['timing']!r}.")
    request = RenderRequest(
        face=_build(FaceSource, None, {"path": str(paths.get("avatar", "")), **groups["face"]}),
        voice=VoiceSource(
            text=text, audio=str(paths.get("audio", "")), voice=_build(VoiceOptions, None, voice_opts),
            transcript=transcript, language=language or "en", **_build_source(source),
        ),
        render=_build(RenderOptions, render_base, groups["render"]),
        background=_build(BackgroundOptions, None, background, "bg_"),
        export=_build(ExportOptions, None, groups["export"]),
    )
    return RenderForm(request.validate(), name, webhook)


def _build_source(source: dict[str, Any]) -> dict[str, Any]:
    return {"timing": source["timing"]} if "timing" in source else {}
