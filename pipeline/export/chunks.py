"""Stream chunks: each chunk of a render a small MP4 that plays on its own.

Each chunk (:class:`pipeline.render.RenderChunk`) becomes one file with

- H.264 that starts with a keyframe (a fresh encoder per chunk; ``tune=zerolatency``: no
  B-frames and no look-ahead, so the first frame leaves the encoder at once and the
  video starts at t = 0);
- FLAC of exactly the chunk's own audio samples (frames / fps long). Lossless and
  without encoder delay or padding, so every decoder, FFmpeg 5's command line included,
  gets back exactly those samples at any frame rate. (AAC here made a decoder that
  ignores the MP4 edit list's end, as FFmpeg 5 does, add up to 1023 samples of silence
  per chunk: the audio ran ahead of the picture unless whole AAC frames filled the chunk,
  which no frame count does at 24 fps.)

This is what ``gr.Video(streaming=True)`` takes: it decodes each chunk's audio into one
continuous AAC encoder of its own and copies the H.264 into the MPEG-TS segments of an
HLS playlist (``pipeline.live.hls`` does that work in-process for the Live tab). Files
appear atomically (the MP4 writer's temp name and rename), so a chunk on disk is complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from pipeline.export.base import AudioSpec
from pipeline.export.mp4 import Mp4Writer
from pipeline.export.quality import x264_crf, x264_preset
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
    """One chunk as an MP4: H.264 (keyframe first, no B-frames) + FLAC of its own audio."""

    label = "stream chunk (MP4: H.264 + FLAC)"
    container_options: ClassVar[dict[str, str]] = {}  # no faststart pass: a chunk is written once, read once

    def _video_stream(self, first) -> FastYuv:  # type: ignore[override]
        opts = {"crf": str(x264_crf(self.opts)), "preset": x264_preset(self.opts), "tune": "zerolatency",
                "x264-params": "keyint=infinite:scenecut=0"}
        vs = self._new_video_stream("libx264", "yuv420p", self._enc_w, self._enc_h, opts)
        vs.codec_context.thread_count = 1  # one chunk is small; threads cost more than they give
        tag_bt601(vs.codec_context)
        return FastYuv()

    def _audio_spec(self, clip: AudioClip) -> AudioSpec:  # type: ignore[override]
        # compression_level 0: the quickest FLAC, still lossless (~1 ms per 0.96 s chunk at 32 kHz;
        # AAC took ~29 ms)
        return AudioSpec("flac", clip.rate, options={"compression_level": "0"})


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

STREAM_RATES = (32000, 48000, 24000, 16000)  # rates a stream's audio may be resampled to, preferred first
MAX_UNIT = 16  # the most frames a chunk size may have to be a multiple of


def stream_audio(fps: float) -> tuple[int, int]:
    """(sample rate, frames per unit) for a stream at ``fps``: a chunk of whole units holds
    a whole number of samples, exactly frames / fps of audio, so chunk after chunk the
    audio and the picture end together. The smallest unit wins, then the preferred rate:
    25 fps: 32 kHz, unit 1 (1280 samples a frame); 24 fps: 48 kHz, unit 1 (2000);
    29.97 fps: 48 kHz, unit 5 (8008 samples per 5 frames)."""
    from fractions import Fraction

    from pipeline import timing

    f = timing.fps_fraction(fps)
    best: tuple[int, int] | None = None
    for rate in STREAM_RATES:
        unit = (Fraction(rate) / f).denominator  # frames in the shortest span of whole samples
        if best is None or unit < best[1]:
            best = (rate, unit)
    assert best is not None
    return best if best[1] <= MAX_UNIT else (STREAM_RATES[0], 1)


def chunk_seconds(fps: float, seconds: float, unit: int) -> float:
    """``seconds`` rounded down to a whole number of ``unit`` frames (at least one unit): a
    chunk is never longer than asked, so segments stay within the playlist's target."""
    from pipeline import timing

    f = float(timing.fps_fraction(fps))
    units = max(1, int(seconds * f / unit + 1e-9))
    return units * unit / f
