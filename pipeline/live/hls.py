"""In-process versions of the three FFmpeg commands Gradio runs on every streamed video chunk.

``gr.Video(streaming=True)`` (Gradio 6.31) turns each yielded chunk file into one MPEG-TS
segment of its HLS playlist with three short-lived processes, whatever the chunk holds:

1. ``ffprobe`` for the video track's duration and start, and the audio's rate and channels;
2. ``ffmpeg`` decoding the chunk's audio to s16le PCM, which it feeds into one AAC encoder
   process that lives as long as the stream (so the audio has no seams at chunk joins);
3. ``ffmpeg -c copy`` muxing the chunk's H.264 and the encoder's new ADTS frames into a
   ``.ts`` placed on the stream's clock (``-itsoffset``, ``-output_ts_offset``; PIDs 256
   and 257; no mux delay), after which it renumbers the TS continuity counters.

No input form skips any of them: a ``.ts`` chunk is probed, decoded and re-muxed the same
way, and only a chunk without audio skips the decode (and a first chunk without audio
leaves the whole stream silent in hls.js). Each process costs ~40-60 ms on a quiet
2-core machine and ~200 ms at load 5-8, so ~0.6 s of CPU per second of video went into
starting FFmpeg, on the cores that also render the stream and decode it in Chromium.

The functions here do the same work with PyAV inside the studio's process, to the same
timestamps, PIDs and counters (tested against Gradio's own commands), in a few
milliseconds. ``studio.live`` puts them in place for the Live tab's video only. They take
the chunks :mod:`pipeline.export.chunks` writes (H.264 + FLAC/AAC in MP4) and anything
else with H.264 video; other video codecs are left to Gradio's own commands.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

TS_HZ = 90000  # MPEG-TS clock
TS_PACKET = 188
TS_NULL_PID = 0x1FFF
VIDEO_PID, AUDIO_PID = 256, 257  # the PIDs Gradio pins (``-streamid``)
ADTS_FRAME = 1024  # samples per AAC frame


def probe_chunk(path: str | Path) -> dict[str, Any]:
    """What Gradio's ``Video.probe_chunk`` reports (``ffprobe``): the video track's duration
    (else the audio's, else the container's), the video's start time, the audio's rate and
    channels (None without audio) and the video codec's name."""
    import av

    with av.open(str(path)) as c:
        video = c.streams.video[0] if c.streams.video else None
        audio = c.streams.audio[0] if c.streams.audio else None
        durations = [float(s.duration * s.time_base) for s in (video, audio)
                     if s is not None and s.duration and s.time_base is not None and s.duration > 0]
        if c.duration and c.duration > 0:
            durations.append(c.duration / av.time_base)
        if not durations:
            raise ValueError(f"cannot determine the duration of the video chunk {path}")
        start = 0.0
        if video is not None and video.start_time is not None and video.time_base is not None:
            start = float(video.start_time * video.time_base)
        rate = audio.codec_context.sample_rate if audio is not None else None
        channels = audio.codec_context.channels if audio is not None else None
        return {
            "duration": durations[0],
            "video_start": start,
            "sample_rate": int(rate) if rate else None,
            "channels": int(channels) if rate and channels else None,
            "video_codec": video.codec_context.name if video is not None else None,
        }


def decode_pcm(path: str | Path, rate: int, channels: int) -> bytes:
    """A file's first audio track as signed 16-bit little-endian PCM at ``rate`` and
    ``channels`` (what Gradio's ``decode_file_to_pcm`` gets from ``ffmpeg -f s16le``)."""
    import av

    layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
    out: list[bytes] = []
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return b""
        for frame in c.decode(c.streams.audio[0]):
            frame.pts = None  # resample every sample, whatever the timestamps say
            out.extend(f.to_ndarray().tobytes() for f in resampler.resample(frame))
    out.extend(f.to_ndarray().tobytes() for f in resampler.resample(None))
    return b"".join(out)


