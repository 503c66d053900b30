"""Each viseme pass on its own, then the whole chain."""

import numpy as np
import pytest

from pipeline.types import AudioClip, Phoneme, Speech
from pipeline import phones as inventory
from pipeline.visemes import build_mouth_tracks, passes

CH = passes.CH


def ph(sym, a, b, stress=0):
    return Phoneme(sym, a, b, stress)


def test_canonical_maps_ipa_arpabet_and_unknowns():
    assert inventory.canonical("AA1") == "ɑ"
    assert inventory.canonical("P") == "p"
    assert inventory.canonical("ɡ") == "g"
    assert inventory.canonical("ˈa") == "a"
    assert inventory.canonical(" ") == inventory.PAUSE
    assert inventory.canonical("☃") == "?"
    assert inventory.classify("☃").kind == "weak"  # neutral pose, no crash


def test_targets_bilabial_closed_and_open_vowel_open():
    keys = passes.targets([ph("p", 0, 0.1), ph("ɑ", 0.1, 0.3, stress=1)])
    assert keys[0].target[CH["gap"]] == 0 and keys[0].target[CH["press"]] == 1
    assert keys[1].target[CH["jaw"]] > 0.9
    assert keys[1].kind == "vowel" and keys[0].kind == "bilabial"


def test_pauses_merges_adjacent_and_weakens_short_word_gaps():
    keys = passes.targets(
        [ph("a", 0, 0.1), ph("_", 0.1, 0.15), ph("a", 0.15, 0.3), ph("_", 0.3, 0.35), ph("_", 0.35, 0.6), ph("a", 0.6, 0.7)]
    )
    out = passes.pauses(keys)
    assert [k.kind for k in out] == ["vowel", "weak", "vowel", "pause", "vowel"]
    assert out[3].start == 0.3 and out[3].end == 0.6


def test_coarticulation_blends_neighbours_but_reaches_long_targets():
    keys = passes.targets([ph("ɑ", 0.0, 0.3), ph("u", 0.3, 0.6)])
    curve = passes.coarticulate(keys, 0.6)
    jaw, rnd = curve[:, CH["jaw"]], curve[:, CH["round"]]
    t = np.arange(len(curve)) / passes.RATE
    assert jaw[np.searchsorted(t, 0.1)] > 0.9  # middle of a long /a/: its own target
    assert rnd[np.searchsorted(t, 0.5)] > 0.9
    # at the boundary the shapes are mixed, not switched
    mid = np.searchsorted(t, 0.3)
    assert 0.3 < jaw[mid] < 0.9 and 0.2 < rnd[mid] < 0.9


def test_bilabial_anticipation_starts_closing_before_the_phone():
    keys = passes.targets([ph("ɑ", 0.0, 0.3), ph("m", 0.3, 0.4), ph("ɑ", 0.4, 0.7)])
    curve = passes.coarticulate(keys, 0.7)
    t = np.arange(len(curve)) / passes.RATE
    press = curve[:, CH["press"]]
    assert press[np.searchsorted(t, 0.27)] > press[np.searchsorted(t, 0.15)] + 0.05


def test_smooth_is_zero_phase():
    x = np.zeros((200, passes.N_CH), np.float32)
    x[100] = 1.0
    y = passes.smooth(x)
    assert int(np.argmax(y[:, 0])) == 100
    assert abs(float(y[:, 0].sum()) - 1.0) < 0.05


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 50, 60])
def test_sample_closes_a_short_p_on_at_least_one_frame(fps):
    phones = [ph("ɑ", 0.0, 0.4), ph("p", 0.4, 0.42), ph("ɑ", 0.42, 0.8)]
    speech = Speech(AudioClip(np.zeros(int(0.8 * 16000), np.float32), 16000), tuple(phones))
    tracks = build_mouth_tracks(speech, fps)
    gap = tracks.get("gap")
    i = int(0.41 * fps)
    assert gap[max(0, i - 1) : i + 2].min() == 0.0
    assert tracks.n_frames == round(0.8 * fps)
    assert gap.max() > 0.5


