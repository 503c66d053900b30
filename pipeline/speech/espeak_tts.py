"""espeak-ng speech for 100+ languages, with phoneme times from the synthesizer itself.

libespeak-ng and its data come from the ``espeakng-loader`` wheel and are driven through
ctypes in synchronous mode: ``espeak_Synth`` returns once the text is spoken, and the
synth callback has been handed every PCM buffer together with its events. Phoneme
events (IPA names, enabled at initialisation) and word events carry the sample position
where they start, so phoneme and word times are exact to the sample rather than estimated.

The library keeps global state (one voice, one callback, one output buffer), so it is a
single model-cache entry and every synthesis holds that entry's lock. piper-tts bundles
its own statically linked espeak-ng for phonemizing; both copies live side by side
(each library is loaded with local symbols), and this one never touches Piper's.

espeak-ng carries a little waveform state (the pitch-period phase) from one call to the
next, so the same text spoken twice can differ by a few samples; the phones are the same,
and ``pipeline.synthesize`` keeps recent results so a re-render is identical.
"""

from __future__ import annotations

import ctypes
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import models
from pipeline.errors import ModelUnavailable
from pipeline.speech.base import Chunk
from pipeline.types import Phoneme
from pipeline.phones import PAUSE, canonical, is_vowel

log = logging.getLogger(__name__)

DEFAULT_WPM = 175  # espeak-ng's own default rate, words per minute (speed 1.0)
MIN_WPM, MAX_WPM = 80, 450  # the rates espeak-ng accepts

# espeak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position in the text
        ("length", ctypes.c_int),  # word length in characters
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample position in the output
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # (priority byte, language string)* pairs
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class EspeakVoice:
    """A language voice in the espeak-ng data."""

    name: str  # e.g. "English (America)"
    languages: tuple[str, ...]  # language tags it answers to, its own first, e.g. ("en-us", "en")
    identifier: str  # path inside espeak-ng-data/voices or lang, e.g. "gmw/en-US"


@dataclass(frozen=True)
class Event:
    kind: str  # "phoneme" or "word"
    sample: int  # where it starts in the output
    name: str = ""  # phoneme: IPA name, "" for a pause
    position: int = -1  # word: 0-based character index in the text
    length: int = 0  # word: length in characters


class Library:
    """libespeak-ng, initialised once for synchronous synthesis with IPA phoneme events."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
            lib = ctypes.CDLL(lib_path)  # RTLD_LOCAL: its symbols stay apart from Piper's copy
        except (ImportError, OSError, RuntimeError) as exc:
            raise ModelUnavailable(f"espeak-ng is not available ({exc}); install espeakng-loader.") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
        if rate <= 0:
            raise ModelUnavailable(f"espeak-ng failed to start (error {rate}) with the data in {data_path}.")
        self.lib = lib
        self.rate = int(rate)
        self.data_path = Path(data_path)
        self._pcm: list[np.ndarray] = []
        self._events: list[Event] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice = ""

    def _collect(self, wav, n: int, events) -> int:  # called by espeak_Synth, in its thread
        if n > 0 and wav:
            self._pcm.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = ev.id.string.decode("utf-8", "ignore")  # up to 8 bytes, NUL-terminated when shorter
                self._events.append(Event("phoneme", int(ev.sample), name=name))
            elif ev.type == _EVENT_WORD:
                self._events.append(Event("word", int(ev.sample), position=ev.text_position - 1, length=ev.length))
            i += 1
        return 0  # 0: go on

    def speak(self, text: str, voice: str, wpm: int) -> tuple[np.ndarray, list[Event]]:
        """(int16 PCM at ``self.rate``, events) for ``text``. Hold the cache entry's lock."""
        if voice != self._voice:
            spec = _Voice(languages=voice.lower().encode())  # the best voice for this language tag
            if self.lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) != 0:
                self._voice = ""
                raise ModelUnavailable(
                    f"espeak-ng has no voice for {voice!r}; pipeline.speech.voices.languages() lists the languages."
                )
            self._voice = voice
        self.lib.espeak_SetParameter(_RATE, int(wpm), 0)
        self._pcm, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        pcm, events = self._pcm, self._events
        self._pcm, self._events = [], []
        if err != 0:
            raise ModelUnavailable(f"espeak-ng could not speak the text (error {err}).")
        samples = np.concatenate(pcm) if pcm else np.zeros(0, np.int16)
        return samples, events


def library() -> models.Entry:
    """The process-wide espeak-ng library (model-cache entry; hold its lock to use it)."""
    return models.get("espeak-ng", Library)


def data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def available_voices() -> list[EspeakVoice]:
    """The language voices in the espeak-ng data (read from its ``lang`` files; the
    library's own voice list has no reliable end marker for its language tags)."""
    root = data_path() / "lang"
    out: list[EspeakVoice] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name, langs = path.name, []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, rest = line.strip().partition(" ")
            if key == "name" and rest.strip():
                name = rest.strip()
            elif key == "language" and rest.split():
                parts = rest.split()
                langs.append((int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 5, parts[0]))
        if langs:
            ordered = tuple(tag for _, tag in sorted(langs, key=lambda x: x[0]))
            out.append(EspeakVoice(name, (langs[0][1], *[t for t in ordered if t != langs[0][1]]),
                                   str(path.relative_to(root))))  # fmt: skip
    return out


