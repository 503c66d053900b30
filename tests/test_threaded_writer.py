import numpy as np
import pytest

from pipeline.export.threaded import ThreadedWriter


class Recorder:
    def __init__(self, fail_at=None):
        self.frames, self.closed, self.aborted, self.fail_at = [], False, False, fail_at

    def write(self, frame):
        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise RuntimeError("encoder broke")
        self.frames.append(int(frame[0, 0, 0]))

    def close(self):
        self.closed = True
        return "path"

    def abort(self):
        self.aborted = True

    frames_written = property(lambda self: len(self.frames))


def test_frames_arrive_in_order_and_close_flushes():
    rec = Recorder()
    with ThreadedWriter(rec, depth=2) as w:
        for i in range(50):
            w.write(np.full((2, 2, 3), i, np.uint8))
    assert rec.frames == list(range(50)) and rec.closed and not rec.aborted


def test_encoder_error_reaches_the_caller_and_aborts():
    rec = Recorder(fail_at=3)
    with pytest.raises(RuntimeError, match="encoder broke"):
        with ThreadedWriter(rec, depth=2) as w:
            for i in range(50):
                w.write(np.full((2, 2, 3), i, np.uint8))
    assert rec.aborted and not rec.closed


def test_caller_error_aborts_the_output():
    rec = Recorder()
    with pytest.raises(KeyError):
        with ThreadedWriter(rec) as w:
            w.write(np.zeros((2, 2, 3), np.uint8))
            raise KeyError("render failed")
    assert rec.aborted and not rec.closed
