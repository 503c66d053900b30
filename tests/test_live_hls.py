"""What the browser gets from the Live tab: our chunks through Gradio 6.31's own streaming
video output (``gr.Video(streaming=True).stream_output``), the HLS segments concatenated and
read back. The in-process segment path (``pipeline.live.hls`` wired by
``studio.live.in_process_chunks``) must give what Gradio's FFmpeg commands give, and a
3-minute stream at 24 fps must play with continuous timestamps and no drift.

Skipped without gradio or the ffmpeg/ffprobe commands Gradio runs.
"""

from __future__ import annotations

import asyncio
import io
import math
import shutil
import time

import av
import numpy as np
import pytest

from pipeline.export.chunks import chunk_seconds, stream_audio, write_chunk
from pipeline.types import AudioClip

gr = pytest.importorskip("gradio")
pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                reason="Gradio's streaming video needs ffmpeg and ffprobe")


def make_chunks(folder, fps: float, n_chunks: int, size: int = 32):
    """Chunk files the way a stream makes them (first ~0.5 s, then just under 1 s), with a
    moving picture and a tone that runs on across the joins; (paths, frames, samples)."""
    rate, unit = stream_audio(fps)
    sizes = [round(chunk_seconds(fps, 0.5, unit) * fps)] + [round(chunk_seconds(fps, 0.96, unit) * fps)] * (n_chunks - 1)
    folder.mkdir(parents=True, exist_ok=True)
    paths, at = [], 0
    for k, n in enumerate(sizes):
        a, b = round(at * rate / fps), round((at + n) * rate / fps)
        t = np.arange(a, b) / rate
        audio = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        frames = [np.full((size, size, 3), (17 * (at + i)) % 256, np.uint8) for i in range(n)]
        paths.append(write_chunk(folder / f"chunk-{k:05d}.mp4", frames, AudioClip(audio, rate), fps))
        at += n
    return paths, at, round(at * rate / fps)


def through_gradio(video, paths) -> list[dict]:
    """Every segment Gradio's streaming output makes of ``paths`` (the flush included)."""
    stream_id = f"test/{time.perf_counter()}"
    segments: list[dict] = []

    async def run() -> None:
        for k, path in enumerate(paths):
            segment, _ = await video.stream_output(str(path), stream_id, k == 0)
            if segment:
                segments.append(segment)
        last = await video.flush_stream_output(stream_id)
        if last:
            segments.append(last)

    asyncio.run(run())
    return segments


def packets(data: bytes) -> list[tuple[str, int, int, int]]:
    """(kind, PID, pts in 90 kHz ticks, size) of every packet of an MPEG-TS."""
    with av.open(io.BytesIO(data), format="mpegts") as c:
        return [(p.stream.type, p.stream.id, int(p.pts), p.size) for p in c.demux() if p.size]


def counters_continue(data: bytes) -> bool:
    """Each PID's continuity counter steps by one (mod 16) on every packet with a payload."""
    last: dict[int, int] = {}
    for o in range(0, len(data), 188):
        pid, cc = ((data[o + 1] & 0x1F) << 8) | data[o + 2], data[o + 3] & 0x0F
        if pid == 0x1FFF or not data[o + 3] & 0x10:
            continue
        if pid in last and cc != (last[pid] + 1) % 16:
            return False
        last[pid] = cc
    return True


@pytest.fixture
def in_process(monkeypatch):
    from studio.live import IN_PROCESS_ENV, in_process_chunks

    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    return in_process_chunks


