"""Text handling shared by the TTS engines: checks, pause marks, chunks, normalisation.

- :func:`clean_text`: Unicode/whitespace clean-up, empty and too-long texts refused.
- :func:`parse_script`: a script with pause marks -> what is said plus timed pauses.
- :func:`chunk_spans`: long text -> sentence-aligned pieces, each synthesised on its own
  so memory stays bounded however long the script is.
- :func:`normalize`: a light pre-normalisation for what the engines read wrongly
  (titles that would end a sentence, currency amounts, numeric dates), with a map from
  every output character back to the input so word times point at the script's words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from pipeline.errors import InvalidText

MAX_PAUSE_S = 10.0  # longest pause one mark may ask for
DEFAULT_PAUSE_S = 0.5  # a bare [pause]
CHUNK_CHARS = 400  # longest piece of text given to an engine in one call
FIRST_CHUNK_CHARS = 100  # a script's first call holds no more than its first sentence(s) up to this


def clean_text(text: str, max_chars: int) -> str:
    """Normalised text, or InvalidText when it is empty or too long."""
    if text is None:
        raise InvalidText("Type some text for the avatar to say.")
    text = unicodedata.normalize("NFC", str(text))
    text = re.sub(r"[\u0000-\u0008\u000b-\u001f\u007f]", " ", text)
    text = re.sub(r"[ \t]+", " ", text).strip()
    if not text or not re.search(r"\w", text):
        raise InvalidText("The text is empty. Type what the avatar should say.")
    if len(text) > max_chars:
        raise InvalidText(
            f"The text is {len(text):,} characters long; the limit is {max_chars:,}. "
            "Split it into several renders or use batch mode."
        )
    return text


# ---------------------------------------------------------------------------- pauses

# [pause 500ms] [pause 1.2s] [pause 2] [pause] and SSML's <break time="500ms"/>
_PAUSE_MARK = re.compile(
    r"\[\s*pause\b(?P<arg>[^\]]*)\]|<\s*break\b(?P<ssml>[^>]*)/?\s*>",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^\s*(?:time\s*=\s*)?[\"']?\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|sec|seconds?)?\s*[\"']?\s*$", re.I)

PAUSE_HELP = (
    "Pauses: write [pause 500ms], [pause 1.2s] or just [pause] (half a second) where the "
    'voice should stop; SSML\'s <break time="500ms"/> works too. At most 10 s each.'
)


@dataclass(frozen=True)
class Piece:
    """A stretch of the script: text to say, or a pause."""

    text: str  # what to say; "" for a pause
    offset: int  # where ``text`` starts in Script.text
    pause: float = 0.0  # seconds of silence (pause pieces only)


@dataclass(frozen=True)
class Script:
    text: str  # the script as spoken: pause marks taken out (what subtitles show)
    pieces: tuple[Piece, ...]


def _pause_seconds(mark: str, arg: str) -> float:
    arg = arg.strip()
    if not arg:
        return DEFAULT_PAUSE_S
    m = _DURATION.match(arg)
    if not m:
        raise InvalidText(
            f"{mark!r} is not a pause mark this studio reads. {PAUSE_HELP}"
        )
    value = float(m.group(1))
    unit = (m.group(2) or "s").lower()
    seconds = value / 1000.0 if unit == "ms" else value
    if not 0 <= seconds <= MAX_PAUSE_S:
        raise InvalidText(f"{mark!r} asks for {seconds:g} s; a pause can be at most {MAX_PAUSE_S:g} s.")
    return seconds


def parse_script(text: str, max_chars: int) -> Script:
    """Split a script at its pause marks.

    Pause syntax: ``[pause 500ms]``, ``[pause 1.2s]``, ``[pause 2]`` (seconds) or a bare
    ``[pause]`` (0.5 s), case-insensitive; SSML's ``<break time="500ms"/>`` is read the
    same way. Each mark becomes exactly that much silence (at most 10 s), timed as a
    pause phone; the text around it is spoken as separate sentences.
    """
    text = clean_text(text, max_chars)
    pieces: list[Piece] = []
    spoken: list[str] = []
    at = 0  # length of the spoken text so far

    def say(part: str) -> None:
        nonlocal at
        part = part.strip()
        if not part or not re.search(r"\w", part):
            return
        if spoken:
            spoken.append(" ")
            at += 1
        pieces.append(Piece(part, at))
        spoken.append(part)
        at += len(part)

    pos = 0
    for m in _PAUSE_MARK.finditer(text):
        say(text[pos : m.start()])
        arg = m.group("arg") if m.group("arg") is not None else m.group("ssml") or ""
        if m.group("ssml") is not None:
            t = re.search(r"time\s*=\s*[\"']?([^\"'\s/>]+)", arg, re.I)
            arg = t.group(1) if t else ""
        seconds = _pause_seconds(m.group(0), arg)
        if seconds > 0:
            if pieces and pieces[-1].pause:  # two marks in a row: one longer pause
                last = pieces[-1]
                pieces[-1] = Piece("", last.offset, min(MAX_PAUSE_S, last.pause + seconds))
            else:
                pieces.append(Piece("", at, seconds))
        pos = m.end()
    say(text[pos:])
    if not any(p.text for p in pieces):
        raise InvalidText("The text is empty. Type what the avatar should say.")
    return Script("".join(spoken), tuple(pieces))


# ---------------------------------------------------------------------------- chunks

# a sentence ends at . ! ? … (Latin), 。！？ (CJK), ۔ ؟ (Arabic script), । ॥ (Devanagari)
# followed by space or end; CJK and Indic marks need no space after them
_SENTENCE_END = re.compile(r"(?:[.!?…]+[\"'”’)\]]*(?=\s|$)|[。！？؟۔।॥]+[\"'”’)\]」』]*)|\n\s*\n")
_CLAUSE_END = re.compile(r"[,;:，、；：—–](?=\s|$)|[，、；：]")
# a period after these does not end a sentence: "Dr. Smith", "e.g. this", "J. R. R. Tolkien"
_NO_BREAK = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|Mt|No|vs|e\.g|i\.e|approx|Hr|Fr|Sra|Srta|Dra|z\.B|bzw|ca)"
    r"|(?<![^\W\d_])[^\W\d_])\.$"  # or a single letter: an initial
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text``; blank lines also end a sentence."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        if m.group(0).endswith(".") and _NO_BREAK.search(text[max(start, end - 8) : end]):
            continue
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return [_strip(text, a, b) for a, b in spans]


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _split_long(text: str, a: int, b: int, limit: int) -> list[tuple[int, int]]:
    """A sentence longer than ``limit``: cut at clause marks, else at spaces, else hard."""
    out: list[tuple[int, int]] = []
    while b - a > limit:
        window = text[a : a + limit]
        cut = max((m.end() for m in _CLAUSE_END.finditer(window) if m.end() > limit // 3), default=0)
        if not cut:
            cut = window.rfind(" ", limit // 3) + 1
        if cut <= 0:
            cut = limit
        out.append(_strip(text, a, a + cut))
        a = _strip(text, a + cut, b)[0]
    if b > a:
        out.append((a, b))
    return [s for s in out if s[1] > s[0]]


def chunk_spans(text: str, limit: int = CHUNK_CHARS, first: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of pieces of ``text`` of at most ``limit`` characters, cut between
    sentences (consecutive short sentences share a piece), long sentences at clause
    marks or spaces. Each piece is one engine call. ``first``: the first piece takes a
    following sentence only while it stays within ``first`` characters (the first sentence
    is spoken on its own, so a render or preview that waits for it starts sooner; a sentence
    is never cut shorter for it)."""
    chunks: list[tuple[int, int]] = []
    for a, b in sentence_spans(text):
        for s, e in _split_long(text, a, b, limit):
            room = first if first is not None and len(chunks) == 1 else limit
            if chunks and e - chunks[-1][0] <= room and "\n\n" not in text[chunks[-1][1] : s]:
                chunks[-1] = (chunks[-1][0], e)
            else:
                chunks.append((s, e))
    return chunks


