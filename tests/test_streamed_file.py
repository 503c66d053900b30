"""A file written while the script is still being spoken: the writer opens with the first
part's audio and each later part's audio is appended before its frames."""

from __future__ import annotations

import av
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.export import open_writer
from pipeline.export.threaded import ThreadedWriter
from pipeline.options import ExportOptions, RenderOptions, VoiceOptions
from pipeline.render import RenderSession, session_for, streams_to_file
from pipeline.request import RenderRequest, VoiceSource
from pipeline.types import AudioClip

SCRIPT = "Hello there. This is the second sentence, a little longer. [pause 400ms] And a third one."


def _decode(path) -> tuple[int, np.ndarray, int]:
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio, rate


@pytest.mark.parametrize("fmt", ["mp4", "mov"])
def test_appended_audio_equals_audio_given_at_once(tmp_path, fmt):
    rate, fps = 22050, 25
    rng = np.random.default_rng(1)
    samples = (0.3 * rng.standard_normal(int(2.0 * rate))).astype(np.float32)
    cuts = [0, 7000, 7001, 30000, len(samples)]
    frame = np.full((64, 64, 3), 128, np.uint8)
    outs = {}
    for mode in ("whole", "parts"):
        out = tmp_path / f"{mode}.{fmt}"
        first = samples if mode == "whole" else samples[: cuts[1]]
        with ThreadedWriter(open_writer(out, 64, 64, fps, AudioClip(first, rate), ExportOptions(format=fmt))) as w:
            for k in range(50):
                if mode == "parts" and k in (1, 20, 30):  # later audio, before the frames it belongs to
                    i = (1, 20, 30).index(k) + 1
                    w.extend_audio(AudioClip(samples[cuts[i] : cuts[i + 1]], rate))
                w.write(frame)
        outs[mode] = _decode(out)
    assert outs["whole"][0] == outs["parts"][0] == 50
    a, b = outs["whole"][1], outs["parts"][1]
    assert len(a) == len(b) and np.array_equal(a, b)


def test_a_streamed_tts_file_has_the_whole_speech_and_a_frame_per_frame_time(tmp_path):
    voice = VoiceOptions(variation=0.0)  # the same audio every time
    request = RenderRequest(voice=VoiceSource(text=SCRIPT, voice=voice), render=RenderOptions(size=128))
    from pipeline import sources

    sources._SPEECH.clear()
    streamed = session_for(request, stream_speech=True)
    assert streamed.speech is None and streamed.planner is not None  # spoken while it renders
    result = streamed.write(tmp_path / "streamed.mp4")
    assert streamed.speech is not None
    whole = session_for(request)
    whole_result = whole.write(tmp_path / "whole.mp4")
    assert session_for(request, stream_speech=True).speech is whole.speech  # said before (a preview): reused
    np.testing.assert_array_equal(streamed.speech.audio.samples, whole.speech.audio.samples)
    assert result.frames == whole_result.frames == round(whole.speech.duration * 25)
    frames, audio, _ = _decode(tmp_path / "streamed.mp4")
    _, whole_audio, _ = _decode(tmp_path / "whole.mp4")
    assert frames == result.frames
    np.testing.assert_array_equal(audio, whole_audio)  # the same AAC stream, appended part by part


def test_formats_that_need_the_whole_speech_take_it_whole(tmp_path, avatar, speech):
    assert streams_to_file(ExportOptions(format="mp4")) and streams_to_file(ExportOptions(format="webm"))
    assert not streams_to_file(ExportOptions(subtitles="srt"))
    assert not streams_to_file(ExportOptions(format="gif")) and not streams_to_file(ExportOptions(format="wav"))
    request = RenderRequest(voice=VoiceSource(text=SCRIPT), export=ExportOptions(subtitles="srt"))
    session = session_for(request, stream_speech=True)
    assert session.speech is not None  # subtitles need the script's word times first
    session.close()
    parts = RenderSession(avatar, iter([speech]), RenderOptions(size=128))
    with pytest.raises(PipelineError, match="needs the whole speech"):
        parts.write(tmp_path / "x.gif", ExportOptions(format="gif"))
    assert not (tmp_path / "x.gif").exists()


def test_a_prefetch_nobody_reads_stops_its_producer_when_closed():
    import threading
    import time

    from pipeline.speech.stream import prefetched

    made = []

    def parts():
        for i in range(100):
            made.append(i)
            yield i

    before = threading.active_count()
    it = prefetched(parts(), ahead=2, name="test-prefetch")
    time.sleep(0.3)
    it.close()  # never iterated (the face was refused, say)
    deadline = time.monotonic() + 3.0
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before and len(made) <= 4
