"""The voice catalogue and the one text-to-speech entry point behind every engine.

Voices are listed in ``presets/voices.toml``: the bundled Piper voice, one espeak-ng voice
per language it speaks, and a few Piper voices that can be downloaded. Any voice can be
named by id in ``VoiceOptions.voice``:

- a catalogue id: ``en_US-joe-medium`` (bundled Piper), ``espeak:de``, ``espeak:pt-br``;
- ``espeak:<language tag>`` for any language espeak-ng has, listed or not;
- any Piper voice by name (``de_DE-thorsten-medium``): once :func:`download_piper_voice`
  has fetched it from Hugging Face into the model cache;
- a local Piper ``.onnx`` file (its ``.onnx.json`` config next to it).

:func:`synthesize` turns a script into one :class:`Speech`: pause marks become exact
silences, the text is normalised for the voice's language and cut into sentence chunks,
each chunk is one engine call, and the chunks' audio, phones and word times are joined
with running offsets. Engines are modules with ``synthesize_chunk(text, voice, speed, variation)
-> Chunk`` and ``sentence_gap(speed) -> seconds``, imported on first use.
"""

from __future__ import annotations

import bisect
import importlib
import json
import logging
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from pipeline.errors import ModelUnavailable
from pipeline.speech.base import Chunk, lead_part
from pipeline.options import VoiceOptions
from pipeline.types import AudioClip, Phoneme, Speech, Word
from pipeline.phones import PAUSE

log = logging.getLogger(__name__)

EngineName = Literal["piper", "espeak"]
ENGINES: dict[str, str] = {"piper": "pipeline.speech.piper_tts", "espeak": "pipeline.speech.espeak_tts"}
ESPEAK_PREFIX = "espeak:"
PIPER_REPO = "rhasspy/piper-voices"
MODELS_ENV = "AVATAR_STUDIO_MODELS"  # folder for downloaded models; default: the Hugging Face cache
_PIPER_NAME = re.compile(
    r"^(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<speaker>\w+?)-(?P<quality>x_low|low|medium|high)$"
)  # e.g. de_DE-thorsten-medium
FIND_VOICES = (
    "See the Voice tab's menus, pipeline.speech.voices.catalogue(), or name any espeak-ng "
    "language as 'espeak:<tag>' (e.g. espeak:de), a downloaded Piper voice, or a local .onnx file."
)


@dataclass(frozen=True)
class Voice:
    """One catalogue entry."""

    id: str  # what VoiceOptions.voice names: "en_US-joe-medium", "espeak:de", ...
    language: str  # BCP-47 tag, e.g. "en-US", "pt-BR", "zh-CN"
    language_name: str  # shown in the language menu, e.g. "English (America)"
    name: str  # shown in the voice menu, e.g. "Joe"
    engine: EngineName
    sample_rate: int  # Hz of the audio it makes
    source: str  # "bundled", "espeak", "hf:rhasspy/piper-voices/<path>.onnx", or a local .onnx path

    @property
    def installed(self) -> bool:
        """Usable offline now (bundled, espeak-ng, a local file or an already downloaded voice)."""
        if self.source.startswith("hf:"):
            return piper_files(self) is not None
        if self.source not in ("bundled", "espeak"):
            return Path(self.source).is_file()
        return True

    @property
    def engine_voice(self) -> str:
        """What the engine is given: the espeak-ng language tag, or the Piper voice id/path."""
        if self.engine == "espeak":
            return self.id[len(ESPEAK_PREFIX) :]
        return self.source if self.source.endswith(".onnx") and not self.source.startswith("hf:") else self.id

    @property
    def label(self) -> str:
        """How the voice menu shows it."""
        kind = "espeak-ng" if self.engine == "espeak" else "Piper neural"
        note = "" if self.installed else " · download first"
        return f"{self.name} · {kind}{note}"


# ---------------------------------------------------------------------------- catalogue


@lru_cache(maxsize=1)
def catalogue() -> tuple[Voice, ...]:
    """Every voice in ``presets/voices.toml`` (read on first use)."""
    from pipeline import presets

    out = []
    for vid, entry in presets.load("voices").items():
        try:
            out.append(Voice(id=vid, **entry))
        except TypeError as exc:
            raise ModelUnavailable(f"presets/voices.toml: entry {vid!r} is malformed ({exc}).") from exc
    return tuple(out)


def _by_id() -> dict[str, Voice]:
    return {v.id.lower(): v for v in catalogue()}


def languages() -> list[tuple[str, str]]:
    """(BCP-47 tag, name) of every language some voice speaks, sorted by name."""
    seen: dict[str, str] = {}
    for v in catalogue():
        seen.setdefault(v.language, v.language_name)
    return sorted(seen.items(), key=lambda kv: (kv[1].casefold(), kv[0]))