def _ticks(seconds: float) -> int:
    return int(round(seconds * TS_HZ))


def mux_segment(
    path: str | Path | None,
    video_codec: str | None,
    adts: bytes,
    video_time: float,
    audio_time: float,
    video_start: float = 0.0,
    counters: dict[int, int] | None = None,
    *,
    pts_base: float = 10.0,
) -> bytes:
    """One MPEG-TS segment of the chunk's H.264 (copied) and the ADTS frames ``adts``, as
    Gradio's ``Video.mux_segment`` makes it: video frame ``t`` of the chunk at
    ``pts_base + video_time + t - video_start``, ADTS frame ``k`` at
    ``pts_base + audio_time + k * 1024 / rate``, video on PID 256 and audio on 257, no mux
    delay; ``counters`` (PID -> next continuity counter) is advanced in place."""
    import av

    if path is not None and video_codec not in (None, "h264"):
        raise ValueError(f"only H.264 is copied into a segment, not {video_codec}")
    buf = io.BytesIO()
    inputs: list[Any] = []
    try:
        out = av.open(buf, "w", format="mpegts", options={"max_delay": "0"})
        inputs.append(out)
        packets: list[tuple[Any, Any, float]] = []  # (packet, output stream, seconds to add)
        if path is not None and video_codec is not None:
            src = av.open(str(path))
            inputs.append(src)
            vin = src.streams.video[0]
            vout = out.add_stream_from_template(vin)
            vout.id = VIDEO_PID
            shift = pts_base + video_time - video_start
            packets += [(p, vout, shift) for p in src.demux(vin) if p.size]
        if adts:
            asrc = av.open(io.BytesIO(adts), format="aac")
            inputs.append(asrc)
            ain = asrc.streams.audio[0]
            aout = out.add_stream_from_template(ain)
            aout.id = AUDIO_PID
            rate = ain.codec_context.sample_rate
            at = 0
            for p in asrc.demux(ain):
                if not p.size:
                    continue
                n = int(p.duration * p.time_base * rate) if p.duration and p.time_base else ADTS_FRAME
                p.pts = p.dts = at
                p.time_base = Fraction(1, rate)
                packets.append((p, aout, pts_base + audio_time))
                at += n or ADTS_FRAME
        for p, stream, shift in packets:
            tb = p.time_base
            pts = float(p.pts * tb) if p.pts is not None else None
            dts = float(p.dts * tb) if p.dts is not None else pts
            dur = float(p.duration * tb) if p.duration else 0.0
            p.stream = stream
            p.time_base = Fraction(1, TS_HZ)
            p.pts = _ticks(pts + shift) if pts is not None else None
            p.dts = _ticks(dts + shift) if dts is not None else None
            p.duration = _ticks(dur)
            out.mux(p)
        out.close()
        inputs.remove(out)
    finally:
        for c in inputs:
            c.close()
    return continue_counters(buf.getvalue(), counters)


def continue_counters(data: bytes, counters: dict[int, int] | None) -> bytes:
    """Renumber the TS packets' continuity counters to follow on from ``counters`` (updated
    in place): each segment comes from a fresh muxer that starts them at 0, which a player
    would read as lost packets. Left as is when ``data`` is not whole TS packets."""
    if counters is None or not data or len(data) % TS_PACKET:
        return data
    if any(data[o] != 0x47 for o in range(0, len(data), TS_PACKET)):
        return data
    buf = bytearray(data)
    for o in range(0, len(buf), TS_PACKET):
        pid = ((buf[o + 1] & 0x1F) << 8) | buf[o + 2]
        if pid == TS_NULL_PID:
            continue
        cc = counters.get(pid, 0)
        buf[o + 3] = (buf[o + 3] & 0xF0) | cc
        if buf[o + 3] & 0x10:  # a payload: the counter moves on (adaptation-only packets repeat it)
            counters[pid] = (cc + 1) & 0x0F
    return bytes(buf)
