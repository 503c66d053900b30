"""Training of the lip-closure frame classifier in :mod:`pipeline.speech.bilabial`.

    python -m pipeline.speech.bilabial_train [--utterances 3600] [--epochs 20] [--out pipeline/speech/bilabial.npz]

Data: speech whose phone times are exact, made here: the bundled Piper voice (its
sampling noise scaled at random, 0.5-1 of what it was trained with, so that prosody
and durations vary as they do from run to run) and espeak-ng (its English accents and
voice variants, several speeds) reading English sentences taken from the documentation
that ships with the Python environment (pydoc's topics and package descriptions), never
the benchmark sentences. Each utterance gets a random gain, spectral tilt and, mostly,
background noise (SNR 12-45 dB), so the network learns the shape of a closure rather
than the synthesiser's exact spectrum. Labels per 10 ms frame: silence, /p b m/, other
speech. A few espeak-ng variants are held out of training so that
``bench/lipsync_accuracy.py`` can report unseen voices separately.

Training is plain numpy (Adam, cross-entropy weighted towards the rare bilabial class):
generating 2400 utterances (~770k frames) takes about 5 minutes on two cores, each
training pass 4-5 (a first pass on 90 % reports held-out frame scores, the second uses
everything). The shipped weights (2026-12-02) were made with

    python -m pipeline.speech.bilabial_train --utterances 2400 --seed 1 --piper-share 0.7 --cache d1.npz --data-only
    python -m pipeline.speech.bilabial_train --utterances 2400 --seed 2 --piper-share 0.3 --cache d2.npz --data-only
    python -m pipeline.speech.bilabial_train --data d1.npz d2.npz --hidden 128,64 --epochs 20

(1.53M frames; 128 + 64 hidden units; held-out frames 94.2 % right, /p b m/ frames
recall 0.85 / precision 0.79, against 91.8 %, 0.83 / 0.71 before). Piper's own sampling
noise is not seeded, so new data gives close, not identical, weights (the same data gives
the same weights). Against the earlier weights (3600 utterances, half Piper without the
noise scaling, 96 + 48 hidden units), timed without a transcript, planned lip gap: /p b m/ closed on eight 60 s Piper clips 96.8 ->
98.0 %, on 208 short clips of 26 voices 99.0 -> 99.7 % (unseen voices 98.2 -> 99.1 %);
open vowels 98.4 -> 97.8 % and 99.3 -> 99.0 %. Not used at run time.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import re
from pathlib import Path

import numpy as np

from pipeline.speech import bilabial
from pipeline.types import AudioClip, Phoneme, Speech

log = logging.getLogger(__name__)

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan")
VARIANTS = (
    "", "f1", "f2", "f3", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m8", "klatt", "klatt3", "klatt5",
    "Alex", "Annie", "Denis", "Gene", "Jacky", "Lee", "Mike", "Storm", "adam", "anika", "aunty", "belinda",
    "benjamin", "boris", "david", "ed", "edward", "grandma", "grandpa", "ian", "john", "linda", "max",
    "michel", "norbert", "paul", "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac",
    "whisperf",
)  # fmt: skip
HELD_OUT_VARIANTS = ("m7", "f4", "klatt2", "Andrea", "steph3")  # never trained on: "unseen voices"
HELD_OUT_ACCENTS = ("en-gb-x-gbcwmd",)
SPEEDS = (0.75, 0.85, 1.0, 1.0, 1.15, 1.3, 1.45)
PIPER_SHARE = 0.5  # of the utterances (--piper-share)
PIPER_VARIATION = (0.5, 1.0)  # range of Piper's sampling-noise scale (VoiceOptions.variation)
BENCH_SENTENCE_WORDS = {"bamboo", "lemon", "syrup", "pancakes", "barn", "pasta", "bump"}


# ------------------------------------------------------------------ data


def corpus() -> list[str]:
    """English sentences from the documentation installed with Python and its packages."""
    from importlib import metadata

    texts: list[str] = []
    try:
        from pydoc_data import topics

        texts += list(topics.topics.values())
    except ImportError:
        pass
    for dist in metadata.distributions():
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""
        texts.append(str(body or dist.metadata.get("Description", "") or ""))
    out: set[str] = set()
    for body in texts:
        for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", body)):
            w = s.split()
            if not (5 <= len(w) <= 14):
                continue
            if all(re.fullmatch(r"[A-Za-z][a-z']*[,;]?", x) for x in w[:-1]) and re.fullmatch(r"[a-z']+[.!?]", w[-1]):
                if not BENCH_SENTENCE_WORDS & {x.strip(".,;!?").lower() for x in w}:
                    out.add(s.strip())
    return sorted(out)


def speak_espeak(text: str, name: str, speed: float = 1.0) -> Speech:
    """``text`` in espeak-ng voice ``name`` ("en-us", "en+f3", "en-gb-scotland+klatt"),
    with its phone times. Variants are chosen by name, which the voice catalogue does
    not offer; the library's own voice choice is reset afterwards."""
    from pipeline.speech import espeak_tts

    entry = espeak_tts.library()
    lib = entry.model
    with entry.lock:
        lib.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.lib.espeak_SetVoiceByName.restype = ctypes.c_int
        if lib.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {name!r}")
        lib._voice = "\0" + name  # speak() keeps the voice just set
        try:
            pcm, events = lib.speak(text, "\0" + name, espeak_tts.wpm_for(speed))
        finally:
            lib._voice = ""
    audio = pcm.astype(np.float32) / 32768.0
    phones = espeak_tts.phones_from_events(events, len(audio), lib.rate)
    return Speech(AudioClip(audio, lib.rate), tuple(phones), text=text, source="espeak")


