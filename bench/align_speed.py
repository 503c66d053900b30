"""Speed of phoneme timing for recorded speech, on a ~60 s clip.

    python bench/align_speed.py [--seconds 60] [--repeat 3] [--voice en_US-joe-medium]

Prints JSON, medians of --repeat runs, all measured in the same run:
- without a transcript: the per-segment path (``pipeline.speech.segment_timing``) on the
  worker pool (first call, which starts the workers, and warm calls), serially in this
  process, and the time until its first segment is out; next to the old whole-file path
  (word recognition + its forced alignment + allphone, then gate and dip closures; with
  today's allphone settings, so a little faster than it was);
- with the transcript: pocketsphinx forced alignment and alignment by espeak-ng synthesis
  (whole recording, as before);
- real-time factors (seconds of work per second of audio).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import pipeline  # noqa: E402
from pipeline.options import VoiceOptions  # noqa: E402
from pipeline.speech import align, recording, segment_timing, workers  # noqa: E402
from pipeline.speech.dtw import align_by_synthesis  # noqa: E402
from pipeline.types import AudioClip  # noqa: E402

SENTENCES = [
    "Peter bought a bamboo map for Bob.",
    "My mother made some lemon pie by the pool.",
    "Please pass the apples, Mom, and maybe a bottle of water.",
    "Somebody poured the maple syrup on my pancakes.",
    "Anyone can paint a happy path across the barn.",
]


def clip_of(seconds: float, voice: str) -> tuple[AudioClip, str]:
    """Sentences (0.3 s apart) until ``seconds`` of audio, and their text."""
    pieces, words = [], []
    total = 0.0
    i = 0
    while total < seconds:
        s = pipeline.synthesize(SENTENCES[i % len(SENTENCES)], VoiceOptions(voice=voice))
        pieces += [s.audio.samples, np.zeros(int(0.3 * s.audio.rate), np.float32)]
        words.append(s.text)
        total += s.duration + 0.3
        i += 1
    return AudioClip(np.concatenate(pieces), s.audio.rate), " ".join(words)


def old_whole_file(clip: AudioClip):
    """The timing without a transcript as it was: one pass over the whole recording."""
    from pipeline.visemes.acoustic import add_dip_closures, gate_phonemes

    return add_dip_closures(gate_phonemes(align.recognize(clip), clip), clip)


def timed(fn, repeat: int) -> tuple[float, object]:
    out = None
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def first_segment(clip: AudioClip) -> float:
    t = time.perf_counter()
    gen = segment_timing.iter_segments(clip)
    next(gen)
    dt = time.perf_counter() - t
    gen.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--voice", default="en_US-joe-medium")
    ap.add_argument("--no-transcript-only", action="store_true", help="skip the transcript aligners")
    args = ap.parse_args()
    clip, text = clip_of(args.seconds, args.voice)
    dur = clip.duration
    r = args.repeat
    out: dict[str, object] = {"audio_seconds": round(dur, 1), "cores": workers.cores(), "workers": workers.worker_count()}

    t = time.perf_counter()
    cold = recording.time_clip(clip)
    out["segments_parallel_cold_seconds"] = round(time.perf_counter() - t, 2)  # includes starting the workers
    t_par, par = timed(lambda: recording.time_clip(clip), r)
    t_ser, ser = timed(lambda: recording.time_clip(clip, parallel=False), r)
    t_first = statistics.median(first_segment(clip) for _ in range(r))
    t_old, old = timed(lambda: old_whole_file(clip), r)
    n_seg = len(list(segment_timing.seg.split(segment_timing._to_16k(clip))))
    out.update(
        segments=n_seg,
        segments_parallel_seconds=round(t_par, 2),
        segments_serial_seconds=round(t_ser, 2),
        first_segment_seconds=round(t_first, 3),
        old_whole_file_seconds=round(t_old, 2),
        segments_parallel_realtime_factor=round(t_par / dur, 3),
        old_whole_file_realtime_factor=round(t_old / dur, 3),
        speedup_vs_old=round(t_old / t_par, 1),
        parallel_equals_serial=par.phonemes == ser.phonemes == cold.phonemes,
        segment_bilabials=sum(p.symbol in "pbm" for p in par.phonemes or ()),
        old_bilabials=sum(p.symbol in "pbm" for p in old),
    )
    if not args.no_transcript_only:
        t_align, (phones, _) = timed(lambda: align.align(clip, text), 1)
        t_synth, _ = timed(lambda: align_by_synthesis(clip, text), 1)
        out.update(
            align_seconds=round(t_align, 2),
            align_realtime_factor=round(t_align / dur, 3),
            synth_align_seconds=round(t_synth, 2),
            synth_align_realtime_factor=round(t_synth / dur, 3),
            aligned_phones=len(phones),
        )
    print(json.dumps(out, indent=2))
    workers.shutdown()


if __name__ == "__main__":
    main()
