"""Text checks and clean-up shared by the TTS engines."""

from __future__ import annotations

import re
import unicodedata

from pipeline.errors import InvalidText


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
