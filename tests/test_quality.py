"""pipeline.quality: the metrics on hand-made tracks with exact answers, then on real
renders of the project's own engine (in memory and from an MP4 file)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

import pipeline
from pipeline import timing
from pipeline.errors import UnsupportedMedia
from pipeline.quality import (
    MouthTrack,
    Report,
    av_offset,
    bilabial_closure,
    closed_level,
    drift,
    evaluate,
    expected_openness,
    landmark_jitter,
    load_phonemes,
    lower_face_mask,
    mouth_track,
    mouth_track_frames,
    open_level,
    open_vowel_rate,
    psnr_outside_mouth,
    save_phonemes,
    score,
)
from pipeline.quality.metrics import expected_per_frame
from pipeline.types import Phoneme

FPS = 25.0


def make_track(gap, fps: float = FPS, stable=None) -> MouthTrack:
    gap = np.asarray(gap, np.float64)
    n = len(gap)
    if stable is None:
        stable = np.zeros((n, 7, 2), np.float32)
    return MouthTrack(
        times=timing.frame_times(n, fps),
        gap=gap,
        stable=np.asarray(stable, np.float32),
        mouth_width=np.full(n, 40.0),
        size=(64, 64),
        end=float(timing.frame_start(n, fps)),
    )


# Phones on 40 ms frame boundaries: frame i is on screen from i/25 to (i+1)/25.
HAND_PHONES = [
    Phoneme("_", 0.00, 0.20),  # frames 0-4
    Phoneme("p", 0.20, 0.28),  # 5-6
    Phoneme("ɑ", 0.28, 0.48),  # 7-11
    Phoneme("m", 0.48, 0.56),  # 12-13
    Phoneme("i", 0.56, 0.76),  # 14-18
    Phoneme("b", 0.76, 0.84),  # 19-20
    Phoneme("æ", 0.84, 1.04),  # 21-25
    Phoneme("_", 1.04, 1.40),  # 26-34
]
HAND_GAP = [0.01] * 5 + [0.0] * 2 + [0.30] * 5 + [0.0] * 2 + [0.15] * 5 + [0.09] * 2 + [0.12] * 5 + [0.01] * 9


def test_hand_made_track_gives_exact_rates():
    track = make_track(HAND_GAP)
    assert track.n_frames == 35 and track.fps == pytest.approx(25.0)
    # the should-be-closed frames (pauses, /p b m/) are mostly <= 0.01: p10 = 0 -> floor 0.05
    assert closed_level(track, HAND_PHONES) == pytest.approx(0.05)
    assert open_level(0.05) == pytest.approx(0.15)
    bil = bilabial_closure(track, HAND_PHONES)
    # p closes (and its +-1 frame window reaches the pause); m closes; b only gets to 0.09
    assert bil.count == 3 and bil.rate == pytest.approx(2 / 3)
    assert bil.misses == ("b@0.76s",)
    vow = open_vowel_rate(track, HAND_PHONES)
    # ɑ reaches 0.30; æ peaks at 0.12, under the 0.15 open level (i is not an open vowel)
    assert vow.count == 2 and vow.rate == pytest.approx(0.5)
    assert vow.misses == ("æ@0.84s",)


def test_arpabet_symbols_score_like_ipa():
    arpa = {"ɑ": "AA1", "æ": "AE0", "i": "IY1", "p": "P", "m": "M", "b": "B", "_": "sil"}
    phones = [Phoneme(arpa[p.symbol], p.start, p.end) for p in HAND_PHONES]
    track = make_track(HAND_GAP)
    assert bilabial_closure(track, phones).rate == pytest.approx(2 / 3)
    assert open_vowel_rate(track, phones).rate == pytest.approx(0.5)
    # ARPAbet AH and the schwas count as open vowels
    ah = [Phoneme("AH0", 0.28, 0.48), Phoneme("ə", 0.56, 0.76), Phoneme("ɐ", 0.84, 1.04)]
    assert open_vowel_rate(track, ah, level=0.13).count == 3
    assert open_vowel_rate(track, ah, level=0.13).rate == pytest.approx(2 / 3)


def test_closed_level_cannot_be_lowered_by_lips_that_never_meet():
    gap = [0.10 if g < 0.1 else g for g in HAND_GAP]  # every closure now stops at 0.10
    track = make_track(gap)
    assert closed_level(track, HAND_PHONES) == pytest.approx(0.06)  # the ceiling
    assert bilabial_closure(track, HAND_PHONES).rate == 0.0
    # without phonemes: 5th percentile of all frames + margin, within the same bounds
    assert closed_level(make_track(HAND_GAP)) == pytest.approx(0.05)
    # in between the bounds: p10 of the should-be-closed frames (0.02) plus 0.035
    assert closed_level(make_track([g + 0.02 for g in HAND_GAP]), HAND_PHONES) == pytest.approx(0.055)


def random_phones(duration: float, seed: int = 0) -> list[Phoneme]:
    """A plausible phone sequence: syllables of consonant + vowel with pauses."""
    rng = np.random.default_rng(seed)
    cons = ["p", "b", "m", "t", "s", "k", "l", "f", "w", "n"]
    vows = ["ɑ", "æ", "i", "u", "ə", "ɛ", "o"]
    out, t = [], 0.3
    out.append(Phoneme("_", 0.0, t))
    while t < duration - 0.5:
        for sym, (lo, hi) in ((rng.choice(cons), (0.05, 0.1)), (rng.choice(vows), (0.08, 0.2))):
            d = float(rng.uniform(lo, hi))
            out.append(Phoneme(str(sym), t, t + d))
            t += d
        if rng.random() < 0.12:
            d = float(rng.uniform(0.15, 0.4))
            out.append(Phoneme("_", t, t + d))
            t += d
    out.append(Phoneme("_", t, duration))
    return out


@pytest.mark.parametrize("lag", [0.057, -0.083, 0.0])
def test_av_offset_finds_a_sub_frame_lag(lag):
    phones = random_phones(6.0)
    track = make_track(np.zeros(timing.frame_count(6.0, FPS)))
    gap = 0.02 + 0.25 * expected_per_frame(track, expected_openness(phones), lag)
    off = av_offset(make_track(gap), phones)
    assert off is not None and not off.at_edge
    assert off.ms == pytest.approx(lag * 1000, abs=1.0)
    assert off.corr == pytest.approx(1.0, abs=1e-3)


def test_av_offset_peak_at_search_edge_is_flagged():
    phones = random_phones(6.0)
    track = make_track(np.zeros(timing.frame_count(6.0, FPS)))
    gap = expected_per_frame(track, expected_openness(phones), 0.35)
    off = av_offset(make_track(gap), phones)
    assert off is not None and off.at_edge and off.ms == pytest.approx(200.0)


def test_drift_over_a_long_clip():
    duration = 30.0
    phones = random_phones(duration, seed=3)
    n = timing.frame_count(duration, FPS)
    track = make_track(np.zeros(n))
    lags = 0.08 * track.times / duration  # the video falls behind linearly, 0 -> 80 ms
    per_lag = expected_per_frame(track, expected_openness(phones), lags)  # (n lags, n frames)
    gap = per_lag[np.arange(n), np.arange(n)]
    d = drift(make_track(gap), phones)
    assert d is not None
    assert d.start_ms == pytest.approx(13.3, abs=6)  # mean lag over the first third
    assert d.end_ms == pytest.approx(66.7, abs=6)
    assert d.ms == pytest.approx(53.3, abs=8)
    assert drift(make_track(gap[: int(15 * FPS)]), phones) is None  # short clips: no drift


def test_landmark_jitter_is_rms_about_the_median():
    n = 20
    stable = np.zeros((n, 7, 2), np.float32)
    stable[:, :, 0] = 100.0 + np.where(np.arange(n) % 2, 1.0, -1.0)[:, None]  # +-1 px in x
    stable[:, :, 1] = 50.0
    stable[3] = np.nan  # a frame without a face is skipped
    stable[4] = np.nan
    track = make_track(np.full(n, 0.1), stable=stable)
    assert landmark_jitter(track) == pytest.approx(1.0)


def test_psnr_outside_mouth_exact(astronaut, avatar):
    source = (astronaut // 2).astype(np.uint8)  # <= 127 so +10 never clips
    lm = avatar.face.landmarks
    mask = lower_face_mask(source.shape, lm)
    for i in (13, 14, 61, 291, 152):  # mouth and chin are masked out
        x, y = np.round(lm[i, :2]).astype(int)
        assert mask[y, x]
    for i in (33, 263, 6):  # eyes and nose bridge are compared
        x, y = np.round(lm[i, :2]).astype(int)
        assert not mask[y, x]
    brighter = source + np.uint8(10)  # MSE 100 everywhere
    expected = 10 * math.log10(255.0**2 / 100.0)
    assert psnr_outside_mouth([brighter, brighter], source, lm) == pytest.approx(expected, abs=1e-9)
    scribbled = source.copy()
    scribbled[mask] = 255  # only the lower face differs
    assert psnr_outside_mouth([scribbled], source, lm) == 100.0
    # frames at half size are compared with the source resized to them
    import cv2

    half = cv2.resize(source, (256, 256), interpolation=cv2.INTER_AREA)
    assert psnr_outside_mouth([half], source, lm) == 100.0


# ---------------------------------------------------------------- real renders


@pytest.fixture(scope="module")
def frames(avatar, speech):
    return list(pipeline.render(avatar, speech))


def test_render_is_in_sync_and_a_3_frame_shift_is_detected(frames, speech):
    good = score(mouth_track_frames(frames, FPS), speech.phonemes)
    assert good.bilabials >= 5 and good.open_vowels >= 4
    assert good.bilabial_closure_rate >= 0.85  # at most one miss
    assert good.open_vowel_rate >= 0.85
    assert abs(good.av_offset_ms) < 20.0 and good.av_offset_corr > 0.7
    assert good.jitter_px < 4.0  # landmark noise plus whatever head motion the engine adds

    late = frames[:1] * 3 + frames[:-3]  # the video shown 3 frames (120 ms) late
    bad = score(mouth_track_frames(late, FPS), speech.phonemes)
    assert bad.av_offset_ms == pytest.approx(good.av_offset_ms + 120.0, abs=10.0)
    assert bad.av_offset_ms == pytest.approx(120.0, abs=25.0)
    assert bad.bilabial_closure_rate < good.bilabial_closure_rate
    assert len(bad.missed_closures) >= len(good.missed_closures) + 2
    assert bad.open_vowel_rate <= good.open_vowel_rate  # long vowels still open within +-1 frame
    assert bad.missed_closures


def test_evaluate_mp4_and_cli(rendered, speech, avatar, tmp_path, capsys):
    report = evaluate(rendered.path, speech.phonemes, source_image=avatar.image)
    assert report.frames == rendered.frames and report.fps == pytest.approx(25.0)
    assert report.face_rate == 1.0
    assert report.bilabial_closure_rate >= 0.85 and report.open_vowel_rate >= 0.85
    assert abs(report.av_offset_ms) < 20.0
    assert abs(report.duration_diff_ms) <= 40.0  # within a frame
    # outside the lower face only blinks, head motion and H.264 differ from the source;
    # the exact PSNR arithmetic is tested above, here: plausible and far above a wrong source
    assert 22.0 < report.psnr_outside_mouth_db < 60.0
    wrong = psnr_outside_mouth(rendered.path, np.ascontiguousarray(avatar.image[::-1]), avatar.face.landmarks)
    assert wrong < report.psnr_outside_mouth_db - 8.0
    assert report.drift_ms is None  # a short clip

    import argparse

    from pipeline.quality.cli import add_eval_parser

    phon = tmp_path / "phones.json"
    save_phonemes(speech.phonemes, phon)
    out = tmp_path / "report.json"
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", str(rendered.path), "--phonemes", str(phon), "--json", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "bilabial closure" in printed and "AV offset" in printed
    data = json.loads(out.read_text())
    assert data["frames"] == rendered.frames
    assert data["bilabial_closure_rate"] == pytest.approx(report.bilabial_closure_rate)
    assert data["av_offset_ms"] == pytest.approx(report.av_offset_ms, abs=0.5)


def test_vfr_video_uses_frame_pts(astronaut, tmp_path):
    import av

    pts_ms = [0, 40, 100, 120, 200, 330, 340, 420]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = 512, 512, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.time_base = Fraction(1, 1000)
        for p in pts_ms:
            f = av.VideoFrame.from_ndarray(astronaut, format="rgb24")
            f.pts, f.time_base = p, Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    track = mouth_track(path)
    np.testing.assert_allclose(track.times, np.array(pts_ms) / 1000.0, atol=1e-9)
    assert track.end > track.times[-1]
    assert np.isfinite(track.gap).all() and track.size == (512, 512)
    assert np.allclose(track.gap, track.gap[0], atol=0.02)  # a still image: the same gap throughout
    assert landmark_jitter(track) < 0.3  # and stable points that stay put


# ---------------------------------------------------------------- files, errors, report


def test_load_phonemes_formats(tmp_path):
    js = tmp_path / "a.json"
    rows = [{"phoneme": "HH", "start": 0.0, "end": 0.1}, {"symbol": "AH0", "start": 0.1, "end": 0.3}]
    js.write_text(json.dumps(rows))
    ph = load_phonemes(js)
    assert [(p.symbol, p.start, p.end) for p in ph] == [("h", 0.0, 0.1), ("ʌ", 0.1, 0.3)]

    js2 = tmp_path / "b.json"
    js2.write_text(json.dumps({"phonemes": [[0.0, 0.2, "ɡ"], ["AA1", 0.2, 0.4]]}))
    ph = load_phonemes(js2)
    assert [p.symbol for p in ph] == ["g", "ɑ"] and ph[1].stress == 1

    tsv = tmp_path / "c.tsv"
    tsv.write_text("start\tend\tphone\n# comment\n0.00\t0.05\tsil\n0.05\t0.12\tm\n\n0.12\t0.30\tæ\n")
    assert [(p.symbol, p.end) for p in load_phonemes(tsv)] == [("_", 0.05), ("m", 0.12), ("æ", 0.30)]

    sym_first = tmp_path / "d.txt"
    sym_first.write_text("p 0.0 0.1\na 0.1 0.25\n")
    assert [p.symbol for p in load_phonemes(sym_first)] == ["p", "a"]

    onsets = tmp_path / "e.txt"
    onsets.write_text("0.0 b\n0.1 ɑ\n0.3 t\n")
    ph = load_phonemes(onsets)
    assert [(p.start, p.end) for p in ph] == [(0.0, 0.1), (0.1, 0.3), (0.3, pytest.approx(0.45))]

    tg = tmp_path / "f.TextGrid"
    tg.write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 0.5\ntiers? <exists>\nsize = 2\n'
        "item []:\n"
        '    item [1]:\n        class = "IntervalTier"\n        name = "words"\n        xmin = 0\n        xmax = 0.5\n'
        '        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n            xmax = 0.5\n'
        '            text = "ma"\n'
        '    item [2]:\n        class = "IntervalTier"\n        name = "phones"\n        xmin = 0\n        xmax = 0.5\n'
        "        intervals: size = 3\n"
        '        intervals [1]:\n            xmin = 0\n            xmax = 0.1\n            text = ""\n'
        '        intervals [2]:\n            xmin = 0.1\n            xmax = 0.2\n            text = "M"\n'
        '        intervals [3]:\n            xmin = 0.2\n            xmax = 0.5\n            text = "AA1"\n'
    )
    got = [(p.symbol, p.start, p.end) for p in load_phonemes(tg)]
    assert got == [("_", 0.0, 0.1), ("m", 0.1, 0.2), ("ɑ", 0.2, 0.5)]

    rhubarb = tmp_path / "g.json"
    rhubarb.write_text(json.dumps({"mouthCues": [{"start": 0, "end": 1, "value": "X"}]}))
    with pytest.raises(UnsupportedMedia, match="visemes"):
        load_phonemes(rhubarb)
    bad = tmp_path / "h.txt"
    bad.write_text("0.0 0.1 p\nnonsense here\n")
    with pytest.raises(UnsupportedMedia, match="line 2"):
        load_phonemes(bad)


def test_evaluate_errors(tmp_path):
    with pytest.raises(UnsupportedMedia):  # text needs the video's audio to align to
        evaluate(tmp_path / "x.mp4", text="hello")
    with pytest.raises(UnsupportedMedia):
        evaluate(tmp_path / "missing.mp4", phonemes=HAND_PHONES)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(UnsupportedMedia):
        mouth_track(junk)


def test_report_dict_and_table():
    track = make_track(HAND_GAP)
    report = score(track, HAND_PHONES, video="hand.mp4")
    assert isinstance(report, Report)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["bilabial_closure_rate"] == pytest.approx(2 / 3)
    assert data["missed_closures"] == ["b@0.76s"] and data["drift_ms"] is None
    table = report.format()
    lines = table.splitlines()
    assert lines[0].startswith("Lip-sync quality: hand.mp4 - 35 frames")
    rows = lines[1:8]
    assert rows[0].lstrip().startswith("bilabial closure") and "66.7 %" in rows[0] and "2/3" in rows[0]
    assert rows[1].lstrip().startswith("open vowels") and "50.0 %" in rows[1]
    end = rows[0].index("66.7 %") + len("66.7 %")  # values are right-aligned at one column
    assert all(r[end - 1] != " " and r[end : end + 2] == "  " for r in rows)
    no_phones = score(track, None)
    assert no_phones.bilabial_closure_rate is None and any("--phonemes" in n for n in no_phones.notes)


def test_eval_with_transcript_aligns_the_videos_audio(rendered):
    """`eval --text`: phoneme times come from aligning the video's own audio."""
    report = evaluate(rendered.path, text="Peter bought a bamboo map for Bob.")
    assert report.phonemes > 20
    assert report.bilabial_closure_rate >= 0.85 and report.open_vowel_rate >= 0.85
    assert abs(report.av_offset_ms) <= 40