def espeak_name(accent: str, variant: str) -> str:
    """espeak-ng's voice file name for an accent (language tag) plus a variant."""
    file = {"en-gb": "en", "en-gb-scotland": "en-GB-scotland", "en-gb-x-rp": "en-GB-x-rp", "en-us": "en-US",
            "en-us-nyc": "en-US-nyc", "en-gb-x-gbclan": "en-GB-x-gbclan", "en-gb-x-gbcwmd": "en-GB-x-gbcwmd"}.get(accent, accent)  # fmt: skip
    return f"{file}+{variant}" if variant else file


CLOSURE_LOOKBACK_S = 0.1  # how far before a /p b/ its silent closure may start
CLOSURE_DROP_DB = 12.0  # closure frames are this much quieter than the release


def labels(phones: tuple[Phoneme, ...], n: int, energy: np.ndarray | None = None) -> np.ndarray:
    """Class index of each 10 ms frame (frame k at k * 10 ms).

    Synthesisers put the silent closure of a /p b/ at the end of the phone before it
    (their /b/ can be 17 ms of release), so with ``energy`` (dB per frame) the frames
    just before a /p b/ that are clearly quieter than its release count as bilabial too:
    that is when the lips are shut.
    """
    y = np.full(n, 2, np.int8)  # silence unless a phone covers it
    t = np.arange(n) * bilabial.FRAME_S
    spans: list[tuple[int, int, int]] = []  # /p b/ frames and where the phone before starts
    prev_start = 0
    for p in phones:
        a, b = (int(v) for v in np.searchsorted(t, [p.start, p.end]))
        if p.symbol == "_":
            y[a:b] = 2
        elif p.symbol in ("p", "b", "m"):
            y[a:b] = 1
            if p.symbol != "m":
                spans.append((a, b, prev_start))
        else:
            y[a:b] = 0
        prev_start = a
    if energy is not None:
        back = int(round(CLOSURE_LOOKBACK_S / bilabial.FRAME_S))
        for a, b, pa in spans:
            # a dip: quieter than both the release and the loudest part of the phone before
            release = float(energy[a : min(n, b + 3)].max()) if b + 3 > a else -1e9
            before = float(energy[pa:a].max()) if a > pa else release
            limit = min(release, before) - CLOSURE_DROP_DB
            k = a
            while k > max(0, a - back) and energy[k - 1] < limit and y[k - 1] != 1:
                k -= 1
            y[k:a] = 1
    return y


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gain, spectral tilt and (mostly) noise."""
    x = x.astype(np.float32) * np.float32(10 ** (rng.uniform(-12, 3) / 20))
    a = rng.uniform(-0.6, 0.6)
    if a > 0:  # brighter: pre-emphasis
        x = np.append(x[0], x[1:] - a * x[:-1]).astype(np.float32)
    else:  # darker: one-pole low-pass
        from scipy.signal import lfilter

        x = lfilter([1 + a], [1, a], x).astype(np.float32)
    if rng.random() < 0.75:
        p = float(np.mean(x**2)) + 1e-12
        snr = rng.uniform(12, 45)
        noise = rng.standard_normal(len(x)).astype(np.float32)
        if rng.random() < 0.5:  # pinkish
            from scipy.signal import lfilter

            noise = lfilter([1.0], [1.0, -0.95], noise).astype(np.float32)
        noise *= np.sqrt(p / 10 ** (snr / 10) / (np.mean(noise**2) + 1e-12))
        x = x + noise
    return x


def utterance(text: str, rng: np.random.Generator, voices: list[str]) -> Speech:
    import pipeline
    from pipeline.options import VoiceOptions

    speed = float(rng.choice(SPEEDS))
    if rng.random() < PIPER_SHARE:
        noise = float(rng.uniform(*PIPER_VARIATION))
        return pipeline.synthesize(text, VoiceOptions(speed=float(np.clip(speed, 0.8, 1.3)), variation=noise))
    return speak_espeak(text, str(rng.choice(voices)), speed)


def dataset(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of ``n`` augmented training utterances."""
    from pipeline.media.audio import resample

    rng = np.random.default_rng(seed)
    sentences = corpus()
    voices = [espeak_name(a, v) for a in ACCENTS for v in VARIANTS]
    xs, ys = [], []
    for i in range(n):
        text = sentences[i % len(sentences)] if i < len(sentences) else str(rng.choice(sentences))
        sp = utterance(text, rng, voices)
        clean = resample(sp.audio, bilabial.SR).samples
        x = augment(clean, rng)
        f = bilabial.features(x)
        xs.append(f)
        ys.append(labels(sp.phonemes or (), len(f), bilabial.log_mel(clean)[: len(f), -1]))
        if (i + 1) % 100 == 0:
            log.info("%d/%d utterances", i + 1, n)
    return np.concatenate(xs), np.concatenate(ys)


