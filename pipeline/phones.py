"""The canonical phoneme inventory (IPA) and the mouth target of each phone.

Inputs come as IPA from espeak/Piper, or ARPAbet from pocketsphinx; both map to one
canonical IPA symbol here. Unknown symbols are logged once and get a neutral pose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Mouth pose channels, each a float, nominally in [0, 1]:
MOUTH_CHANNELS: tuple[str, ...] = (
    "jaw",  # jaw opening: lower lip, teeth and chin drop
    "gap",  # lip gap: how far the lips part (0 = lips touching)
    "spread",  # lip corners pulled outward (ee, s)
    "round",  # lips rounded and narrowed (oo, w)
    "press",  # lips pressed together (p b m closure)
    "teeth",  # upper teeth shown / upper lip raised (f v, s)
    "tongue",  # tongue tip visible behind the teeth (l, th)
)


@dataclass(frozen=True)
class MouthPose:
    jaw: float = 0.0
    gap: float = 0.0
    spread: float = 0.0
    round: float = 0.0
    press: float = 0.0
    teeth: float = 0.0
    tongue: float = 0.0

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, c) for c in MOUTH_CHANNELS], dtype=np.float32)


PAUSE = "_"  # canonical symbol for silence / pause


@dataclass(frozen=True)
class PhoneClass:
    pose: MouthPose
    dominance: float  # how strongly this phone holds its shape against neighbours
    kind: str  # "vowel", "bilabial", "labiodental", "consonant", "pause", "glide", "weak"


def _p(jaw=0.0, gap=0.0, spread=0.0, round=0.0, press=0.0, teeth=0.0, tongue=0.0) -> MouthPose:
    return MouthPose(jaw=jaw, gap=gap, spread=spread, round=round, press=press, teeth=teeth, tongue=tongue)


# Open vowels (ARPAbet AA AE AH AO AW AY) must clearly open the mouth.
_TABLE: dict[str, PhoneClass] = {
    PAUSE: PhoneClass(_p(), 0.8, "pause"),
    # bilabials: lips closed and pressed
    "p": PhoneClass(_p(press=1.0), 2.0, "bilabial"),
    "b": PhoneClass(_p(press=0.9), 2.0, "bilabial"),
    "m": PhoneClass(_p(press=0.7), 2.0, "bilabial"),
    # labiodentals: upper teeth on lower lip
    "f": PhoneClass(_p(jaw=0.08, gap=0.18, teeth=1.0), 3.0, "labiodental"),
    "v": PhoneClass(_p(jaw=0.08, gap=0.16, teeth=0.9), 3.0, "labiodental"),
    # dentals: tongue between the teeth
    "θ": PhoneClass(_p(jaw=0.18, gap=0.32, teeth=0.6, tongue=1.0), 1.5, "consonant"),
    "ð": PhoneClass(_p(jaw=0.16, gap=0.28, teeth=0.6, tongue=0.9), 1.2, "consonant"),
    # sibilants: teeth nearly together, lips parted
    "s": PhoneClass(_p(jaw=0.06, gap=0.26, spread=0.5, teeth=0.8), 2.0, "consonant"),
    "z": PhoneClass(_p(jaw=0.06, gap=0.24, spread=0.45, teeth=0.7), 1.8, "consonant"),
    "ʃ": PhoneClass(_p(jaw=0.1, gap=0.28, round=0.6, teeth=0.6), 2.0, "consonant"),
    "ʒ": PhoneClass(_p(jaw=0.1, gap=0.26, round=0.55, teeth=0.6), 1.8, "consonant"),
    # alveolars and velars
    "t": PhoneClass(_p(jaw=0.18, gap=0.28, teeth=0.4, tongue=0.3), 1.0, "consonant"),
    "d": PhoneClass(_p(jaw=0.2, gap=0.3, teeth=0.35, tongue=0.3), 1.0, "consonant"),
    "n": PhoneClass(_p(jaw=0.2, gap=0.28, teeth=0.3, tongue=0.3), 0.9, "consonant"),
    "l": PhoneClass(_p(jaw=0.3, gap=0.36, teeth=0.3, tongue=1.0), 1.0, "consonant"),
    "ɾ": PhoneClass(_p(jaw=0.25, gap=0.32, tongue=0.4), 0.6, "consonant"),
    "k": PhoneClass(_p(jaw=0.28, gap=0.3), 0.7, "consonant"),
    "g": PhoneClass(_p(jaw=0.28, gap=0.3), 0.7, "consonant"),
    "ŋ": PhoneClass(_p(jaw=0.25, gap=0.28), 0.7, "consonant"),
    "x": PhoneClass(_p(jaw=0.25, gap=0.3), 0.7, "consonant"),
    "h": PhoneClass(_p(jaw=0.35, gap=0.4), 0.25, "weak"),
    "ʔ": PhoneClass(_p(jaw=0.2, gap=0.25), 0.3, "weak"),
    # glides and liquids
    "w": PhoneClass(_p(jaw=0.08, gap=0.14, round=1.0), 3.0, "glide"),
    "j": PhoneClass(_p(jaw=0.14, gap=0.22, spread=0.6), 1.2, "glide"),
    "ɹ": PhoneClass(_p(jaw=0.2, gap=0.24, round=0.5), 1.2, "glide"),
    "r": PhoneClass(_p(jaw=0.22, gap=0.26, round=0.3, tongue=0.3), 1.0, "glide"),
    # vowels
    "i": PhoneClass(_p(jaw=0.22, gap=0.32, spread=0.9, teeth=0.5), 1.0, "vowel"),
    "ɪ": PhoneClass(_p(jaw=0.3, gap=0.38, spread=0.55, teeth=0.4), 1.0, "vowel"),
    "e": PhoneClass(_p(jaw=0.42, gap=0.46, spread=0.55, teeth=0.35), 1.0, "vowel"),
    "ɛ": PhoneClass(_p(jaw=0.55, gap=0.56, spread=0.4, teeth=0.3), 1.0, "vowel"),
    "æ": PhoneClass(_p(jaw=0.8, gap=0.78, spread=0.45, teeth=0.35), 1.1, "vowel"),
    "a": PhoneClass(_p(jaw=0.95, gap=0.9, spread=0.15, teeth=0.25), 1.1, "vowel"),
    "ɑ": PhoneClass(_p(jaw=1.0, gap=0.92, teeth=0.2), 1.1, "vowel"),
    "ɒ": PhoneClass(_p(jaw=0.95, gap=0.88, round=0.3, teeth=0.2), 1.1, "vowel"),
    "ʌ": PhoneClass(_p(jaw=0.72, gap=0.7, teeth=0.25), 1.1, "vowel"),
    "ɐ": PhoneClass(_p(jaw=0.62, gap=0.62, teeth=0.25), 1.0, "vowel"),
    "ə": PhoneClass(_p(jaw=0.55, gap=0.56, teeth=0.25), 0.9, "vowel"),
    "ɔ": PhoneClass(_p(jaw=0.78, gap=0.7, round=0.55, teeth=0.2), 1.1, "vowel"),
    "o": PhoneClass(_p(jaw=0.55, gap=0.55, round=0.7, teeth=0.15), 1.0, "vowel"),
    "ʊ": PhoneClass(_p(jaw=0.3, gap=0.34, round=0.7, teeth=0.1), 1.0, "vowel"),
    "u": PhoneClass(_p(jaw=0.24, gap=0.28, round=1.0, teeth=0.1), 1.2, "vowel"),
    "ɜ": PhoneClass(_p(jaw=0.42, gap=0.44, round=0.3, teeth=0.25), 1.0, "vowel"),
    "ɚ": PhoneClass(_p(jaw=0.38, gap=0.4, round=0.35, teeth=0.25), 1.0, "vowel"),
    "ɨ": PhoneClass(_p(jaw=0.3, gap=0.35, spread=0.3), 1.0, "vowel"),
    "y": PhoneClass(_p(jaw=0.22, gap=0.28, round=0.9), 1.1, "vowel"),
    "ø": PhoneClass(_p(jaw=0.4, gap=0.42, round=0.8), 1.0, "vowel"),
    "œ": PhoneClass(_p(jaw=0.55, gap=0.55, round=0.6), 1.0, "vowel"),
}

# Folding of IPA variants and espeak/Piper spellings onto the table's symbols.
_ALIASES: dict[str, str] = {
    "ɡ": "g", "ɫ": "l", "ɬ": "l", "ɭ": "l", "ʎ": "l", "ɲ": "n", "ɳ": "n", "ɴ": "ŋ",
    "ɹ̩": "ɚ", "ɻ": "ɹ", "ʁ": "r", "ʀ": "r", "ɽ": "ɾ", "β": "b", "ɸ": "f", "ʋ": "v",
    "ç": "x", "χ": "x", "ɣ": "g", "ħ": "h", "ɦ": "h", "ʕ": "h", "c": "k", "q": "k", "ɟ": "g",
    "ʈ": "t", "ɖ": "d", "ʂ": "ʃ", "ʐ": "ʒ", "ɕ": "ʃ", "ʑ": "ʒ", "ɧ": "ʃ",
    "ɯ": "u", "ʉ": "u", "ɵ": "ø", "ɤ": "o", "ɘ": "ə", "ɞ": "ɜ", "ɶ": "a", "ä": "a",
    "ɪ̈": "ɪ", "ᵻ": "ɪ", "ɐ̃": "ɐ", "ã": "a", "ẽ": "e", "õ": "o", "ɛ̃": "ɛ", "ɔ̃": "ɔ", "œ̃": "œ",
    "ʏ": "y", "ɥ": "j", "ʍ": "w", "ɰ": "w", "ʝ": "j", "ʙ": "b", "ɱ": "m", "ɾ̃": "n",
    "ʧ": "ʃ", "ʤ": "ʒ", "ʦ": "s", "ʣ": "z", "ʲ": "j",
    # pauses and boundaries
    "_": PAUSE, " ": PAUSE, "^": PAUSE, "$": PAUSE, ".": PAUSE, ",": PAUSE, "!": PAUSE,
    "?": PAUSE, ";": PAUSE, ":": PAUSE, "—": PAUSE, "…": PAUSE, "sil": PAUSE, "sp": PAUSE,
    "SIL": PAUSE, "+SPN+": PAUSE, "+NSN+": PAUSE, "<sil>": PAUSE, "<s>": PAUSE, "</s>": PAUSE,
}

# ARPAbet (CMU, pocketsphinx) -> canonical IPA
ARPABET: dict[str, str] = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "a", "AY": "a", "EH": "ɛ", "ER": "ɚ",
    "EY": "e", "IH": "ɪ", "IY": "i", "OW": "o", "OY": "ɔ", "UH": "ʊ", "UW": "u",
    "B": "b", "CH": "ʃ", "D": "d", "DH": "ð", "F": "f", "G": "g", "HH": "h", "JH": "ʒ",
    "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s",
    "SH": "ʃ", "T": "t", "TH": "θ", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}

_warned: set[str] = set()

IGNORED_MARKS = set("ˈˌːˑ̩̯̃͡‿|‖↗↘-")


def canonical(symbol: str) -> str:
    """Canonical IPA for ``symbol`` (IPA, espeak, or ARPAbet with optional stress digit)."""
    s = symbol.strip() if symbol.strip() else symbol
    if s in _TABLE:
        return s
    if s in _ALIASES:
        return _ALIASES[s]
    arpa = s.upper().rstrip("012")
    if arpa in ARPABET and s[:1].isupper():
        return ARPABET[arpa]
    base = "".join(ch for ch in s if ch not in IGNORED_MARKS)
    if base in _TABLE:
        return base
    if base in _ALIASES:
        return _ALIASES[base]
    if base[:1] in _TABLE:
        return base[:1]
    if s not in _warned:
        _warned.add(s)
        log.warning("unknown phoneme symbol %r: using a neutral mouth", s)
    return "?"


_NEUTRAL = PhoneClass(_p(jaw=0.3, gap=0.32), 0.5, "weak")


def classify(symbol: str) -> PhoneClass:
    """Mouth target, dominance and kind of a canonical (or any) phoneme symbol."""
    return _TABLE.get(symbol) or _TABLE.get(canonical(symbol)) or _NEUTRAL


OPEN_VOWELS = frozenset({"ɑ", "æ", "ʌ", "ɔ", "a", "ɐ", "ɒ"})  # ARPAbet AA AE AH AO AW AY
BILABIALS = frozenset({"p", "b", "m"})


def is_vowel(symbol: str) -> bool:
    return classify(symbol).kind == "vowel"
