"""The streaming preview: speech parts through one render session, chunk files that decode
to exactly their own frames and audio, sentence-wise TTS, recordings by segment, cancel,
and the shared limit on live sessions."""

from __future__ import annotations

import subprocess
import threading
import time

import av
import numpy as np
import pytest

import pipeline
from pipeline import timing
from pipeline.export.chunks import chunk_seconds, stream_audio, write_chunk
from pipeline.live import LiveLimiter, TooManySessions
from pipeline.parts import PartPlanner
from pipeline.options import RenderOptions, VoiceOptions
from pipeline.phones import PAUSE
from pipeline.render import Cancelled, CancelToken, RenderSession
from pipeline.speech.stream import prefetched, recording_parts, sentence_pieces, speak_parts
from pipeline.types import AudioClip, Phoneme, Speech

VOICE = VoiceOptions(variation=0.0)  # the same audio every time
SCRIPT = "Hello there, my name is Avatar. I speak one sentence at a time! [pause 300ms] Does it work? Yes."


@pytest.fixture(scope="module")
def avatar():
    return pipeline.prepare_avatar(None)


def synthetic_part(seconds: float, rate: int = 16000, seed: int = 0) -> Speech:
    """A part with speech-like phones: silence, alternating /m/ and /a/, silence."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    audio = (0.2 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    audio += rng.normal(0, 1e-3, n).astype(np.float32)
    phones = [Phoneme(PAUSE, 0.0, 0.2)]
    at, k = 0.2, 0
    while at < seconds - 0.3:
        end = min(seconds - 0.2, at + 0.12)
        phones.append(Phoneme("m" if k % 2 else "a", at, end, 1 if k % 4 == 0 else 0))
        at, k = end, k + 1
    phones.append(Phoneme(PAUSE, at, seconds))
    return Speech(AudioClip(audio, rate), tuple(phones), source="piper")


def decode(path) -> tuple[list[av.VideoFrame], np.ndarray, int]:
    """Video frames (PyAV) and the audio as FFmpeg's command line decodes it (what Gradio reads)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        rate = c.streams.audio[0].rate
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vn", "-f", "s16le", "-ac", "1", "-"],
                         capture_output=True, check=True).stdout
    return frames, np.frombuffer(pcm, np.int16).astype(np.float32) / 32767.0, rate


# ---------------------------------------------------------------------------- planning


def test_parts_plan_the_whole_frame_count_with_no_drift_over_three_minutes():
    fps = 25.0
    planner = PartPlanner(RenderOptions(fps=fps))
    rng = np.random.default_rng(1)
    lengths = rng.uniform(1.3, 6.7, 60)  # ~240 s of sentences with lengths that round every way
    parts = [synthetic_part(float(s), seed=i) for i, s in enumerate(lengths)]
    planned = [planner.add(p) for p in parts] + [planner.finish()]
    total = sum(len(p.audio.samples) for p in parts) / 16000
    assert planner.duration == pytest.approx(total)
    assert sum(p.tracks.n_frames for p in planned) == round(total * fps)
    # consecutive: each part starts where the last one ended, and its audio is its frames' share
    at = 0
    for p in planned:
        assert p.first_frame == at
        at += p.tracks.n_frames
    audio = np.concatenate([p.audio.samples for p in planned])
    assert np.array_equal(audio, np.concatenate([p.audio.samples for p in parts]))
    # frame k of the whole is where its audio is: part boundaries fall on round(sample * fps / rate)
    ends = np.cumsum([len(p.audio.samples) for p in parts])
    for p, end in zip(planned[1:-1], ends):
        assert p.first_frame == int(np.floor(end * fps / 16000 + 1e-9))


def test_motion_and_mouth_run_on_across_part_boundaries():
    opts = RenderOptions(fps=25.0, head_motion=1.0, gaze=0.5)
    parts = [synthetic_part(s, seed=i) for i, s in enumerate((2.3, 1.7, 3.1, 2.2))]
    planner = PartPlanner(opts)
    planned = [planner.add(p) for p in parts] + [planner.finish()]
    boundaries = np.cumsum([p.tracks.n_frames for p in planned])[:-2]
    for name in ("yaw", "pitch", "roll", "jaw", "blink", "gaze"):
        track = np.concatenate([p.tracks.get(name) for p in planned if p.tracks.n_frames])
        steps = np.abs(np.diff(track))
        typical = np.percentile(steps, 99) + 1e-6
        for b in boundaries:  # the step into a part's first frame is no jump
            assert steps[b - 1] <= max(typical, 0.05) * 1.5, (name, b, steps[b - 1], typical)
    sway = np.concatenate([p.tracks.get("yaw") for p in planned])
    assert np.std(sway) > 0.3  # the head does move (intensity 1: about 1.8 degrees RMS)