# ------------------------------------------------------------------ training


def train(x: np.ndarray, y: np.ndarray, *, epochs: int = 20, hidden: tuple[int, int] = (96, 48), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = x.mean(0)
    sd = x.std(0) + 1e-3
    xn = ((x - mu) / sd).astype(np.float32)
    sizes = [x.shape[1], *hidden, len(bilabial.CLASSES)]
    params: dict[str, np.ndarray] = {}
    for i in range(3):
        params[f"w{i}"] = (rng.standard_normal((sizes[i], sizes[i + 1])) * np.sqrt(2.0 / sizes[i])).astype(np.float32)
        params[f"b{i}"] = np.zeros(sizes[i + 1], np.float32)
    counts = np.bincount(y, minlength=3).astype(np.float64)
    cw = (counts.sum() / (3 * np.maximum(counts, 1))) ** 0.5  # soften the balance
    cw = (cw / cw[0]).astype(np.float32)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    step = 0
    batch = 256
    for ep in range(epochs):
        lr = 2e-3 * (0.5 ** (ep / 8))
        order = rng.permutation(len(xn))
        loss_sum = 0.0
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            h0 = xn[idx]
            yy = y[idx]
            z1 = h0 @ params["w0"] + params["b0"]
            h1 = np.maximum(z1, 0)
            z2 = h1 @ params["w1"] + params["b1"]
            h2 = np.maximum(z2, 0)
            z3 = h2 @ params["w2"] + params["b2"]
            z3 -= z3.max(1, keepdims=True)
            p = np.exp(z3)
            p /= p.sum(1, keepdims=True)
            w = cw[yy]
            loss_sum += float(-(w * np.log(p[np.arange(len(yy)), yy] + 1e-9)).sum())
            g3 = p
            g3[np.arange(len(yy)), yy] -= 1.0
            g3 *= (w / w.sum())[:, None]
            grads = {"w2": h2.T @ g3, "b2": g3.sum(0)}
            g2 = (g3 @ params["w2"].T) * (z2 > 0)
            grads["w1"] = h1.T @ g2
            grads["b1"] = g2.sum(0)
            g1 = (g2 @ params["w1"].T) * (z1 > 0)
            grads["w0"] = h0.T @ g1
            grads["b0"] = g1.sum(0)
            step += 1
            for k in params:
                g = grads[k] + (1e-4 * params[k] if k.startswith("w") else 0.0)
                m[k] = 0.9 * m[k] + 0.1 * g
                v2[k] = 0.999 * v2[k] + 0.001 * g * g
                mh = m[k] / (1 - 0.9**step)
                vh = v2[k] / (1 - 0.999**step)
                params[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        log.info("epoch %d: loss %.4f", ep + 1, loss_sum / len(order))
    return {**params, "mu": mu.astype(np.float32), "sd": sd.astype(np.float32)}


def frame_report(net: bilabial.Net, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    p = net.probabilities(x)
    pred = p.argmax(1)
    out = {"accuracy": float((pred == y).mean())}
    for c, name in enumerate(bilabial.CLASSES):
        tp = float(((pred == c) & (y == c)).sum())
        out[f"{name}_recall"] = tp / max(1.0, float((y == c).sum()))
        out[f"{name}_precision"] = tp / max(1.0, float((pred == c).sum()))
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    global PIPER_SHARE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--utterances", type=int, default=3600)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--piper-share", type=float, default=PIPER_SHARE, help="share of the utterances spoken by Piper")
    ap.add_argument("--hidden", default="96,48", help="hidden layer sizes")
    ap.add_argument("--cache", type=Path, default=None, help="npz file to keep the generated data in")
    ap.add_argument("--data-only", action="store_true", help="generate (and --cache) the data, do not train")
    ap.add_argument("--data", type=Path, nargs="+", default=None, help="train on these --cache files, in order")
    ap.add_argument("--out", type=Path, default=bilabial.WEIGHTS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    PIPER_SHARE = args.piper_share
    if args.data:
        parts = [np.load(p) for p in args.data]
        x, y = np.concatenate([z["x"] for z in parts]), np.concatenate([z["y"] for z in parts])
    elif args.cache and args.cache.is_file():
        with np.load(args.cache) as z:
            x, y = z["x"], z["y"]
    else:
        x, y = dataset(args.utterances, args.seed)
        if args.cache:
            np.savez(args.cache, x=x, y=y)
    log.info("%d frames; class shares %s", len(y), np.round(np.bincount(y, minlength=3) / len(y), 3).tolist())
    if args.data_only:
        return
    hidden = tuple(int(h) for h in args.hidden.split(","))
    cut = int(0.9 * len(y))
    weights = train(x[:cut], y[:cut], epochs=args.epochs, hidden=hidden, seed=args.seed)
    log.info("held-out frames: %s", frame_report(bilabial.Net(weights), x[cut:], y[cut:]))
    weights = train(x, y, epochs=args.epochs, hidden=hidden, seed=args.seed)
    np.savez_compressed(args.out, **weights)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
