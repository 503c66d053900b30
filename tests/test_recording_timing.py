"""Timing of recordings per speech segment: segmentation, joining, streaming order,
parallel workers, and the bilabials it finds (tiny generated speech, no network)."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline
from pipeline.options import RenderOptions, VoiceOptions
from pipeline.phones import PAUSE
from pipeline.quality.measure import MouthTrack, planned_track
from pipeline.quality.metrics import bilabial_closure, open_vowel_rate
from pipeline.speech import recording, segment_phones, segment_timing, segments, workers
from pipeline.types import AudioClip, Phoneme, Speech

SENTENCES = (
    "Peter bought a bamboo map for Bob.",
    "My mother made some lemon pie by the pool.",
    "Please pass the apples, Mom, and maybe a bottle of water.",
)
GAP_S = 0.6


def _concat(parts: list[Speech], gap: float = GAP_S) -> tuple[Speech, list[tuple[float, float]]]:
    """One Speech from ``parts`` with ``gap`` s of silence between them; also the
    (start, end) of each inserted silence."""
    rate = parts[0].audio.rate
    audio: list[np.ndarray] = []
    phones: list[Phoneme] = []
    silences: list[tuple[float, float]] = []
    t = 0.0
    for i, s in enumerate(parts):
        if i:
            audio.append(np.zeros(int(round(gap * rate)), np.float32))
            silences.append((t, t + gap))
            phones.append(Phoneme(PAUSE, t, t + gap))
            t += gap
        audio.append(s.audio.samples)
        phones += [Phoneme(p.symbol, p.start + t, p.end + t, p.stress) for p in s.phonemes or ()]
        t += s.duration
    return Speech(AudioClip(np.concatenate(audio), rate), tuple(phones)), silences


@pytest.fixture(scope="module")
def three() -> tuple[Speech, list[tuple[float, float]]]:
    """Three Piper sentences with 0.6 s of silence between them (~9 s)."""
    return _concat([pipeline.synthesize(s) for s in SENTENCES])


@pytest.fixture()
def two_workers(monkeypatch):
    monkeypatch.setenv(workers.WORKERS_ENV, "2")
    yield
    workers.shutdown()


def _no_overlap_cover(phones: tuple[Phoneme, ...], duration: float) -> None:
    assert phones[0].start == pytest.approx(0.0, abs=1e-6)
    assert phones[-1].end == pytest.approx(duration, abs=1e-3)
    for a, b in zip(phones, phones[1:]):
        assert a.end == pytest.approx(b.start, abs=1e-6), (a, b)  # ordered, no gap, no overlap
        assert b.end > b.start


def test_segments_are_cut_in_the_silences_only(three):
    sp, silences = three
    spans = segments.split(sp.audio)
    assert len(spans) >= len(SENTENCES)  # natural pauses (commas) may cut too
    db = segments.frame_db(sp.audio)
    loud = float(np.percentile(db, 95))
    for s in spans:
        assert s.start <= s.speech_start < s.speech_end <= s.end
        assert s.speech_end - s.speech_start >= segments.MIN_SEGMENT_S - 0.2
        # the audio at and just inside every cut is silent (>45 dB below the speech)
        for t in (s.start, s.end, s.start + 0.02, s.end - 0.02):
            k = min(len(db) - 1, int(t / segments.FRAME_S))
            if 0.05 < t < sp.duration - 0.05:
                assert db[k] < loud - 45, t
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    # each inserted silence separates two segments
    for lo, hi in silences:
        assert any(lo - 1e-6 <= a.end <= b.start <= hi + 1e-6 for a, b in zip(spans, spans[1:]))
    # no speech is left outside the segments
    speech_frames = np.flatnonzero(db > loud - 30) * segments.FRAME_S
    assert all(any(s.start <= t <= s.end for s in spans) for t in speech_frames)


def test_long_speech_without_pauses_is_split_at_its_quietest_gaps():
    rng = np.random.default_rng(0)
    rate = 16000
    syll = int(0.18 * rate)
    gap = int(0.07 * rate)
    pieces = []
    for _ in range(70):  # ~17.5 s of "syllables" with 70 ms gaps, no pause >= 0.2 s
        pieces.append((0.3 * np.sin(np.linspace(0, 2 * np.pi * 40, syll)) * np.hanning(syll)).astype(np.float32))
        pieces.append((1e-4 * rng.standard_normal(gap)).astype(np.float32))
    clip = AudioClip(np.concatenate(pieces), rate)
    spans = segments.split(clip)
    assert len(spans) >= 3
    assert max(s.speech_end - s.speech_start for s in spans) <= segments.MAX_SEGMENT_S + 1e-6
    db = segments.frame_db(clip)
    for a, b in zip(spans, spans[1:]):
        k = int(round(0.5 * (a.speech_end + b.speech_start) / segments.FRAME_S))
        assert db[k] < db.max() - 40  # the cut is in a gap, not in a syllable


def test_joined_phones_are_ordered_and_offset_by_their_segment(three):
    sp, silences = three
    clip = sp.audio
    segs = list(segment_timing.iter_segments(clip, parallel=False))
    assert len(segs) >= len(SENTENCES)
    clip16 = segment_timing._to_16k(clip)
    for s in segs:
        alone = segment_phones.time_segment(clip16.slice(s.start, s.end).samples)
        shifted = [(p.symbol, round(p.start + s.start, 4), round(min(p.end + s.start, s.end), 4)) for p in alone]
        got = [(p.symbol, round(p.start, 4), round(p.end, 4)) for p in s.phonemes]
        assert got == [x for x in shifted if x[2] > x[1]]
        assert s.start <= s.phonemes[0].start and s.phonemes[-1].end <= s.end + 1e-6
    phones, words, source = segment_timing.join(segs, clip.duration)
    assert source == "phones" and words == ()
    _no_overlap_cover(phones, clip.duration)
    # between segments: one pause covering the inserted silence
    for lo, hi in silences:
        mid = [p for p in phones if p.start <= 0.5 * (lo + hi) < p.end]
        assert mid[0].symbol == PAUSE and mid[0].start <= lo + 0.25 and mid[0].end >= hi - 0.25


def test_the_first_segment_comes_before_later_ones_are_analysed(three, monkeypatch):
    sp, _ = three
    calls: list[int] = []
    real = segment_phones.time_segment

    def counted(samples):
        calls.append(len(samples))
        return real(samples)

    monkeypatch.setattr(segment_phones, "time_segment", counted)
    gen = segment_timing.iter_segments(sp.audio, parallel=False)
    first = next(gen)
    assert len(calls) == 1  # only the first segment has been analysed
    assert first.start == pytest.approx(0.0, abs=0.25) and first.end < sp.duration / 2
    assert any(p.symbol in "pbm" for p in first.phonemes)
    rest = list(gen)
    assert len(calls) == len(rest) + 1 >= len(SENTENCES)


def test_parallel_workers_stream_in_order_and_agree_with_serial(three, two_workers):
    sp, _ = three
    long, _ = _concat([sp, sp, sp], gap=0.8)
    n = len(segments.split(segment_timing._to_16k(long.audio)))  # what iter_segments cuts
    assert n >= 9
    serial = recording.time_clip(long.audio, parallel=False)
    pool = workers.get_pool()
    assert pool is not None and pool.size == 2
    done_before = pool.completed
    gen = segment_timing.iter_segments(long.audio, parallel=True)
    first = next(gen)
    # the first segment is out while most of the others are not analysed yet
    assert pool.completed - done_before < n - 2
    segs = [first, *gen]
    assert [s.start for s in segs] == sorted(s.start for s in segs) and len(segs) == n
    phones, _, source = segment_timing.join(segs, long.duration)
    assert source == "phones"
    assert phones == serial.phonemes
    # a worker that dies is replaced; the result does not change
    for p in list(pool._procs):
        if p is not None:
            p.proc.kill()
    again = recording.time_clip(long.audio, parallel=True)
    assert again.phonemes == serial.phonemes


def _plan_track(speech: Speech, fps: float = 25.0) -> MouthTrack:
    return planned_track(pipeline.plan(speech, RenderOptions(fps=fps, blinks=False, head_motion=0.0, brows=0.0)))


@pytest.mark.parametrize("voice,closed_min", [("en_US-joe-medium", 0.84), ("espeak:en-us", 0.92)])
def test_bilabials_of_generated_speech_are_closed_without_a_transcript(voice, closed_min):
    """(Piper's audio varies from run to run: its threshold leaves room for that.)"""
    parts = [pipeline.synthesize(s, VoiceOptions(voice=voice)) for s in SENTENCES]
    truth, _ = _concat(parts)
    timed = recording.time_clip(truth.audio, parallel=False)
    assert timed.source == "phones"
    _no_overlap_cover(timed.phonemes, truth.duration)
    tr = _plan_track(timed)
    closed = bilabial_closure(tr, truth.phonemes, level=0.01)
    opened = open_vowel_rate(tr, truth.phonemes, level=0.1)
    assert closed.count >= 25 and closed.rate >= closed_min, closed.misses
    assert opened.rate >= 0.85, opened.misses


def test_load_speech_times_a_file_per_segment(three, tmp_path):
    from pipeline.media.audio import save_wav

    sp, _ = three
    wav = save_wav(sp.audio, tmp_path / "three.wav")
    out = pipeline.load_speech(wav)
    assert out.source == "phones" and out.words == ()
    assert out.duration == pytest.approx(sp.duration, abs=1e-3)
    _no_overlap_cover(out.phonemes, out.duration)
    assert sum(p.symbol in "pbm" for p in out.phonemes) >= 20


def test_a_transcript_is_aligned_whole_and_cut_at_the_segments(three):
    sp, _ = three
    text = " ".join(SENTENCES)
    whole = recording.align_transcript(sp.audio, text, "align")
    assert whole is not None
    segs = list(segment_timing.iter_segments(sp.audio, text=text, timing="align"))
    assert len(segs) >= len(SENTENCES)
    assert [w.text for s in segs for w in s.words] == [w.text for w in whole[1]]
    assert [w.text for w in segs[0].words] == ["peter", "bought", "a", "bamboo", "map", "for", "bob"]
    phones, words, source = segment_timing.join(segs, sp.duration)
    assert source == "align" and [w.text for w in words] == [w.text for w in whole[1]]
    spoken = [p for p in phones if p.symbol != PAUSE]
    assert [(p.symbol, p.start) for p in spoken] == [(p.symbol, p.start) for p in whole[0] if p.symbol != PAUSE]


def test_other_languages_and_acoustic_mode_have_no_phones(three):
    sp, _ = three
    segs = list(segment_timing.iter_segments(sp.audio, language="de"))
    assert len(segs) >= len(SENTENCES) and all(s.phonemes is None and s.source == "acoustic" for s in segs)
    assert segment_timing.join(segs, sp.duration)[0] is None
    assert recording.time_clip(sp.audio, timing="acoustic").phonemes is None
    silent = AudioClip(np.zeros(16000, np.float32), 16000)
    assert list(segment_timing.iter_segments(silent)) == []


def test_closure_classifier_hears_bilabials_and_silence():
    from pipeline.media.audio import resample
    from pipeline.speech import bilabial

    assert bilabial.available()
    sp = pipeline.synthesize("Bob made my maple pie.", VoiceOptions(voice="espeak:en-us"))
    x = resample(sp.audio, bilabial.SR).samples
    prob = bilabial.probabilities(x)
    assert prob.shape == (int(np.ceil(len(x) / bilabial.HOP)) + 1, 3)
    assert np.allclose(prob.sum(1), 1.0, atol=1e-5)
    t = np.arange(len(prob)) * bilabial.FRAME_S
    heard = 0
    bil = [p for p in sp.phonemes if p.symbol in "pbm"]
    for p in bil:
        near = (t >= p.start - 0.05) & (t < p.end + 0.02)
        heard += float(prob[near, 1].max()) >= 0.5
    assert heard >= len(bil) - 1
    vowels = [p for p in sp.phonemes if p.symbol in ("eɪ", "aɪ", "ɑ", "æ") and p.end - p.start > 0.06]
    mids = [int(round(0.5 * (p.start + p.end) / bilabial.FRAME_S)) for p in vowels]
    assert vowels and all(prob[k, 1] < 0.5 for k in mids)
    padded = np.concatenate([np.zeros(4000, np.float32), x, np.zeros(4000, np.float32)])
    ps = bilabial.probabilities(padded)[:, 2]
    # the silence around it (up to 60 ms from the speech: the network sees +-100 ms around a frame)
    assert ps[3:19].min() > 0.8 and ps[-19:-3].min() > 0.8
    assert float(np.median(ps[30:-30])) < 0.1


def test_a_task_error_in_a_worker_reaches_the_caller(two_workers):
    from pipeline.speech import align

    fut = workers.submit("pipeline.speech.align:align", AudioClip(np.zeros(16000, np.float32), 16000), "")
    assert fut is not None
    with pytest.raises(align.AlignmentFailed, match="no words"):
        fut.result(timeout=60)
    with pytest.raises(ValueError, match="not a pipeline task"):
        workers.submit("os:getcwd").result(timeout=60)


def test_a_long_closure_keeps_its_release_also_after_a_pause():
    """"..., the big": the recogniser runs the voiced "the" into the /b/ after a pause; the
    closure keeps its last LONG_CLOSURE_S and the voiced part before it opens (a neutral
    vowel). A silent closure (the lips already shut in the pause) stays whole."""
    from pipeline.visemes import passes

    level = np.zeros(int(2.0 * passes.RATE))
    level[int(0.50 * passes.RATE) : int(0.75 * passes.RATE)] = 0.8  # voiced from 0.50 s ...
    level[int(0.90 * passes.RATE) :] = 0.8  # ... and again after the second closure's silence
    heard = (Phoneme(PAUSE, 0.0, 0.5), Phoneme("b", 0.5, 0.66), Phoneme("ɪ", 0.66, 0.75),
             Phoneme("p", 0.75, 0.9), Phoneme("ɑ", 0.9, 1.1), Phoneme(PAUSE, 1.1, 2.0))
    out = segment_phones._release_part(heard, level)
    keep = segment_phones.LONG_CLOSURE_S
    assert [p.symbol for p in out] == [PAUSE, "ə", "b", "ɪ", "p", "ɑ", PAUSE]
    assert out[1].start == 0.5 and out[2].start == pytest.approx(0.66 - keep) and out[2].end == 0.66
    assert (out[4].start, out[4].end) == (0.75, 0.9)  # silent before its release: all closed


def test_a_long_closure_keeps_what_the_classifier_hears_closed():
    """"same improvements": the recogniser's m, i, m p merge into one long closure; the
    classifier hears the first /m/ closed and the vowel open, so only the vowel gives way
    (not the whole front, which would show the first /m/ open)."""
    from pipeline.speech import bilabial
    from pipeline.visemes import passes

    level = np.full(int(1.0 * passes.RATE), 0.8)
    pb = np.zeros(int(1.0 / bilabial.FRAME_S))
    pb[50:58] = 0.95  # 0.50-0.58 s closed: the first /m/
    heard = (Phoneme("e", 0.3, 0.5), Phoneme("m", 0.5, 0.75), Phoneme("ɹ", 0.75, 0.9), Phoneme(PAUSE, 0.9, 1.0))
    out = segment_phones._release_part(heard, level, pb)
    assert [p.symbol for p in out] == ["e", "m", "ə", "m", "ɹ", PAUSE]
    assert out[1].start == 0.5 and out[1].end == pytest.approx(0.575)
    assert out[3].start == pytest.approx(0.75 - segment_phones.LONG_CLOSURE_S) and out[3].end == 0.75
    pb[50:67] = 0.95  # heard closed all the way to the release: one real long closure ("some messages")
    assert [p.symbol for p in segment_phones._release_part(heard, level, pb)] == ["e", "m", "ɹ", PAUSE]
    assert [p.symbol for p in segment_phones._release_part(heard, level)] == ["e", "ə", "m", "ɹ", PAUSE]


def test_a_silent_stop_closure_inside_speech_stays_closed_and_bursts_at_its_end():
    """"with payments": the recogniser hears the /p/, the classifier only the silence of its
    closure; the /p/ stays (not a pause, not a /d/) and holds until its burst."""
    from pipeline.speech import bilabial
    from pipeline.visemes import acoustic

    n = 100
    prob = np.zeros((n, 3))
    prob[:, 0] = 1.0
    prob[42:48, 0], prob[42:48, 2] = 0.05, 0.95  # 0.42-0.48 s silent
    prob[60:, 0], prob[60:, 2] = 0.0, 1.0
    heard = (Phoneme("ð", 0.3, 0.42), Phoneme("p", 0.42, 0.48), Phoneme("e", 0.48, 0.6), Phoneme(PAUSE, 0.6, 1.0))
    active = np.arange(100) < 60
    kept = segment_phones._silences(heard, prob, active)
    assert [p.symbol for p in kept] == ["ð", "p", "e", PAUSE]
    lone = (Phoneme(PAUSE, 0.0, 0.42), Phoneme("p", 0.42, 0.48), Phoneme("e", 0.48, 0.6), Phoneme(PAUSE, 0.6, 1.0))
    # after a pause, the silence is the pause's
    assert segment_phones._stop_closure(heard, 1) and not segment_phones._stop_closure(lone, 1)
    x = np.zeros(16000, np.float32)
    an = acoustic.analyse(AudioClip(x, 16000))
    out = segment_phones._closures(kept, prob[:, 1], an, prob[:, 2])
    p = next(q for q in out if q.symbol == "p")
    assert p.start == 0.42 and p.end == pytest.approx(0.48 + 0.06 / 3)  # the lips part at 0.48, the burst
    no_silence = segment_phones._closures(kept, prob[:, 1], an)  # without the silence probability
    assert [q.symbol for q in no_silence][:3] == ["ð", "d", "e"]
    assert bilabial.FRAME_S == 0.01


def test_a_recognised_n_before_a_heard_closure_is_an_m():
    """"team replaced": the classifier hears the /m/'s closure just after the recogniser's /n/ ends
    (within NASAL_AFTER_S), where no recognised bilabial explains it."""
    from pipeline.visemes import acoustic

    pb = np.zeros(100)
    pb[36] = 0.5  # 20 ms after the /n/
    heard = (Phoneme("i", 0.2, 0.3), Phoneme("n", 0.3, 0.34), Phoneme("ɹ", 0.34, 0.45), Phoneme(PAUSE, 0.45, 1.0))
    an = acoustic.analyse(AudioClip(np.zeros(16000, np.float32), 16000))
    assert [p.symbol for p in segment_phones._closures(heard, pb, an)][1] == "m"
    pb[36] = 0.0
    pb[40] = 0.5  # 60 ms after: another consonant's business
    assert [p.symbol for p in segment_phones._closures(heard, pb, an)][1] == "n"
    pb[40], pb[36] = 0.0, 0.5
    # "in Boston": the recognised /b/ explains the closure
    before_b = heard[:2] + (Phoneme("b", 0.34, 0.4), Phoneme("ɑ", 0.4, 0.45), heard[3])
    assert [p.symbol for p in segment_phones._closures(before_b, pb, an)][1] == "n"


def test_a_long_recognised_bilabial_keeps_a_second_closure_the_classifier_leans_to():
    """"team _ improved": the recogniser hears m, m, p in a row (the word-final /m/, the
    pause, the /ɪ/ and the next /m p/), the merge makes one 250 ms closure and the trim
    would keep only its most closed 80 ms. The classifier leans to the first /m/ too
    (0.4), so it stays closed, with the vowel between them; a part it does not lean to
    (a vowel the recogniser ran the bilabial into) still opens."""
    from pipeline.visemes import passes

    level = np.full(int(1.0 * passes.RATE), 0.8)
    pb = np.zeros(100)
    pb[37:40] = 0.4  # the first /m/, 0.37-0.40 s
    pb[52:60] = 0.9  # "mp", 0.52-0.60 s
    p = Phoneme("m", 0.35, 0.6)
    out = segment_phones._trim(p, pb, 0.01, level)
    assert [q.symbol for q in out] == ["m", "ə", "m"]
    assert out[0].start == pytest.approx(0.35) and 0.39 <= out[0].end <= 0.42  # around the first /m/
    assert (out[2].start, out[2].end) == (pytest.approx(0.52), pytest.approx(0.6))
    pb[37:40] = 0.1  # leaning too little: one closure, the rest opens
    assert [q.symbol for q in segment_phones._trim(p, pb, 0.01, level)] == ["ə", "m"]


def test_segments_of_a_long_clip_at_22k_are_cut_where_its_silences_are():
    """Segment times count the energy frames' true hop (220 samples at 22.05 kHz are
    9.98 ms, not 10): after 50 s the cut is still inside the silence."""
    rate = 22050
    t = np.arange(int(60.0 * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    for a in np.arange(5.0, 56.0, 5.0):  # a pause every 5 s
        x[int(a * rate) : int((a + 0.6) * rate)] = 0.0
    spans = segments.split(AudioClip(x, rate))
    ends = [s.speech_end for s in spans]
    starts = [s.speech_start for s in spans]
    assert any(abs(e - 50.0) < 0.015 for e in ends), ends
    assert any(abs(s - 50.6) < 0.015 for s in starts), starts