def test_the_file_render_of_one_speech_is_unchanged(avatar):
    """A single Speech still goes through plan(): its chunks are the file's frames."""
    speech = synthetic_part(1.3)
    one = RenderSession(avatar, speech, RenderOptions(size=96))
    frames = [f for c in one.chunks(0.4, 0.2) for f in c.frames]
    again = list(RenderSession(avatar, speech, RenderOptions(size=96)).frames())
    assert len(frames) == len(again) == round(1.3 * 25)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))


# ---------------------------------------------------------------------------- session over parts


def test_a_session_over_parts_partitions_frames_and_audio_exactly(avatar, tmp_path):
    parts = [synthetic_part(s, seed=i) for i, s in enumerate((0.93, 1.41, 0.67))]
    session = RenderSession(avatar, iter(parts), RenderOptions(size=96))
    assert session.n_frames is None  # not known until the last part has come
    chunks = list(session.chunks(0.4, 0.2))
    total = sum(p.duration for p in parts)
    assert session.n_frames == round(total * 25) == sum(len(c.frames) for c in chunks)
    assert [len(c.frames) for c in chunks][:2] == [5, 10]
    audio = np.concatenate([c.audio.samples for c in chunks])
    assert np.array_equal(audio, np.concatenate([p.audio.samples for p in parts]))
    for c in chunks[:-1]:
        assert len(c.audio.samples) == len(c.frames) * 16000 // 25
    assert session.speech is not None and session.speech.duration == pytest.approx(total)
    # a file can be written from parts as well (the audio appended part by part)
    result = RenderSession(avatar, iter(parts), RenderOptions(size=96)).write(tmp_path / "parts.mp4")
    assert result.frames == session.n_frames and (tmp_path / "parts.mp4").is_file()


def test_cancel_stops_a_streamed_session_between_frames(avatar):
    token = CancelToken()
    parts = (synthetic_part(2.0, seed=i) for i in range(100))  # 200 s: far more than is rendered
    session = RenderSession(avatar, parts, RenderOptions(size=96), cancel=token)
    made = 0
    with pytest.raises(Cancelled):
        for chunk in session.chunks(0.4, 0.2):
            made += len(chunk.frames)
            if made > 20:
                token.cancel()
    assert session.frames_made < 60


def test_stop_ends_a_long_stream_within_a_second(avatar, tmp_path):
    token = CancelToken()
    text = " ".join(["This sentence is one of many in a long script that will not be finished."] * 40)
    preview = pipeline.stream_preview(avatar, pipeline.live_text_parts(text, VOICE), tmp_path,
                                      RenderOptions(size=96), cancel=token)
    it = iter(preview)
    next(it)
    t0 = time.perf_counter()
    token.cancel()
    with pytest.raises(Cancelled):
        for _ in it:
            pass
    assert time.perf_counter() - t0 < 1.0
    assert preview.stats.chunks < 20


# ---------------------------------------------------------------------------- chunk files


def test_stream_audio_units_hold_whole_samples_at_every_rate():
    from fractions import Fraction

    for fps in (24.0, 25.0, 30.0, 50.0, 29.97, 23.976):
        rate, unit = stream_audio(fps)
        f = timing.fps_fraction(fps)
        assert (Fraction(rate) * unit / f).denominator == 1, fps  # a unit of frames is whole samples
        assert 0.3 <= chunk_seconds(fps, 0.5, unit) <= 0.5 and 0.8 <= chunk_seconds(fps, 0.96, unit) <= 0.96
    assert stream_audio(25.0) == (32000, 1) and stream_audio(24.0) == (48000, 1)
    assert stream_audio(29.97) == (48000, 5)  # 8008 samples per 5 frames