def _order(v: Voice) -> tuple[int, str]:
    if v.source == "bundled":
        return 0, v.name.casefold()
    if v.engine == "espeak":
        return 2, v.name.casefold()
    return (1 if v.installed else 3), v.name.casefold()


def voices_for(language: str) -> list[Voice]:
    """Voices for a language tag: exact matches, or every region of a bare language
    ("en" gives en-US, en-GB, ...). Offline-ready neural voices first, downloads last."""
    tag = (language or "").strip().lower()
    exact = [v for v in catalogue() if v.language.lower() == tag]
    found = exact or [v for v in catalogue() if v.language.lower().startswith(tag + "-")]
    return sorted(found, key=_order)


def resolve(voice_id: str) -> Voice:
    """The voice named ``voice_id`` (see the module notes), or ModelUnavailable."""
    vid = (voice_id or "").strip()
    hit = _by_id().get(vid.lower())
    if hit is not None:
        return hit
    if vid.lower().startswith(ESPEAK_PREFIX):
        tag = vid[len(ESPEAK_PREFIX) :].strip().lower()
        names = _espeak_languages()
        if tag in names:
            return Voice(ESPEAK_PREFIX + tag, _bcp47(tag), names[tag], names[tag], "espeak", 22050, "espeak")
        raise ModelUnavailable(f"espeak-ng has no language {tag!r}. {FIND_VOICES}")
    if vid.endswith(".onnx"):
        return _local_piper(Path(vid).expanduser())
    m = _PIPER_NAME.match(vid)
    if m:
        lang, region, speaker, quality = m.group("lang", "region", "speaker", "quality")
        rate = 16000 if quality in ("x_low", "low") else 22050
        path = f"{lang}/{lang}_{region}/{speaker}/{quality}/{vid}.onnx"
        return Voice(vid, f"{lang}-{region}", f"{lang}-{region}", speaker, "piper", rate, f"hf:{PIPER_REPO}/{path}")
    raise ModelUnavailable(f"Unknown voice {vid!r}. {FIND_VOICES}")


def _bcp47(tag: str) -> str:
    """espeak's lower-case tag as BCP-47 ("pt-br" -> "pt-BR", "en-gb-x-rp" -> "en-GB-x-rp")."""
    parts = tag.split("-")
    out = [parts[0]]
    private = False
    for p in parts[1:]:
        private = private or p == "x"
        out.append(p.upper() if len(p) == 2 and not private else p.capitalize() if len(p) == 4 and not private else p)
    return "-".join(out)


@lru_cache(maxsize=1)
def _espeak_languages() -> dict[str, str]:
    """Every language tag espeak-ng answers to -> the name of its voice."""
    from pipeline.speech import espeak_tts

    names: dict[str, str] = {}
    for v in espeak_tts.available_voices():
        for tag in v.languages:
            names.setdefault(tag.lower(), v.name)
    return names


