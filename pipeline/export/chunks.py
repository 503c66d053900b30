"""Stream chunks: each chunk of a render a small MP4 that plays on its own.

Each chunk (:class:`pipeline.render.RenderChunk`) becomes one file with

- H.264 that starts with a keyframe (a fresh encoder per chunk; ``tune=zerolatency``: no
  B-frames and no look-ahead, so the first frame leaves the encoder at once and the
  video starts at t = 0);
- AAC of exactly the chunk's own audio samples (frames / fps long; the encoder delay
  and the padding of the last AAC frame are described by the MP4 edit list, so a
  decoder gets back exactly that many samples).

This is what ``gr.Video(streaming=True)`` takes (it copies the H.264 into MPEG-TS
segments of an HLS playlist and re-encodes the audio continuously) and what any
player plays chunk by chunk. Files appear atomically (the MP4 writer's temp name and
rename), so a chunk on disk is complete. MP4 rather than MPEG-TS because TS has no edit
list: each TS chunk's AAC would add its encoder delay (~46 ms) and the audio would
drift ahead of the picture chunk after chunk.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from pipeline.export.mp4 import Mp4Writer
from pipeline.export.quality import x264_crf
from pipeline.options import ExportOptions
from pipeline.types import AudioClip, Frame

# Preview quality: fast to encode, small enough to stream (CRF 23 at 512 px is ~1 Mb/s).
CHUNK_EXPORT = ExportOptions(preset="ultrafast", crf=23)


class FastYuv:
    """RGB(A) to yuv420p with OpenCV (BT.601 limited range, tagged so): ~5x quicker than
    swscale's BT.709 path at 512 px, which took as long as the H.264 encode itself."""

    def __call__(self, arr: np.ndarray) -> av.VideoFrame:
        import cv2

        rgb = arr[:, :, :3] if arr.shape[2] == 4 else arr
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def tag_bt601(cc) -> None:
    """Tag a codec context as BT.601 (SMPTE 170M), limited range: what OpenCV's conversion makes."""
    from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc, Colorspace

    cc.colorspace = int(Colorspace.SMPTE170M)
    cc.color_primaries = int(ColorPrimaries.SMPTE170M)
    cc.color_trc = int(ColorTrc.SMPTE170M)
    cc.color_range = int(ColorRange.MPEG)


class ChunkWriter(Mp4Writer):
    """One chunk as an MP4: H.264 (keyframe first, no B-frames) + AAC of its own audio."""

    label = "stream chunk (MP4)"
    container_options: ClassVar[dict[str, str]] = {}  # no faststart pass: a chunk is written once, read once

    def _video_stream(self, first) -> FastYuv:  # type: ignore[override]
        opts = {"crf": str(x264_crf(self.opts)), "preset": self.opts.preset, "tune": "zerolatency",
                "x264-params": "keyint=infinite:scenecut=0"}
        vs = self._new_video_stream("libx264", "yuv420p", self._enc_w, self._enc_h, opts)
        vs.codec_context.thread_count = 1  # one chunk is small; threads cost more than they give
        tag_bt601(vs.codec_context)
        return FastYuv()


def write_chunk(path: str | Path, frames: list[Frame], audio: AudioClip | None, fps: float,
                opts: ExportOptions = CHUNK_EXPORT) -> Path:
    """``frames`` and ``audio`` as one chunk file at ``path`` (atomically)."""
    if not frames:
        raise ValueError("a chunk needs at least one frame")
    h, w = frames[0].shape[:2]
    with ChunkWriter(path, w, h, fps, audio, opts) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


@dataclass
class ChunkFiles:
    """Writes the chunks of one stream into ``folder`` as ``chunk-00000.mp4``, ... and
    keeps the time each one reached the disk (``perf_counter`` seconds)."""

    folder: Path
    opts: ExportOptions = CHUNK_EXPORT
    written: list[tuple[Path, float]] = field(default_factory=list)

    def write(self, chunk) -> Path:
        """Write a :class:`pipeline.render.RenderChunk`; returns its path."""
        path = self.folder / f"chunk-{chunk.index:05d}.mp4"
        write_chunk(path, chunk.frames, chunk.audio, chunk.fps, self.opts)
        self.written.append((path, time.perf_counter()))
        return path


# --------------------------------------------------------------------------- sizes

AAC_FRAME = 1024  # samples per AAC frame
STREAM_RATES = (32000, 48000, 24000, 16000)  # AAC rates a stream's audio may be resampled to, preferred first


def stream_audio(fps: float) -> tuple[int, int]:
    """(sample rate, frames per unit) for a stream at ``fps``: chunks of whole units hold
    audio that fills whole AAC frames, so each chunk decodes to exactly its own samples
    (no padding: a decoder that ignores the MP4 edit list's end, as FFmpeg 5 does, would
    otherwise add up to 1023 samples of silence per chunk and the audio would run ahead).
    25 fps: 32 kHz, 4 frames (160 ms); 30 fps: 48 kHz, 16 frames. A rate with no exact unit
    (24 fps) keeps the first rate and unit 1 (then only the last chunk of each pads)."""
    from fractions import Fraction

    from pipeline import timing

    f = timing.fps_fraction(fps)
    best: tuple[int, int] | None = None
    for rate in STREAM_RATES:
        spf = Fraction(rate) / f
        if spf.denominator != 1:
            continue
        unit = AAC_FRAME // math.gcd(int(spf), AAC_FRAME)
        if best is None or unit < best[1]:
            best = (rate, unit)
    return best if best is not None and best[1] <= 16 else (STREAM_RATES[0], 1)


def chunk_seconds(fps: float, seconds: float, unit: int) -> float:
    """``seconds`` rounded to a whole number of ``unit`` frames (at least one unit)."""
    from pipeline import timing

    f = float(timing.fps_fraction(fps))
    units = max(1, int(round(seconds * f / unit)))
    return units * unit / f