@pytest.mark.parametrize("fps, rate, n", [(25.0, 32000, 24), (24.0, 48000, 23)])
def test_a_chunk_decodes_to_its_frames_and_exactly_its_audio(tmp_path, fps, rate, n):
    samples = round(n * rate / fps)  # 30720 at 25 fps, 46000 at 24: neither is whole AAC frames at 24
    t = np.arange(samples) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    yy, xx = np.mgrid[0:64, 0:80]
    colours = np.dstack([xx * 3, yy * 4, 255 - xx * 3]).astype(np.uint8)  # a colour ramp
    frames = [np.clip(colours.astype(int) + i, 0, 255).astype(np.uint8) for i in range(n)]
    path = write_chunk(tmp_path / "c.mp4", frames, AudioClip(audio, rate), fps)
    video, pcm, got_rate = decode(path)
    assert got_rate == rate and len(video) == n and video[0].key_frame and video[0].pts == 0
    assert video[0].colorspace == 5  # tagged BT.601 (SMPTE 170M), as converted
    back = video[5].to_ndarray(format="rgb24").astype(float)
    psnr = 10 * np.log10(255**2 / np.mean((back - frames[5]) ** 2))
    assert psnr > 30, psnr  # the colours come back (a wrong matrix costs ~20 dB here)
    assert len(pcm) == samples  # FFmpeg 5's command line (Gradio's) gets exactly the chunk's samples
    assert float(np.max(np.abs(pcm - audio))) < 1.5 / 32767  # lossless (FLAC), up to the 16-bit rounding


@pytest.mark.parametrize("fps", [25.0, 24.0])
def test_streamed_tts_chunks_concatenate_to_the_whole_with_no_gap_or_drift(avatar, tmp_path, fps):
    t0 = time.perf_counter()
    preview = pipeline.stream_preview(avatar, pipeline.live_text_parts(SCRIPT, VOICE), tmp_path,
                                      RenderOptions(size=128, fps=fps), started=t0)
    paths = list(preview)
    st = preview.stats
    speech = preview.session.speech
    rate = preview.rate
    assert st.first_chunk is not None and st.chunks == len(paths) >= 3
    n_video, audio, sizes = 0, [], []
    for k, path in enumerate(paths):
        video, pcm, got_rate = decode(path)
        assert got_rate == rate and video[0].key_frame
        assert [round(float(f.pts * f.time_base) * fps) for f in video] == list(range(len(video)))  # from 0, no gaps
        expected = len(video) * rate / fps
        if k < len(paths) - 1:
            assert len(pcm) == expected, (k, len(pcm), expected)  # audio length = frames / fps, exactly
        else:
            assert abs(len(pcm) - expected) <= 0.5 * rate / fps  # the last: to the end of the speech
        n_video += len(video)
        sizes.append(len(video))
        audio.append(pcm)
    assert sizes[:2] == ([12, 24] if fps == 25.0 else [12, 23])  # ~0.5 s, then just under 1 s
    assert n_video == round(speech.duration * fps) == preview.session.n_frames
    joined = np.concatenate(audio)
    assert len(joined) == len(speech.audio.samples)  # no drift at all: every sample, once
    # the audio is the speech, sample for sample (16-bit lossless): no gaps or shifts at the chunk joins
    assert float(np.max(np.abs(joined - speech.audio.samples))) < 2.0 / 32767


# ---------------------------------------------------------------------------- speech parts


def test_sentence_parts_join_to_the_whole_script():
    parts = list(speak_parts(SCRIPT, VOICE))
    whole = pipeline.synthesize(SCRIPT, VOICE)
    assert len(parts) == 4 and parts[0].text.startswith("Hello there")
    joined = np.concatenate([p.audio.samples for p in parts])
    assert np.array_equal(joined, whole.audio.samples)  # sentence pauses and the pause mark included
    assert all(p.phonemes and p.phonemes[-1].end <= p.duration + 1e-6 for p in parts)
    long = "This first sentence goes on for a while, with a comma, another comma, and it keeps going on and on. Next."
    spans = sentence_pieces(long)
    assert spans[0][1] - spans[0][0] <= 48 and long[spans[-1][0]:spans[-1][1]] == "Next."


