"""The lip-sync report: every number for one video, how it is scored, how a file is evaluated.

    report = evaluate("out.mp4", phonemes, source_image="face.png")  # measure + score a file
    report = score(track, phonemes)                                  # score a measured track
    print(report.format()); json.dumps(report.to_dict())

:func:`score` runs the metrics of :mod:`.metrics` on a :class:`~.measure.MouthTrack`;
:func:`evaluate` measures the file first (:mod:`.measure`), reads a phoneme file
(:mod:`.phonemes`) or aligns a transcript to the video's audio, and adds the container's
video-minus-audio duration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.quality.measure import MouthTrack, Progress, mouth_track
from pipeline.quality.metrics import (
    MAX_LAG,
    av_offset,
    bilabial_closure,
    closed_level,
    drift,
    landmark_jitter,
    normalize,
    open_level,
    open_vowel_rate,
    psnr_outside_mouth,
)
from pipeline.quality.phonemes import load_phonemes
from pipeline.types import Phoneme


@dataclass(frozen=True)
class Report:
    """Every lip-sync and stability number for one video; None where not measurable."""

    video: str = ""  # file name (or "" for in-memory frames)
    frames: int = 0  # frames measured
    fps: float = 0.0  # nominal frame rate (1 / median frame duration)
    duration: float = 0.0  # seconds of video
    face_rate: float = 0.0  # share of frames with a face
    phonemes: int = 0  # timed phones given
    closed_level: float | None = None  # gap ratio counted as closed lips
    open_level: float | None = None  # gap ratio counted as a clearly open mouth
    bilabials: int = 0  # /p b m/ checked
    bilabial_closure_rate: float | None = None  # share of them closing within +-1 frame
    open_vowels: int = 0  # open vowels checked
    open_vowel_rate: float | None = None  # share of them clearly open within +-1 frame
    av_offset_ms: float | None = None  # lag of the openness/gap correlation peak; + = video late
    av_offset_corr: float | None = None  # correlation at that peak (0..1; < 0.3 unreliable)
    offset_start_ms: float | None = None  # offset over the first third (clips > 20 s)
    offset_end_ms: float | None = None  # offset over the last third (clips > 20 s)
    drift_ms: float | None = None  # end - start offset; + = video falls behind
    duration_diff_ms: float | None = None  # video minus audio stream duration in the file
    jitter_px: float | None = None  # RMS of stable points about their median, px
    psnr_outside_mouth_db: float | None = None  # vs the source image, lower face masked
    missed_closures: tuple[str, ...] = ()  # bilabials that did not close ("b@1.23s")
    missed_openings: tuple[str, ...] = ()  # open vowels that did not open
    notes: tuple[str, ...] = ()  # warnings about the measurement itself

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes None, tuples become lists)."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
            elif isinstance(v, tuple):
                out[k] = list(v)
        return out

    def format(self) -> str:
        """The report as an aligned text table."""

        def pct(rate: float | None, n: int, what: str) -> tuple[str, str]:
            if rate is None:
                return "n/a", f"no {what} to check"
            return f"{100 * rate:.1f} %", f"{round(rate * n)}/{n} {what}"

        def num(v: float | None, fmt: str, unit: str) -> str:
            return "n/a" if v is None else f"{v:{fmt}} {unit}"

        closed = "" if self.closed_level is None else f"gap <= {self.closed_level:.3f}"
        opened = "" if self.open_level is None else f"gap > {self.open_level:.3f}"
        win = ", +-1 frame"
        corr = "" if self.av_offset_corr is None else f"; peak corr {self.av_offset_corr:.2f}"
        if self.drift_ms is None:
            drift_note = "clips > 20 s only"
        else:
            drift_note = f"offset {self.offset_start_ms:+.1f} ms (first third) -> {self.offset_end_ms:+.1f} ms (last)"
        rows = [
            ("bilabial closure", *pct(self.bilabial_closure_rate, self.bilabials, f"/p b m/ closed ({closed}{win})")),
            ("open vowels", *pct(self.open_vowel_rate, self.open_vowels, f"open vowels open ({opened}{win})")),
            ("AV offset", num(self.av_offset_ms, "+.1f", "ms"), "positive = video late" + corr),
            ("drift", num(self.drift_ms, "+.1f", "ms"), drift_note),
            ("duration diff", num(self.duration_diff_ms, "+.1f", "ms"), "video - audio stream duration"),
            ("landmark jitter", num(self.jitter_px, ".2f", "px"), "RMS of eye corners + nose bridge about median"),
            ("PSNR outside mouth", num(self.psnr_outside_mouth_db, ".2f", "dB"), "vs source image, lower face masked"),
        ]
        head = (
            f"Lip-sync quality: {self.video or '(frames)'} - {self.frames} frames, {self.fps:.2f} fps, "
            f"{self.duration:.2f} s, face in {100 * self.face_rate:.0f}% of frames, {self.phonemes} phonemes"
        )
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [head] + [f"  {a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
        if self.missed_closures:
            lines.append(f"  missed closures: {' '.join(self.missed_closures)}")
        if self.missed_openings:
            lines.append(f"  missed openings: {' '.join(self.missed_openings)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def score(
    track: MouthTrack,
    phonemes: Sequence[Phoneme] | None = None,
    *,
    video: str = "",
    duration_diff_ms: float | None = None,
    psnr: float | None = None,
) -> Report:
    """All metrics of a measured track (phonemes optional: without them only stability)."""
    notes: list[str] = []
    face_rate = track.face_rate
    if track.n_frames and face_rate < 0.9:
        notes.append(f"no face in {100 * (1 - face_rate):.0f}% of frames; those frames are skipped")
    fields: dict = {}
    phones = normalize(phonemes) if phonemes else []
    if phonemes is not None and not phones:
        notes.append("the phoneme list is empty")
    if phones and track.n_frames:
        closed = closed_level(track, phones)
        opened = open_level(closed)
        bil = bilabial_closure(track, phones, closed)
        vow = open_vowel_rate(track, phones, opened)
        off = av_offset(track, phones)
        dr = drift(track, phones)
        fields.update(
            closed_level=closed,
            open_level=opened,
            bilabials=bil.count,
            bilabial_closure_rate=bil.rate,
            missed_closures=bil.misses,
            open_vowels=vow.count,
            open_vowel_rate=vow.rate,
            missed_openings=vow.misses,
        )
        if off is not None:
            fields.update(av_offset_ms=off.ms, av_offset_corr=off.corr)
            if off.at_edge:
                notes.append(f"the offset is at the edge of the +-{MAX_LAG * 1000:.0f} ms search: it may be larger")
            if off.corr < 0.3:
                notes.append(f"weak correlation ({off.corr:.2f}): the offset is unreliable")
        if dr is not None:
            fields.update(offset_start_ms=dr.start_ms, offset_end_ms=dr.end_ms, drift_ms=dr.ms)
        overhang = phones[-1].end - track.end
        if overhang > 0.1:
            notes.append(f"the phonemes run {overhang:.2f} s past the end of the video")
    elif phonemes is None:
        notes.append("no phoneme timing given: lip-sync metrics need it (--phonemes)")
    return Report(
        video=video,
        frames=track.n_frames,
        fps=track.fps,
        duration=float(track.end - track.times[0]) if track.n_frames else 0.0,
        face_rate=face_rate,
        phonemes=len(phones),
        duration_diff_ms=duration_diff_ms,
        jitter_px=landmark_jitter(track),
        psnr_outside_mouth_db=psnr,
        notes=tuple(notes),
        **fields,
    )


def _probe(path: Path) -> dict:
    """``pipeline.export.probe(path)``; also when the ``pipeline/export/probe.py`` submodule,
    once imported, has replaced the package's ``probe`` function attribute."""
    from pipeline import export

    fn = export.probe
    if not callable(fn):
        fn = fn.probe
    return fn(path)