def test_sample_opens_a_short_vowel_between_bilabials():
    phones = [ph("_", 0, 0.2), ph("b", 0.2, 0.28), ph("æ", 0.28, 0.32), ph("m", 0.32, 0.4), ph("_", 0.4, 0.8)]
    speech = Speech(AudioClip(np.zeros(16000, np.float32) , 16000), tuple(phones))
    gap = build_mouth_tracks(speech, 25).get("gap")
    vowel_frames = gap[int(0.28 * 25) - 1 : int(0.32 * 25) + 2]
    assert vowel_frames.max() > 0.5


def test_silence_is_closed():
    phones = [ph("_", 0, 0.5), ph("ɑ", 0.5, 0.8), ph("_", 0.8, 1.5)]
    speech = Speech(AudioClip(np.zeros(24000, np.float32), 16000), tuple(phones))
    gap = build_mouth_tracks(speech, 25).get("gap")
    assert gap[:10].max() == 0.0 and gap[-10:].max() == 0.0
    assert gap[13:20].max() > 0.6


def test_planned_closures_are_within_what_the_engine_seals():
    """Closed frames (gap 0) keep the jaw small enough that the warp engine shows the
    lips touching (it seals them over a little jaw), and their lips are pressed."""
    from pipeline.engines import warp

    phones = [ph("_", 0, 0.3), ph("ɑ", 0.3, 0.5), ph("m", 0.5, 0.58), ph("æ", 0.58, 0.8), ph("p", 0.8, 0.86),
              ph("ɑ", 0.86, 1.1), ph("b", 1.1, 1.16), ph("ʌ", 1.16, 1.4), ph("_", 1.4, 1.9)]
    speech = Speech(AudioClip(np.zeros(int(1.9 * 16000), np.float32), 16000), tuple(phones))
    tracks = build_mouth_tracks(speech, 25)
    jaw, gap, press = tracks.get("jaw"), tracks.get("gap"), tracks.get("press")
    shut = gap == 0.0
    assert shut[:5].all() and shut[-5:].all()
    for a, b in ((0.5, 0.58), (0.8, 0.86), (1.1, 1.16)):
        i = np.flatnonzero(shut[int(a * 25) - 1 : int(b * 25) + 2])
        assert len(i), (a, b)
        assert press[int(a * 25) - 1 + i].max() > 0.3  # pressed on the bilabial
    W = 100.0
    for j in jaw[shut]:
        jaw_px, held, _ = warp.lip_opening(W, float(j), 0.0)
        assert jaw_px - held == pytest.approx(0.0, abs=1e-4)


def test_acoustic_fallback_follows_loudness_and_gates_noise():
    rate = 16000
    t = np.arange(int(2.0 * rate)) / rate
    rng = np.random.default_rng(0)
    x = 0.003 * rng.standard_normal(len(t))  # quiet noise floor
    burst = (t > 0.5) & (t < 1.2)
    x[burst] += 0.5 * np.sin(2 * np.pi * 220 * t[burst]) * np.sin(np.pi * (t[burst] - 0.5) / 0.7)
    speech = Speech(AudioClip(x.astype(np.float32), rate), None)
    tr = build_mouth_tracks(speech, 25)
    jaw = tr.get("jaw")
    assert jaw[:10].max() < 0.05  # noise does not move the mouth
    assert jaw[18:28].max() > 0.4  # the loud part opens it
    assert jaw[-15:].max() < 0.05


def test_recognised_phones_in_noise_are_gated_to_pauses():
    from pipeline.visemes.acoustic import gate_phonemes

    rate = 16000
    t = np.arange(2 * rate) / rate
    x = 0.002 * np.random.default_rng(1).standard_normal(len(t))
    loud = (t > 1.0) & (t < 1.6)
    x[loud] += 0.4 * np.sin(2 * np.pi * 180 * t[loud])
    phones = (Phoneme("b", 0.1, 0.3), Phoneme("ɑ", 0.3, 0.6), Phoneme("m", 1.0, 1.1), Phoneme("ɑ", 1.1, 1.5))
    gated = gate_phonemes(phones, AudioClip(x.astype(np.float32), rate))
    assert [p.symbol for p in gated] == ["_", "m", "ɑ"]
    assert gated[0].start == 0.1 and gated[0].end == 0.6


