import pytest

import pipeline
from pipeline.errors import InvalidText
from pipeline.options import VoiceOptions


def test_piper_gives_audio_and_phoneme_times(speech):
    assert 1.5 < speech.duration < 4.0
    assert speech.audio.rate == 22050
    ph = speech.phonemes
    assert ph and ph[0].start == 0.0
    assert abs(ph[-1].end - speech.duration) < 0.02
    assert all(a.end <= b.start + 1e-6 for a, b in zip(ph, ph[1:]))
    symbols = [p.symbol for p in ph]
    assert symbols.count("p") >= 2 and "b" in symbols and "m" in symbols
    assert any(p.stress == 1 for p in ph)


def test_empty_and_long_text_are_refused():
    with pytest.raises(InvalidText, match="empty"):
        pipeline.synthesize("   ")
    with pytest.raises(InvalidText, match="empty"):
        pipeline.synthesize("?!")
    with pytest.raises(InvalidText, match="limit"):
        pipeline.synthesize("word " * 50, VoiceOptions(max_chars=100))


def test_speed_changes_duration():
    slow = pipeline.synthesize("Hello there.", VoiceOptions(speed=0.7))
    fast = pipeline.synthesize("Hello there.", VoiceOptions(speed=1.4))
    assert slow.duration > fast.duration * 1.5