def test_in_process_segments_are_gradios_own(tmp_path, in_process):
    """Probe, decode and mux in-process give Gradio's segments (both streams here use the
    AAC encoder that waits for its chunk's frames: it is one per process)."""
    paths, n_frames, _ = make_chunks(tmp_path / "ours", 25.0, 5)
    stock_dir = tmp_path / "stock"  # outside the in-process root: Gradio's three commands per chunk
    stock_dir.mkdir()
    stock_paths = [shutil.copy(p, stock_dir / p.name) for p in paths]
    stock, fast = gr.Video(streaming=True), gr.Video(streaming=True)
    assert in_process(fast, tmp_path / "ours")
    t0 = time.perf_counter()
    ref = through_gradio(stock, stock_paths)
    t1 = time.perf_counter()
    got = through_gradio(fast, paths)
    t2 = time.perf_counter()
    print(f"per chunk: Gradio's commands {(t1 - t0) / len(paths) * 1000:.0f} ms, "
          f"in-process {(t2 - t1) / len(paths) * 1000:.0f} ms")
    n = len(paths)  # then the flush: the encoder's last frames (how many are left depends on timing)
    assert [round(s["duration"], 6) for s in got[:n]] == [round(s["duration"], 6) for s in ref[:n]]
    assert [s["extension"] for s in got] == [s["extension"] for s in ref] == [".ts"] * len(ref)
    for a, b in zip(ref[:n], got[:n]):  # the same video packets, on the same PID, at the same times (FFmpeg rounds to 33 us)
        va = [p for p in packets(a["data"]) if p[0] == "video"]
        vb = [p for p in packets(b["data"]) if p[0] == "video"]
        assert [(k, pid, size) for k, pid, _, size in va] == [(k, pid, size) for k, pid, _, size in vb]
        assert max(abs(x[2] - y[2]) for x, y in zip(va, vb)) <= 4
    # the audio (one encoder across chunks: how its frames fall into segments depends on timing)
    whole_a, whole_b = (b"".join(s["data"] for s in segs) for segs in (ref, got))
    aa = [p for p in packets(whole_a) if p[0] == "audio"]
    ab = [p for p in packets(whole_b) if p[0] == "audio"]
    assert [(pid, size) for _, pid, _, size in aa] == [(pid, size) for _, pid, _, size in ab]
    assert {pid for _, pid, _, _ in aa} == {257} and max(abs(x[2] - y[2]) for x, y in zip(aa, ab)) <= 2
    assert counters_continue(whole_b) and counters_continue(whole_a)
    assert sum(1 for p in packets(whole_b) if p[0] == "video") == n_frames


def test_three_minutes_at_24_fps_play_with_continuous_timestamps_and_no_drift(tmp_path, in_process):
    fps = 24.0
    paths, n_frames, n_samples = make_chunks(tmp_path, fps, 188)  # 12 + 187 x 23 frames: 179.7 s
    video = gr.Video(streaming=True)
    assert in_process(video, tmp_path)
    segments = through_gradio(video, paths)
    # no segment longer than the playlist's 1 s target, and no freeze inserted: the video
    # segments' durations add up to exactly the frames (Gradio moves the video clock up to
    # the audio when the audio runs 100 ms ahead, which adds to a segment's duration)
    assert all(math.ceil(s["duration"]) <= 1 for s in segments)
    video_segments = segments[: len(paths)]
    assert sum(s["duration"] for s in video_segments) == pytest.approx(n_frames / fps, abs=1e-6)
    # each segment carries its own chunk's audio: it starts with its video (one AAC frame
    # early, the encoder's delay), not up to a second early with audio the previous one lacked
    early = []
    for seg in video_segments:
        pk = packets(seg["data"])
        a0 = min(p[2] for p in pk if p[0] == "audio")
        v0 = min(p[2] for p in pk if p[0] == "video")
        early.append((v0 - a0) / 90000)
    assert sum(e > 0.1 for e in early) <= len(early) // 20, sorted(early)[-5:]
    whole = b"".join(s["data"] for s in segments)
    assert counters_continue(whole)
    pk = packets(whole)
    vpts = np.array(sorted(p[2] for p in pk if p[0] == "video"))
    apts = np.array(sorted(p[2] for p in pk if p[0] == "audio"))
    assert len(vpts) == n_frames
    steps = np.diff(vpts)
    assert np.all(np.abs(steps - 90000 / fps) <= 2), np.unique(steps)  # no gap, no overlap at any join
    frame = 1024 * 90000 / 48000  # one AAC frame (48 kHz) in ticks
    assert np.all(np.abs(np.diff(apts) - frame) <= 2)  # the audio too runs on without a seam
    # no drift: the audio starts one AAC frame early (the encoder's delay) and ends with the picture
    video_end = vpts[-1] + 90000 / fps
    audio_end = apts[-1] + frame
    assert abs((apts[0] - vpts[0]) + frame) <= 2
    assert abs(audio_end - frame - video_end) <= 2 * frame, (audio_end, video_end)
    with av.open(io.BytesIO(whole), format="mpegts") as c:
        decoded = sum(f.samples for f in c.decode(audio=0))
    assert abs(decoded - 1024 - n_samples) <= 2048  # every sample is there: the delay and the last frame's padding