def test_held_music_without_voice_does_not_move_the_mouth():
    rate = 16000
    t = np.arange(int(3.0 * rate)) / rate
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0))
    x = chord.astype(np.float32)
    voiced = (t > 1.0) & (t < 2.0)  # a "voice": a vowel-like buzz that starts and stops
    syll = (np.sin(2 * np.pi * 4 * t) > 0) & voiced
    x[syll] += (0.3 * np.sign(np.sin(2 * np.pi * 130 * t[syll])) * np.hanning(syll.sum())).astype(np.float32)
    speech = Speech(AudioClip(x, rate), None)
    jaw = build_mouth_tracks(speech, 25).get("jaw")
    assert jaw[:20].max() < 0.15 and jaw[-20:].max() < 0.15  # chord alone: mouth still
    assert jaw[27:48].max() > 0.3  # the voice over it opens the mouth


def test_a_vowel_squeezed_between_bilabials_still_opens_one_frame():
    """Fast speech: a 15 ms /æ/ whose only frame (10, 0.40-0.44 s) belongs to the /m/ closure
    after it; the /m/ keeps frames 11-12, so frame 10 is borrowed and opened."""
    from pipeline.types import AudioClip, Phoneme, Speech

    phones = (
        Phoneme("_", 0.0, 0.3), Phoneme("b", 0.3, 0.4), Phoneme("æ", 0.4, 0.415), Phoneme("m", 0.415, 0.6),
        Phoneme("u", 0.6, 0.8), Phoneme("_", 0.8, 1.2),
    )
    speech = Speech(AudioClip(np.zeros(19200, np.float32), 16000), phones, source="piper")
    gap = build_mouth_tracks(speech, 25.0).get("gap")
    assert gap[10] >= 0.4  # the vowel opens on a frame of its own
    assert gap[7] == gap[8] == 0.0 and gap[11] == gap[12] == 0.0  # both bilabials still close


def test_frames_with_touching_lips_never_ask_for_an_open_jaw():
    curve = np.zeros((400, len(passes.CH)), np.float32)
    curve[:, passes.CH["jaw"]] = 0.47  # e.g. a loudness-driven opening over a recognised pause
    frames = passes.sample(curve, 25.0, 50)
    assert frames[:, passes.CH["gap"]].max() == 0.0
    assert frames[:, passes.CH["jaw"]].max() <= passes.TOUCHING_JAW


@pytest.mark.parametrize("rate", [22050, 44100])
def test_silence_closures_stay_on_time_late_in_a_long_clip(rate):
    """Silence closures are placed in seconds of the clip at its own sample rate: at
    22.05 kHz a 5 ms analysis hop is 110 samples (4.99 ms), and counting hops as 5 ms put
    the closure 0.11 s late after 50 s, over the next word's opening."""
    from pipeline.visemes import build

    t = np.arange(int(60.0 * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    x[int(50.0 * rate) : int(50.6 * rate)] = 0.0
    cl = [c for c in build.silent_closures(AudioClip(x, rate)) if c.start > 1.0]
    assert len(cl) == 1
    assert cl[0].start == pytest.approx(50.0 + build.SILENT_SETTLE_S, abs=0.01)
    assert cl[0].end == pytest.approx(50.6 - build.SILENT_MARGIN_S, abs=0.01)


def test_the_lips_close_after_the_last_word_however_short_the_pause():
    """A recording that ends 0.1 s after its last vowel: the final pause is shorter than a
    word gap that closes the mouth, but nothing follows it, so the lips come to rest."""
    phones = [ph("_", 0, 0.05), ph("ɑ", 0.05, 0.5), ph("_", 0.5, 0.6)]
    speech = Speech(AudioClip(np.full(int(0.6 * 16000), 0.1, np.float32), 16000), tuple(phones))
    gap = build_mouth_tracks(speech, 25).get("gap")
    assert gap[-1] == 0.0
    assert gap[5:11].max() > 0.5
    inner = [ph("ɑ", 0.0, 0.5), ph("_", 0.5, 0.6), ph("ɑ", 0.6, 1.0)]  # the same gap between words stays open
    speech = Speech(AudioClip(np.full(16000, 0.1, np.float32), 16000), tuple(inner))
    assert build_mouth_tracks(speech, 25).get("gap")[13:15].min() > 0.0