def _local_piper(model: Path) -> Voice:
    cfg = model.with_name(model.name + ".json")
    if not model.is_file():
        raise ModelUnavailable(f"Piper voice file not found: {model}")
    if not cfg.is_file():
        raise ModelUnavailable(f"Piper voice config not found next to the model: {cfg}")
    config = json.loads(cfg.read_text(encoding="utf-8"))
    code = str((config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice") or "")
    rate = int((config.get("audio") or {}).get("sample_rate") or 22050)
    lang = code.replace("_", "-") or "und"
    return Voice(str(model), lang, lang, model.stem, "piper", rate, str(model))


# ---------------------------------------------------------------------------- Piper downloads


def models_dir() -> Path | None:
    """Where downloaded models go: $AVATAR_STUDIO_MODELS, else the Hugging Face cache (None)."""
    folder = os.environ.get(MODELS_ENV, "").strip()
    return Path(folder).expanduser() if folder else None


def _hf_parts(voice: Voice) -> tuple[str, str]:
    """(repo id, path of the .onnx in the repo) of a Hugging Face voice."""
    rest = voice.source[len("hf:") :]
    owner, name, path = rest.split("/", 2)
    return f"{owner}/{name}", path


def piper_files(voice: Voice | str) -> tuple[Path, Path] | None:
    """(model, config) of a downloaded Piper voice, found without the network; None if absent."""
    voice = resolve(voice) if isinstance(voice, str) else voice
    if not voice.source.startswith("hf:"):
        return None
    from huggingface_hub import try_to_load_from_cache

    repo, path = _hf_parts(voice)
    cache = models_dir()
    found = []
    for filename in (path, path + ".json"):
        hit = try_to_load_from_cache(repo, filename, cache_dir=str(cache) if cache else None)
        if not isinstance(hit, str):
            return None
        found.append(Path(hit))
    return found[0], found[1]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_piper_voice(name: str) -> tuple[Path, Path]:
    """Fetch a Piper voice (model and config) from Hugging Face into the model cache, if
    it is not there yet; returns their paths. Only runs when called: nothing else in the
    studio downloads. Offline (``HF_HUB_OFFLINE`` set) it raises ModelUnavailable."""
    voice = resolve(name)
    if voice.engine != "piper" or not voice.source.startswith("hf:"):
        raise ModelUnavailable(f"{voice.id!r} is not a downloadable Piper voice (its source is {voice.source}).")
    have = piper_files(voice)
    if have is not None:
        return have
    if _offline():
        raise ModelUnavailable(
            f"Piper voice {voice.id} is not downloaded and HF_HUB_OFFLINE is set: go online (unset "
            "HF_HUB_OFFLINE) to download it, or use an espeak-ng voice or a local .onnx file."
        )
    from huggingface_hub import hf_hub_download

    repo, path = _hf_parts(voice)
    cache = models_dir()
    try:
        model = hf_hub_download(repo, path, cache_dir=str(cache) if cache else None)
        config = hf_hub_download(repo, path + ".json", cache_dir=str(cache) if cache else None)
    except Exception as exc:  # network, missing file, disk: all end as "not available"
        raise ModelUnavailable(f"Could not download Piper voice {voice.id} from {repo}: {exc}") from exc
    log.info("downloaded Piper voice %s to %s", voice.id, Path(model).parent)
    return Path(model), Path(config)


# ---------------------------------------------------------------------------- synthesis


def engine(name: str):
    """The engine module for ``name`` (imported on first use)."""
    if name not in ENGINES:
        raise ModelUnavailable(f"Unknown TTS engine {name!r}; known: {', '.join(ENGINES)}.")
    return importlib.import_module(ENGINES[name])


def synthesize(text: str, opts: VoiceOptions = VoiceOptions()) -> Speech:
    """Speak a script with the voice ``opts.voice``, whatever its engine.

    Pause marks (``[pause 500ms]``, ``[pause 1.2s]``, ``[pause]``; see
    :func:`pipeline.speech.text.parse_script`) become exact silences with a pause phone.
    Long scripts are spoken sentence chunk by sentence chunk (at most
    ``text.CHUNK_CHARS`` characters per engine call), so memory stays bounded; chunks
    are joined with the engine's own sentence pause and all times offset to match.
    """
    from pipeline.speech import text as txt

    voice = resolve(opts.voice)
    eng = engine(voice.engine)
    script = txt.parse_script(text, opts.max_chars)
    parts: list[Chunk | float] = []  # chunks, and pauses in seconds
    marks: list[tuple[int, int, float]] = []  # (part index, character index in Script.text, time in the chunk)
    for piece in script.pieces:
        if piece.pause:
            parts.append(piece.pause)
            continue
        said, origin = txt.normalize(piece.text, voice.language) if opts.normalize else (piece.text, None)
        first = None if any(isinstance(p, Chunk) for p in parts) else txt.FIRST_CHUNK_CHARS
        for a, b in txt.chunk_spans(said, first=first):
            if parts and isinstance(parts[-1], Chunk):
                parts.append(eng.sentence_gap(opts.speed))
            chunk = eng.synthesize_chunk(said[a:b], voice.engine_voice, opts.speed, opts.variation)
            for i, t in chunk.words:
                k = a + i
                pos = origin[min(k, len(origin) - 1)] if origin is not None else min(k, len(piece.text))
                marks.append((len(parts), piece.offset + pos, t))
            parts.append(chunk)
    return _join(script.text, parts, marks, voice)


def synthesize_parts(text: str, opts: VoiceOptions = VoiceOptions()) -> Iterator[Speech]:
    """The script of :func:`synthesize` as it is spoken, engine chunk by engine chunk: each
    part is the silence before its chunk (pause marks, the engine's sentence pause) and the
    chunk, times from the part's start, so the parts joined are the script as
    :func:`synthesize` says it (the same chunks and pauses; no word times: subtitles need
    :func:`synthesize`). The script is checked before the first chunk is spoken."""
    from pipeline.speech import text as txt
    voice = resolve(opts.voice)
    eng = engine(voice.engine)
    script = txt.parse_script(text, opts.max_chars)

    def parts() -> Iterator[Speech]:
        lead, rate, after_chunk = 0.0, 0, False
        for piece in script.pieces:
            if piece.pause:
                lead, after_chunk = lead + piece.pause, False
                continue
            said, _ = txt.normalize(piece.text, voice.language) if opts.normalize else (piece.text, None)
            for a, b in txt.chunk_spans(said, first=None if rate else txt.FIRST_CHUNK_CHARS):
                if after_chunk:
                    lead += eng.sentence_gap(opts.speed)
                chunk = eng.synthesize_chunk(said[a:b], voice.engine_voice, opts.speed, opts.variation)
                if rate and chunk.rate != rate:
                    raise ModelUnavailable(f"Voice {voice.id} returned audio at several sample rates.")
                rate = chunk.rate
                yield lead_part(chunk.audio, rate, chunk.phonemes, lead, said[a:b], voice.engine, voice.language)
                lead, after_chunk = 0.0, True
        if lead > 0 and rate:  # a pause mark at the very end
            yield lead_part(np.zeros(0, np.float32), rate, (), lead, "", voice.engine, voice.language)

    return parts()


def _join(text: str, parts: list, marks: list[tuple[int, int, float]], voice: Voice) -> Speech:
    """One Speech from chunks and pauses, times offset by what came before."""
    chunks = [p for p in parts if isinstance(p, Chunk)]
    rate = chunks[0].rate
    if any(c.rate != rate for c in chunks):
        raise ModelUnavailable(f"Voice {voice.id} returned audio at several sample rates.")
    timed = all(c.phonemes is not None for c in chunks)
    n = sum(len(c.audio) if isinstance(c, Chunk) else int(round(c * rate)) for c in parts)
    audio = np.zeros(n, np.float32)
    phones: list[Phoneme] = []
    starts: list[float] = []  # start time of each part
    at = 0
    for part in parts:
        t0 = at / rate
        starts.append(t0)
        if isinstance(part, Chunk):
            audio[at : at + len(part.audio)] = part.audio
            at += len(part.audio)
            if timed:
                phones.extend(replace(p, start=p.start + t0, end=p.end + t0) for p in part.phonemes or ())
        else:
            at += int(round(part * rate))
            if timed:
                phones.append(Phoneme(PAUSE, t0, at / rate))
    phones = _merge_pauses(phones, at / rate)
    words: tuple[Word, ...] = ()
    if timed and marks:
        words, phones = _words(text, [(pos, starts[k] + t) for k, pos, t in marks], phones)
    return Speech(
        audio=AudioClip(audio, rate),
        phonemes=tuple(phones) if timed else None,
        words=words,
        text=text,
        source=voice.engine,
        language=voice.language,
    )


def _merge_pauses(phones: list[Phoneme], end: float) -> list[Phoneme]:
    """Adjacent pauses as one, no gaps or overlaps, the last phone ending with the audio."""
    out: list[Phoneme] = []
    for p in phones:
        if out and p.start < out[-1].end:  # rounding at a join
            p = replace(p, start=out[-1].end)
        if p.end <= p.start:
            continue
        if out and p.symbol == PAUSE and out[-1].symbol == PAUSE:
            out[-1] = replace(out[-1], end=p.end)
        else:
            out.append(p)
    if out and abs(out[-1].end - end) > 1e-9:
        out[-1] = replace(out[-1], end=end)
    return out


def _words(
    text: str, marks: list[tuple[int, float]], phones: list[Phoneme]
) -> tuple[tuple[Word, ...], list[Phoneme]]:
    """Script words timed from the engine's word marks; each phone gets its word index.

    A word starts where its first spoken phone starts (at or after the mark) and ends
    where its last non-pause phone ends; marks that fall in one script word (an amount
    said as several words) are one word.
    """
    tokens = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"\S+", text)]
    starts_at = [a for a, _, _ in tokens]
    first: dict[int, float] = {}
    for pos, t in marks:
        k = bisect.bisect_right(starts_at, pos) - 1
        if k >= 0 and k not in first:
            first[k] = t
    order = sorted(first, key=lambda k: first[k])
    phone_starts = [p.start for p in phones]
    spans: list[tuple[int, float]] = []
    for k in order:  # move each start onto the first spoken phone at or after the mark
        i = bisect.bisect_left(phone_starts, first[k] - 1e-6)
        while i < len(phones) and phones[i].symbol == PAUSE:
            i += 1
        if i < len(phones):
            spans.append((k, phones[i].start))
    merged: list[tuple[int, float]] = []
    for k, start in spans:  # two script words on one spoken start (rare): one word
        if merged and start <= merged[-1][1] + 1e-9:
            continue
        merged.append((k, start))
    spans = merged
    words: list[Word] = []
    out = list(phones)
    for w, (k, start) in enumerate(spans):
        limit = spans[w + 1][1] if w + 1 < len(spans) else float("inf")
        end = start
        for i in range(bisect.bisect_left(phone_starts, start - 1e-6), len(out)):
            p = out[i]
            if p.start >= limit - 1e-9:
                break
            if p.symbol != PAUSE:
                out[i] = replace(p, word=len(words))
                end = p.end
        words.append(Word(tokens[k][2], start, end))
    return tuple(words), out
