"""Lip sync as FaceMesh reads it back from RENDERED frames, next to what the plan asked for.

Truth: synthetic voices whose phoneme times are exact (Piper's alignment, espeak-ng's
phoneme events). Each clip is rendered twice with the default render options (head
motion on):

  (a) "tts":     the TTS speech with its own phoneme timing;
  (b) "no_text": the TTS audio saved as WAV, loaded back with ``pipeline.load_speech``
                 without a transcript (what an upload gets), re-timed from the audio.

Both videos are encoded to MP4, decoded and measured with FaceMesh
(``pipeline.quality.mouth_track``), then scored against the TRUE phonemes with
``pipeline.quality``'s metrics: /p b m/ closure, open vowels open, silence closed (share
of frames whose centre lies inside a pause of at least 0.12 s, 40 ms in from its ends),
AV offset. The plan (``pipeline.plan``) is scored the same way on its own lip-gap track
(closed = planned gap 0; open = planned gap > 0.29), so a rendered rate below the planned
one is the engine's fault and a planned rate below the target is the timing's.

    python bench/lipsync_rendered.py             # 11 voices x 3 sentences + the 60 s clip, ~2-3 min on 2 cores
    python bench/lipsync_rendered.py --quick     # one sentence per voice
    python bench/lipsync_rendered.py --no-long   # skip the 60 s clip
    python bench/lipsync_rendered.py --long 4 --per-voice 1   # four 60 s clips (speeds, noise draws)

Prints a table per voice and the overall numbers (JSON with --json). Not a test.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.media.audio import save_wav  # noqa: E402
from pipeline.options import RenderOptions, VoiceOptions  # noqa: E402
from pipeline.phones import PAUSE, canonical  # noqa: E402
from pipeline.quality.measure import MouthTrack, mouth_track, planned_track  # noqa: E402
from pipeline.quality.metrics import (  # noqa: E402
    LONG_PAUSE,
    av_offset,
    bilabial_closure,
    closed_level,
    open_vowel_rate,
)
from pipeline.types import Phoneme, Speech  # noqa: E402

SENTENCES = [
    "Peter bought a bamboo map for Bob.",
    "My mother made some lemon pie by the pool.",
    "Please pass the apples, Mom, and maybe a bottle of water.",
    "Bring me the blue bump map, baby.",
    "Somebody poured the maple syrup on my pancakes.",
    "Anyone can paint a happy path across the barn.",
    "I'd like a bigger plate of pasta, please, with some bread.",
    "The cat sat on a mat and laughed at the big black bat.",
    "Maybe the plumber will stop by at about five.",
    "A bumpy ride up the hill made Pam hum.",
    "Half of the apples were bruised, but the plums were fine.",
]
# voice label -> options; each voice speaks its own few sentences
VOICES: dict[str, VoiceOptions] = {
    "piper": VoiceOptions(),
    "piper_fast": VoiceOptions(speed=1.3),
    "espeak_us": VoiceOptions(voice="espeak:en-us"),
    "espeak_gb": VoiceOptions(voice="espeak:en-gb"),
    "espeak_scot_slow": VoiceOptions(voice="espeak:en-gb-scotland", speed=0.85),
    "espeak_nyc_fast": VoiceOptions(voice="espeak:en-us-nyc", speed=1.35),
    "espeak_rp": VoiceOptions(voice="espeak:en-gb-x-rp"),
    "espeak_029": VoiceOptions(voice="espeak:en-029", speed=1.1),
    "espeak_lancs": VoiceOptions(voice="espeak:en-gb-x-gbclan"),
    "espeak_wmids": VoiceOptions(voice="espeak:en-gb-x-gbcwmd", speed=1.2),
    "espeak_us_slow": VoiceOptions(voice="espeak:en-us", speed=0.75),
}
LONG_TEXT = (
    "Good morning, and welcome to the weekly update. This week we shipped the new map view, "
    "which makes it simple to browse places by neighbourhood. Maybe the best part is the speed: "
    "pages open about twice as fast as before. Bob from the platform team improved the cache, "
    "and Pam rebuilt the photo pipeline from the ground up. We also fixed a bug that made the "
    "app drop some messages when the phone was offline. Please keep the feedback coming. "
    "Next month, we plan to publish a public beta of the booking flow, with payments by card "
    "or by bank transfer. If you would like to help us test it, reply to this message and "
    "we will send you an invitation. A big thank you to everybody who joined the meetup in "
    "Boston, and to the people who brought pizza and lemonade. Before we go, a word about the "
    "plans for the summer: the team will take two weeks off in August, so please book your "
    "support calls early, and bring your best ideas to the planning meeting. That is all for today. "
    "See you next week, and remember to back up your photos before the big update. Thank you "
    "all for listening, and have a wonderful weekend."
)
# the 60 s clip's voices (--long N takes the first N): Piper as trained, another draw of
# its sampling noise, faster and slower
LONG_VOICES = (VoiceOptions(), VoiceOptions(variation=0.8), VoiceOptions(speed=1.15), VoiceOptions(speed=0.9))
STRICT = 0.03  # a stricter closed level than pipeline.quality's adaptive 0.05-0.06
SILENCE_MARGIN = 0.04  # s trimmed off each end of a pause before its frames must be closed
PLAN_OPEN = 0.1 / 0.35  # planned gap above which the plan counts as clearly open


def photo(name: str) -> np.ndarray:
    from PIL import Image

    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    if name == "sample":  # the bundled sample photo
        return np.asarray(Image.open(pipeline.sample_photo()).convert("RGB"))
    if name == "hopper":  # a second, closed-mouth face: the sample photo shipped with matplotlib
        from matplotlib import cbook

        return np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return np.asarray(Image.open(name).convert("RGB"))


def silence_frames(track: MouthTrack, phonemes: list[Phoneme], level: float) -> tuple[int, int]:
    """(closed, total) frames whose centre lies inside a pause >= LONG_PAUSE, trimmed."""
    spans = []
    merged: list[list[float]] = []
    for p in sorted(phonemes, key=lambda p: p.start):
        if canonical(p.symbol) != PAUSE:
            continue
        if merged and p.start - merged[-1][1] < 1e-3:
            merged[-1][1] = p.end
        else:
            merged.append([p.start, p.end])
    for a, b in merged:
        if b - a >= LONG_PAUSE:
            spans.append((a + SILENCE_MARGIN, b - SILENCE_MARGIN))
    c = track.times + 0.5 * track.durations
    mask = np.zeros(len(c), bool)
    for a, b in spans:
        mask |= (c >= a) & (c < b)
    g = track.gap[mask]
    g = g[np.isfinite(g)]
    return int((g <= level).sum()), int(len(g))


@dataclass
class Tally:
    closed: list[int] = field(default_factory=lambda: [0, 0])
    opened: list[int] = field(default_factory=lambda: [0, 0])
    silent: list[int] = field(default_factory=lambda: [0, 0])
    offsets: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    strict: list[int] = field(default_factory=lambda: [0, 0])  # /p b m/ closed at gap <= STRICT
    sealed: list[float] = field(default_factory=list)  # rendered gap on frames planned closed (gap 0)

    def add(self, track: MouthTrack, truth: list[Phoneme], planned: bool, tag: str = "") -> None:
        level = 0.01 if planned else closed_level(track, truth)
        op = PLAN_OPEN * 0.35 if planned else None
        c = bilabial_closure(track, truth, level)
        o = open_vowel_rate(track, truth, op)
        s = silence_frames(track, truth, level)
        self.closed[0] += c.count - len(c.misses)
        self.closed[1] += c.count
        self.opened[0] += o.count - len(o.misses)
        self.opened[1] += o.count
        self.silent[0] += s[0]
        self.silent[1] += s[1]
        self.misses += [f"{tag}:{m}" for m in c.misses]
        off = av_offset(track, truth)
        if off is not None:
            self.offsets.append(off.ms)
        if not planned:
            st = bilabial_closure(track, truth, STRICT)
            self.strict[0] += st.count - len(st.misses)
            self.strict[1] += st.count

    def merge(self, other: "Tally") -> None:
        for a in ("closed", "opened", "silent", "strict"):
            for i in (0, 1):
                getattr(self, a)[i] += getattr(other, a)[i]
        self.offsets += other.offsets
        self.misses += other.misses
        self.sealed += other.sealed

    def summary(self) -> dict:
        def r(x: list[int]) -> float | None:
            return round(x[0] / x[1], 3) if x[1] else None

        return {
            "closure": r(self.closed),
            "n_bilabials": self.closed[1],
            "open": r(self.opened),
            "n_open": self.opened[1],
            "silence": r(self.silent),
            "n_silence_frames": self.silent[1],
            "median_abs_offset_ms": round(statistics.median(np.abs(self.offsets)), 1) if self.offsets else None,
            "max_abs_offset_ms": round(float(np.max(np.abs(self.offsets))), 1) if self.offsets else None,
            "closure_strict": r(self.strict),
            "sealed_gap_p50": round(float(np.median(self.sealed)), 4) if self.sealed else None,
            "sealed_gap_p95": round(float(np.percentile(self.sealed, 95)), 4) if self.sealed else None,
            "sealed_gap_max": round(float(np.max(self.sealed)), 4) if self.sealed else None,
        }


def speeches(per_voice: int, long: int, tmp: Path, cache: str = "") -> list[tuple[str, Speech, Speech]]:
    """(label, TTS speech, the same audio timed without a transcript) per clip; with
    ``cache``, the clips are kept in that file and reused (Piper's voice varies from run
    to run, so an A/B comparison of two engines needs the same clips)."""
    if cache and Path(cache).is_file():
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    jobs = [(vname, vopts, SENTENCES[(vi * per_voice + j) % len(SENTENCES)])
            for vi, (vname, vopts) in enumerate(VOICES.items()) for j in range(per_voice)]
    for vopts in LONG_VOICES[: max(0, int(long))]:
        jobs.append(("long", vopts, LONG_TEXT))
    out = []
    for k, (vname, vopts, text) in enumerate(jobs):
        truth = pipeline.synthesize(text, vopts)
        notext = pipeline.load_speech(save_wav(truth.audio, tmp / f"clip{k}.wav"))
        label = f"long_{truth.duration:.0f}s_{vopts.speed:g}x_v{vopts.variation:g}"
        out.append((label if vname == "long" else vname, truth, notext))
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump(out, fh)
    return out


def run_clip(avatar, speech: Speech, truth: list[Phoneme], opts: RenderOptions, out: Path,
             rendered: Tally, planned: Tally, tag: str) -> None:
    tracks = pipeline.plan(speech, opts)
    planned.add(planned_track(tracks), truth, planned=True, tag=tag)
    pipeline.render_to_file(avatar, speech, out, opts)
    track = mouth_track(out)
    rendered.add(track, truth, planned=False, tag=tag)
    n = min(track.n_frames, tracks.n_frames)
    shut = tracks.get("gap")[:n] <= 0.0
    g = track.gap[:n][shut]
    rendered.sealed += [float(x) for x in g[np.isfinite(g)]]


def fmt(s: dict) -> str:
    def p(v):
        return "  -  " if v is None else f"{100 * v:5.1f}"

    off = "-" if s["median_abs_offset_ms"] is None else f"{s['median_abs_offset_ms']:.0f}/{s['max_abs_offset_ms']:.0f}"
    line = f"closed {p(s['closure'])}% ({s['n_bilabials']:3d})  open {p(s['open'])}% ({s['n_open']:3d})  " \
           f"silence {p(s['silence'])}%  |offset| med/max {off} ms"
    if s.get("sealed_gap_p50") is not None:
        line += f"  strict {p(s['closure_strict'])}%  sealed gap p50/p95/max " \
                f"{s['sealed_gap_p50']:.3f}/{s['sealed_gap_p95']:.3f}/{s['sealed_gap_max']:.3f}"
    return line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one sentence per voice (11 clips) instead of 3 (33)")
    ap.add_argument("--per-voice", type=int, default=0, help="sentences per voice (default 3, --quick 1)")
    ap.add_argument("--faces", default="sample,hopper",
                    help="comma-separated: sample (bundled), astronaut (skimage), hopper (matplotlib) or image paths")
    ap.add_argument("--no-long", action="store_true", help="skip the 60 s clip")
    ap.add_argument("--long", type=int, default=1, help=f"60 s clips, 1-{len(LONG_VOICES)} (Piper: as trained, "
                    "another noise draw, 1.15x, 0.9x)")
    ap.add_argument("--head-motion", type=float, default=RenderOptions().head_motion)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--misses", action="store_true", help="list the missed closures")
    ap.add_argument("--speech-cache", default="", help="pickle file keeping the clips for an A/B run on the same speech")
    args = ap.parse_args()
    per_voice = args.per_voice or (1 if args.quick else 3)
    opts = RenderOptions(head_motion=args.head_motion)
    tmp = Path(tempfile.mkdtemp(prefix="lipsync_rendered_"))
    faces = [f for f in args.faces.split(",") if f]
    avatars = {f: pipeline.prepare_avatar(photo(f), name=Path(f).stem) for f in faces}
    t0 = time.perf_counter()
    clips = speeches(per_voice, 0 if args.no_long else args.long, tmp, args.speech_cache)
    results: dict[str, dict[str, Tally]] = {}
    k = 0
    for vname, truth, notext in clips:
        long = vname.startswith("long")
        face = faces[0] if long else faces[k % len(faces)]  # faces take turns over the clips
        k += 0 if long else 1
        for mode, sp in (("tts", truth), ("no_text", notext)):
            keys = [f"{vname}/{mode}", f"long_all/{mode}"] if long else [f"{vname}/{mode}", f"all/{mode}", f"face:{face}/{mode}"]
            r, p = Tally(), Tally()
            run_clip(avatars[face], sp, list(truth.phonemes), opts, tmp / f"{mode}.mp4", r, p, f"{vname}/{mode}/{face}")
            for key in keys:
                t = results.setdefault(key, {"rendered": Tally(), "planned": Tally()})
                t["rendered"].merge(r)
                t["planned"].merge(p)
    out = {key: {kind: t.summary() for kind, t in v.items()} for key, v in results.items()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        order = sorted(out, key=lambda s: (s.startswith("all/"), s.startswith("long"), s.startswith("face:"), s))
        width = max(len(s) for s in order)
        for key in order:
            for kind in ("planned", "rendered"):
                print(f"{key:<{width}}  {kind:<8}  {fmt(out[key][kind])}")
        print(f"head_motion={opts.head_motion}  faces={','.join(faces)}  clips={k}  {time.perf_counter() - t0:.0f} s")
    if args.misses:
        for key in ("all/tts", "all/no_text"):
            print(key, "rendered misses:", " ".join(results[key]["rendered"].misses))
            print(key, "planned misses:", " ".join(results[key]["planned"].misses))


if __name__ == "__main__":
    main()