def test_recording_parts_cover_the_recording_exactly():
    speech = pipeline.synthesize(
        "This is the first sentence of the recording, spoken slowly. [pause 700ms] And here is the second one, "
        "long enough to stand on its own. [pause 700ms] And a third one to finish the recording.", VOICE)
    parts = list(recording_parts(speech.audio, timing="acoustic"))
    assert len(parts) >= 2
    assert np.array_equal(np.concatenate([p.audio.samples for p in parts]), speech.audio.samples)
    assert all(p.phonemes is None and p.source == "acoustic" for p in parts)


def test_recording_parts_time_each_segment_as_the_whole_recording_does():
    """Phone timing without a transcript: the first segment timed on its own, the rest on the
    pool, gives each part the phones the recording's own segment timing gives it."""
    from pipeline.speech.segment_timing import iter_segments

    speech = pipeline.synthesize(
        "This is the first sentence of the recording, spoken slowly. [pause 700ms] And here is the second one, "
        "long enough to stand on its own. [pause 700ms] And a third one to finish the recording.", VOICE)
    clip = speech.audio
    parts = list(recording_parts(clip))
    whole = list(iter_segments(clip))
    assert len(parts) == len(whole) >= 2
    assert np.array_equal(np.concatenate([p.audio.samples for p in parts]), clip.samples)
    at = 0.0
    for part, seg in zip(parts, whole):
        assert part.source == "phones" and part.phonemes
        ours = [p.symbol for p in part.phonemes if p.symbol != PAUSE]
        theirs = [p.symbol for p in seg.phonemes if p.symbol != PAUSE and at <= 0.5 * (p.start + p.end) < at + part.duration]
        assert ours == theirs
        at += part.duration


def test_a_recording_streams_segment_by_segment(avatar, tmp_path):
    from pipeline.export.wav import write_wav

    speech = pipeline.synthesize(
        "This is the first sentence of the recording, spoken slowly. [pause 700ms] And here is the second one, "
        "long enough to stand on its own.", VOICE)
    wav = tmp_path / "speech.wav"
    write_wav(speech.audio, wav)
    preview = pipeline.stream_preview(avatar, pipeline.live_recording_parts(wav, timing="acoustic"), tmp_path / "out",
                                      RenderOptions(size=96))
    paths = list(preview)
    assert preview.session.planner.parts >= 2
    frames = sum(len(decode(p)[0]) for p in paths)
    assert frames == preview.session.n_frames == round(preview.session.speech.duration * 25)
    assert preview.session.speech.duration == pytest.approx(speech.duration, abs=0.01)


def test_prefetched_parts_keep_order_raise_errors_and_stop_with_the_consumer():
    made: list[int] = []

    def slow():
        for i in range(100):
            made.append(i)
            yield i

    it = prefetched(slow(), ahead=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    time.sleep(0.3)
    assert len(made) <= 7  # stopped a few parts after the consumer did

    def bad():
        yield 1
        raise pipeline.PipelineError("no voice")

    it = prefetched(bad())
    assert next(it) == 1
    with pytest.raises(pipeline.PipelineError, match="no voice"):
        next(it)


# ---------------------------------------------------------------------------- sessions


def test_live_limiter_refuses_past_the_limit_with_a_message():
    limiter = LiveLimiter(2)
    a = limiter.acquire("preview", "tab-1")
    with limiter.slot("mic", "tab-2"):
        with pytest.raises(TooManySessions, match="limit .*=2"):
            limiter.acquire("preview", "tab-3")
    b = limiter.acquire("preview", "tab-3")  # freed by the one that left
    a.release()
    a.release()  # twice is harmless
    assert limiter.active == 1
    b.release()


def test_two_streams_at_once_keep_their_own_outputs(avatar, tmp_path):
    results: dict[str, list] = {}

    def run(name: str, text: str) -> None:
        preview = pipeline.stream_preview(avatar, pipeline.live_text_parts(text, VOICE), tmp_path / name,
                                          RenderOptions(size=96))
        results[name] = [list(preview), preview.session.speech.duration]

    threads = [threading.Thread(target=run, args=("a", "Short one.")),
               threading.Thread(target=run, args=("b", "A somewhat longer second sentence, spoken here."))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    (pa, da), (pb, db) = results["a"], results["b"]
    assert da < db
    assert all(p.parent == tmp_path / "a" for p in pa) and all(p.parent == tmp_path / "b" for p in pb)
    assert sum(len(decode(p)[0]) for p in pa) == round(da * 25)
    assert sum(len(decode(p)[0]) for p in pb) == round(db * 25)