# ---------------------------------------------------------------------------- phonemes

_STRESS = {"ˈ": 1, "ˌ": 2}
_LENGTH = {"ː": 1.0, "ˑ": 0.5}


def _symbol(letters: str) -> str:
    """Canonical IPA of a letter with its marks: a precomposed letter as such (ç, ã), else
    the base letter (ɐ̃ -> ɐ, tʲ -> t, ɯᵝ -> u), which is what the mouth shows."""
    composed = unicodedata.normalize("NFC", letters)
    return canonical(composed if len(composed) == 1 else letters[0])


def split_phoneme(name: str) -> list[tuple[str, int, float]]:
    """espeak's IPA name of one phoneme (e.g. ``ˈaɪ``, ``ɔːɹ``, ``tʲ``) as canonical phones.

    Returns (symbol, stress, weight) per phone: a diphthong or an r-coloured vowel becomes
    two phones, as does an affricate (as Piper's tokens do); a length mark adds to the
    weight of its phone; combining marks and modifier letters (``̃``, ``ʲ``, ``ʰ``) stay
    with their letter; a stress mark goes to the first vowel.
    """
    parts: list[list] = []  # [letters, weight]
    stress = 0
    for ch in unicodedata.normalize("NFD", name):
        if ch in _STRESS:
            stress = _STRESS[ch]
        elif ch in _LENGTH:
            if parts:
                parts[-1][1] += _LENGTH[ch]
        elif ch in ("\u0361", "\u035c") or unicodedata.category(ch)[0] in "PZC":
            continue  # tie bars (an affricate is two phones, as Piper gives them) and boundary marks
        elif parts and unicodedata.category(ch) in ("Mn", "Lm", "Sk"):
            parts[-1][0] += ch
        elif ch.strip():
            parts.append([ch, 1.0])
    out = [(_symbol(letters), 0, weight) for letters, weight in parts]
    if stress and out:
        k = next((i for i, (sym, _, _) in enumerate(out) if is_vowel(sym)), 0)
        out[k] = (out[k][0], stress, out[k][2])
    return out


def phones_from_events(events: list[Event], n_samples: int, rate: int) -> list[Phoneme]:
    """Timed canonical phones from phoneme events; silence before the first one is a pause."""
    marks = [(e.sample, e.name) for e in events if e.kind == "phoneme"]
    phones: list[Phoneme] = []

    def add(sym: str, a: int, b: int, stress: int = 0) -> None:
        if b <= a:
            return
        if sym == PAUSE and phones and phones[-1].symbol == PAUSE:
            last = phones[-1]
            phones[-1] = Phoneme(PAUSE, last.start, b / rate)
            return
        phones.append(Phoneme(sym, a / rate, b / rate, stress))

    if not marks:
        add(PAUSE, 0, n_samples)
        return phones
    add(PAUSE, 0, min(marks[0][0], n_samples))
    for i, (start, name) in enumerate(marks):
        start = min(max(start, 0), n_samples)
        end = min(marks[i + 1][0] if i + 1 < len(marks) else n_samples, n_samples)
        parts = split_phoneme(name) if name.strip() else []
        if not parts:
            add(PAUSE, start, end)
            continue
        total = sum(w for _, _, w in parts)
        a = start
        acc = 0.0
        for sym, stress, w in parts:
            acc += w
            b = start + int(round((end - start) * acc / total))
            add(sym, a, b, stress)
            a = b
    if phones and phones[-1].end * rate < n_samples - 0.5:
        add(PAUSE, int(round(phones[-1].end * rate)), n_samples)
    return phones


# ---------------------------------------------------------------------------- synthesis


def wpm_for(speed: float) -> int:
    """espeak-ng's rate (words per minute) for a speed multiplier, within what it accepts."""
    return int(min(MAX_WPM, max(MIN_WPM, round(DEFAULT_WPM * speed))))


def sentence_gap(speed: float = 1.0) -> float:
    """Seconds of silence between two chunks: what espeak-ng itself leaves between two
    sentences at this rate (measured: 0.31 s at 175 wpm, 0.72 s at 100, 0.09 s at 300)."""
    return round(0.31 * (DEFAULT_WPM / wpm_for(speed)) ** 1.6, 3)


def synthesize_chunk(text: str, voice: str, speed: float = 1.0, variation: float = 1.0):
    """One chunk of text spoken by espeak-ng voice ``voice`` (a language code such as
    ``de`` or ``pt-br``): a :class:`pipeline.speech.base.Chunk` with float32 audio,
    phones and word marks (character index in ``text``, start time). espeak-ng is
    deterministic: ``variation`` changes nothing."""
    entry = library()
    lib: Library = entry.model
    with entry.lock:
        pcm, events = lib.speak(text, voice, wpm_for(speed))
    rate = lib.rate
    audio = pcm.astype(np.float32) / 32768.0
    phones = phones_from_events(events, len(audio), rate)
    words = [(e.position, e.sample / rate) for e in events if e.kind == "word" and e.position >= 0]
    return Chunk(audio, rate, tuple(phones), tuple(words))
