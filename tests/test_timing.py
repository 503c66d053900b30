from fractions import Fraction

import numpy as np

from pipeline import timing


def test_fps_fraction_ntsc_rates_are_exact():
    assert timing.fps_fraction(29.97) == Fraction(30000, 1001)
    assert timing.fps_fraction(23.976) == Fraction(24000, 1001)
    assert timing.fps_fraction(59.94) == Fraction(60000, 1001)
    assert timing.fps_fraction(25) == 25


def test_frame_count_is_rounded_duration_times_fps():
    assert timing.frame_count(2.0, 25) == 50
    assert timing.frame_count(2.019, 25) == 50
    assert timing.frame_count(2.021, 25) == 51
    assert timing.frame_count(0.001, 25) == 1
    assert timing.frame_count(0.0, 25) == 0
    assert timing.frame_count(10.0, 29.97) == 300


def test_frame_index_and_times_agree():
    times = timing.frame_times(100, 30)
    assert np.allclose(np.diff(times), 1 / 30)
    for i in (0, 1, 29, 99):
        assert timing.frame_index(times[i], 30) == i
        assert timing.frame_index(times[i] + 0.5 / 30, 30) == i