# ---------------------------------------------------------------------------- normalisation

Rule = tuple["re.Pattern[str]", Callable[["re.Match[str]"], str | None]]

_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
}
_MONTHS_LIST = {k: v.split() for k, v in _MONTHS.items()}


def _sub(pattern: "re.Pattern[str]", repl, text: str, origin: list[int]) -> tuple[str, list[int]]:
    """re.sub that also carries the origin map (replacement characters point at the
    start of what they replace)."""
    out: list[str] = []
    omap: list[int] = []
    pos = 0
    for m in pattern.finditer(text):
        new = repl(m)
        if new is None or new == m.group(0):
            continue
        out.append(text[pos : m.start()])
        omap.extend(origin[pos : m.start()])
        out.append(new)
        omap.extend([origin[m.start()]] * len(new))
        pos = m.end()
    if not out:
        return text, origin
    out.append(text[pos:])
    omap.extend(origin[pos:])
    return "".join(out), omap


def _ordinal_en(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _year_en(y: int) -> str:
    """How a year is said in a date: 1999 -> "19 99", 2024 -> "20 24", 1905 -> "19 oh 5"."""
    if 1100 <= y <= 2099 and not 2000 <= y <= 2009 and y % 100:
        hi, lo = divmod(y, 100)
        return f"{hi} {lo}" if lo >= 10 else f"{hi} oh {lo}"
    return str(y)


def _date(language: str, day: int, month: int, year: str) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    lang = language.split("-")[0]
    name = _MONTHS_LIST[lang][month - 1]
    y = int(year) if year else 0
    if y and len(year) == 2:
        y += 2000 if y < 50 else 1900
    if lang == "en":
        return f"{name} {_ordinal_en(day)}" + (f", {_year_en(y)}" if y else "")
    if lang == "de":
        return f"{day}. {name}" + (f" {y}" if y else "")
    if lang == "es":
        return f"{day} de {name}" + (f" de {y}" if y else "")
    return f"{'1er' if day == 1 else day} {name}" + (f" {y}" if y else "")  # fr


def _numeric_date(language: str):
    month_first = language.lower() in ("en", "en-us")

    def repl(m: "re.Match[str]") -> str | None:
        a, b, year = int(m.group("a")), int(m.group("b")), m.group("y") or ""
        if m.group("sep") == "." and language.split("-")[0] == "en":
            return None  # 3.14 is a number in English
        if month_first and a <= 12:
            return _date(language, b, a, year)
        return _date(language, a, b, year) or (_date(language, b, a, year) if a <= 12 else None)

    return repl


def _iso_date(language: str):
    def repl(m: "re.Match[str]") -> str | None:
        return _date(language, int(m.group("d")), int(m.group("m")), m.group("y"))

    return repl


_CURRENCY_EN = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
                "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "", "")}  # fmt: skip


def _money_en(m: "re.Match[str]") -> str | None:
    one, many, cent, cents = _CURRENCY_EN[m.group("sym")]
    whole, frac, scale = m.group("n").replace(",", ""), m.group("f") or "", m.group("scale")
    if scale:
        scale = {"k": "thousand", "m": "million", "bn": "billion", "b": "billion"}.get(scale.lower(), scale)
        return f"{whole}{'.' + frac if frac else ''} {scale} {many}"
    n = int(whole)
    c = int((frac + "0")[:2]) if frac else 0
    if frac and not cent:  # ¥1.5: no minor unit to speak of
        return f"{whole}.{frac} {many}"
    parts = []
    if n or not c:
        parts.append(f"{n} {one if n == 1 else many}")
    if c:
        parts.append(f"{c} {cent if c == 1 else cents}")
    return " and ".join(parts)


_EURO = {"de": ("Euro", "Euro", ""), "fr": ("euro", "euros", ""), "es": ("euro", "euros", "con")}


def _money_euro(language: str):
    one, many, joiner = _EURO[language.split("-")[0]]

    def repl(m: "re.Match[str]") -> str:
        n = int(m.group("n").replace(".", "").replace("\u202f", "").replace(" ", ""))
        c = int((m.group("f") + "0")[:2]) if m.group("f") else 0
        text = f"{n} {one if n == 1 else many}"
        if c:
            text += f" {joiner} {c}" if joiner else f" {c}"
        return text

    return repl


def _words(table: dict[str, str]) -> Callable[["re.Match[str]"], str]:
    return lambda m: table[m.group(1)]


def _title(table: dict[str, str]) -> Callable[["re.Match[str]"], str | None]:
    """A title abbreviation, expanded only before a capitalised word (a name)."""

    def repl(m: "re.Match[str]") -> str | None:
        if not m.group("next").isupper():
            return None
        if m.group(1) == "St" and re.search(r"\b[A-Z][a-z]+ $", m.string[: m.start()]):
            return None  # "Main St. Then": a street, which the engine reads well
        return table[m.group(1)]

    return repl


_TITLE_NEXT = r"\.(?=\s+(?P<next>[^\W\d_]))"  # the period, then a word
_NUM = r"(?P<n>\d{1,3}(?:,\d{3})+|\d+)"


def _rules(language: str) -> list[Rule]:
    lang = language.split("-")[0].lower()
    day_month = r"(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})\b"
    iso = r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"
    if lang == "en":
        titles = {"Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor",
                  "St": "Saint", "Mt": "Mount"}  # fmt: skip
        months = {"Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "Jun": "June",
                  "Jul": "July", "Aug": "August", "Sep": "September", "Sept": "September", "Oct": "October",
                  "Nov": "November", "Dec": "December"}  # fmt: skip
        return [
            (re.compile(rf"\b({'|'.join(titles)}){_TITLE_NEXT}"), _title(titles)),
            (re.compile(rf"\b({'|'.join(months)})\.(?=\s*\d)"), _words(months)),
            (re.compile(r"\bNo\.(?=\s*\d)"), lambda m: "number"),
            (re.compile(r"\bvs\.(?=\s)"), lambda m: "versus"),
            (re.compile(iso), _iso_date(language)),
            (re.compile(rf"\b{day_month}"), _numeric_date(language)),
            (
                re.compile(rf"(?P<sym>[$£€¥])\s?{_NUM}(?:\.(?P<f>\d{{1,2}}))?(?!\d)"
                           r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|[kKmMbB])\b)?"),
                _money_en,
            ),  # fmt: skip
        ]
    if lang in ("de", "fr", "es"):
        titles = {
            "de": {"Dr": "Doktor", "Prof": "Professor", "Hr": "Herr", "Fr": "Frau"},
            "fr": {"M": "Monsieur", "Dr": "Docteur", "Pr": "Professeur", "Mme": "Madame", "Mlle": "Mademoiselle"},
            "es": {"Sr": "señor", "Sra": "señora", "Srta": "señorita", "Dr": "doctor", "Dra": "doctora"},
        }[lang]
        rules: list[Rule] = [
            (re.compile(rf"\b({'|'.join(sorted(titles, key=len, reverse=True))}){_TITLE_NEXT}"), _title(titles)),
            (re.compile(iso), _iso_date(language)),
            (re.compile(rf"\b{day_month}"), _numeric_date(language)),
            (
                re.compile(
                    r"(?<![\d.,])(?P<n>\d{1,3}(?:[.\u202f ]\d{3})+|\d+)(?:,(?P<f>\d{1,2}))?\s?(?:€|EUR\b|Euro\b)"
                ),
                _money_euro(language),
            ),
        ]
        if lang == "de":
            abbr = {"z. B.": "zum Beispiel", "z.B.": "zum Beispiel", "d. h.": "das heißt", "d.h.": "das heißt",
                    "usw.": "und so weiter", "bzw.": "beziehungsweise"}  # fmt: skip
            rules.append((re.compile("|".join(re.escape(k) for k in abbr)), lambda m: abbr[m.group(0)]))
            clock = re.compile(r"\b(\d{1,2}):(\d{2})\s?Uhr\b")
            rules.append((clock, lambda m: f"{int(m.group(1))} Uhr {int(m.group(2))}"))
        if lang == "fr":
            clock = re.compile(r"\b(\d{1,2})\s?h\s?(\d{2})\b")
            rules.append((clock, lambda m: f"{int(m.group(1))} heures {int(m.group(2))}"))
        return rules
    return []


def normalize(text: str, language: str) -> tuple[str, list[int]]:
    """``text`` rewritten where the engines misread it, and for each output character the
    index of the input character it came from (plus one entry for the end).

    English: titles before a name (Dr. Mr. Mrs. Ms. Prof. St. Mt.), month abbreviations
    before a day, ``No. 5``, ``vs.``, numeric dates (3/14/2024: month first for en-US,
    day first otherwise; ISO 2024-03-14) and amounts in $ £ € ¥ ("$5.50" -> "5 dollars
    and 50 cents"). German, French, Spanish: titles, numeric dates and euro amounts, plus
    a few abbreviations and clock times. Everything else (numbers, ordinals, times,
    percentages, most abbreviations) is left to the engine, which reads it well.
    """
    origin = list(range(len(text) + 1))
    for pattern, repl in _rules(language):
        end = origin[-1]
        text, origin = _sub(pattern, repl, text, origin[:-1])
        origin = origin + [end]
    return text, origin