def evaluate(
    video_path: str | Path,
    phonemes: Sequence[Phoneme] | str | Path | None = None,
    text: str | None = None,
    source_image: str | Path | np.ndarray | None = None,
    *,
    progress: Progress | None = None,
    language: str = "en",
) -> Report:
    """Measure a video file and score it against ``phonemes`` (a list of Phoneme or a
    phoneme file path). With only ``text``, the video's own audio is force-aligned to
    the text (pipeline.load_speech: pocketsphinx or alignment by espeak-ng synthesis, in
    ``language``) to get the phoneme times. ``source_image`` adds the
    PSNR outside the mouth.
    """
    from pipeline.errors import InvalidOption

    if phonemes is None and text:
        import pipeline

        speech = pipeline.load_speech(video_path, text=text, timing="auto", language=language)
        if speech.source not in ("align", "synth") or not speech.phonemes:
            raise InvalidOption("Could not align the text to the video's audio; pass --phonemes instead.")
        phonemes = speech.phonemes
    if isinstance(phonemes, (str, Path)):
        phonemes = load_phonemes(phonemes)
    path = Path(video_path)
    track = mouth_track(path, progress=progress)
    info = _probe(path)
    diff = None
    if info.get("video_duration") is not None and info.get("audio_duration") is not None:
        diff = 1000.0 * (float(info["video_duration"]) - float(info["audio_duration"]))
    psnr = psnr_outside_mouth(path, source_image) if source_image is not None else None
    return score(track, phonemes, video=path.name, duration_diff_ms=diff, psnr=psnr)


__all__ = ["Report", "evaluate", "score"]
