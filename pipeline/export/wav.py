"""WAV export: the audio alone, 16-bit PCM mono at the clip's own rate, written atomically.

``WavWriter`` has the writer interface so any export path can produce it: frames passed
to ``write`` are checked and counted (the duration check compares them with the audio)
but not stored. Metadata goes into the RIFF INFO chunk: INAM = title, ICMT = "Avatar
Studio" (ISFT is FFmpeg's own version string). ``write_wav`` is the same encoding as a
plain function (used for the PNG sequence's audio.wav).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from pipeline.errors import InvalidOption, UnsupportedMedia
from pipeline.export.base import PRODUCT, AudioSpec, AudioTrack, ColorConverter, ContainerWriter, remove_path, temp_path
from pipeline.types import AudioClip

WAV_CODEC = "pcm_s16le"


class WavWriter(ContainerWriter):
    """Audio-only export; video frames are accepted and ignored."""

    label = "WAV (audio only)"
    format = "wav"
    suffixes = (".wav",)
    has_video = False
    temp_suffix = ".wav"
    container_format = "wav"
    needs_frames = False
    add_streams_at_open = True

    def _open(self, audio: AudioClip | None) -> None:
        if audio is None or len(np.asarray(audio.samples)) == 0:
            raise InvalidOption("WAV export needs audio; this render has none.")
        super()._open(audio)

    def _video_stream(self, first: np.ndarray | None) -> ColorConverter | None:
        return None  # no video stream

    def _audio_spec(self, clip: AudioClip) -> AudioSpec:
        return AudioSpec(WAV_CODEC, clip.rate)

    def _write_frame(self, arr: np.ndarray) -> None:
        pass  # frames only count towards the duration check

    def _after_frame(self) -> None:
        pass  # the audio is written in one go at close()


def write_wav(clip: AudioClip, path: str | Path, title: str = "") -> Path:
    """Write ``clip`` as 16-bit PCM mono WAV with INFO metadata, atomically. Returns the path."""
    p = Path(path)
    tmp = temp_path(p, ".wav")
    try:
        try:
            container = av.open(str(tmp), "w", format="wav")
        except (av.FFmpegError, OSError) as exc:
            raise UnsupportedMedia(f"Cannot create '{p.name}': {exc}.") from exc
        with container:
            if title:
                container.metadata["title"] = title
            container.metadata["comment"] = PRODUCT
            samples = np.ascontiguousarray(np.clip(np.asarray(clip.samples, np.float32), -1.0, 1.0))
            rate = int(clip.rate)
            AudioTrack(container, AudioClip(samples, rate), AudioSpec(WAV_CODEC, rate)).finish()
        os.replace(tmp, p)
    except BaseException:
        remove_path(tmp)
        raise
    return p
