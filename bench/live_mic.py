"""The mic-driven avatar's latency and frame rate.

    python bench/live_mic.py                         # both modes, 20 s each, a TTS sentence as the voice
    python bench/live_mic.py --mode pipeline --seconds 30
    python bench/live_mic.py --mode browser --wav my_voice.wav

``pipeline``: the server side alone, in process: 20 ms blocks of 16 kHz audio fed in real
time to a MicSession (estimator, warp render, JPEG); latency is from a block's arrival to
the frame that holds its time leaving the pipeline (what the studio reports and exports).

``browser``: the whole path on loopback: ``python launch.py`` on a free port, headless
Chromium with a fake microphone playing the wav, Start microphone on the Live tab; per
frame the server latency (as above, measured at the socket) and the page's own clock from
the audio block leaving the AudioWorklet to the frame drawn (mic to screen), and the
frame rate at the page.

``webrtc`` (for the transport choice, not used by the studio): the same frames sent over
aiortc to an aiortc receiver in this process (VP8, RTP, the receiver's jitter buffer and
decode); latency from a frame being handed to the video track to it being decoded on the
other side, i.e. what WebRTC would add where the WebSocket adds a JPEG and a socket write.
Its ICE runs over this machine's own non-loopback address (aioice drops 127.0.0.1).

Prints p50/p95 (ms) and fps as JSON. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

TEXT = (
    "Welcome to Avatar Studio. Peter picked a bunch of bright purple plums, and maybe a mango for Mom. "
    "Speak into the microphone and the avatar speaks with you."
)


def voice_wav(folder: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    import pipeline
    from pipeline.media.audio import save_wav
    from pipeline.options import VoiceOptions

    return save_wav(pipeline.synthesize(TEXT, VoiceOptions(variation=0.0)).audio, folder / "voice.wav")


def percentiles(values) -> dict[str, float]:
    v = np.asarray(values, float)
    if not len(v):
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    return {"p50": round(float(np.percentile(v, 50)), 1), "p95": round(float(np.percentile(v, 95)), 1), "n": len(v)}


def bench_pipeline(wav: Path, seconds: float) -> dict:
    import pipeline
    from pipeline.live.mic import SR, MicSession
    from pipeline.media.audio import load_audio
    from pipeline.visemes.acoustic import samples_16k

    x = samples_16k(load_audio(wav))
    x = np.tile(np.concatenate([x, np.zeros(SR // 2, np.float32)]), int(np.ceil(seconds * SR / (len(x) + SR // 2))))
    x = x[: int(seconds * SR)]
    session = MicSession(pipeline.prepare_avatar(None))
    lat, compute, times = [], [], []
    t0 = time.perf_counter()
    try:
        for k, i in enumerate(range(0, len(x), 320)):  # a microphone: one 20 ms block every 20 ms
            due = t0 + (i + 320) / SR
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            arrived = time.perf_counter()
            frames = session.feed(x[i : i + 320], arrived)
            compute.append(time.perf_counter() - arrived)
            for f in frames:
                lat.append(1000 * session.sent(f))
                times.append(time.perf_counter())
    finally:
        session.close()
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "mode": "pipeline",
        "seconds": seconds,
        "latency_ms": percentiles(lat),
        "compute_per_block_ms": percentiles(1000 * np.array(compute)),
        "fps": round(fps, 2),
        "lookahead_ms": round(1000 * session.visemes.lookahead, 1),
    }


def bench_browser(wav: Path, seconds: float, folder: Path) -> dict:
    from playwright.sync_api import sync_playwright
    from test_studio import serve_studio

    # serve_studio (the tests' helper) starts and stops `python launch.py` on a free port
    with serve_studio(folder / "server.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
        ])
        page = browser.new_page()
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Live").click()
        clicked = time.perf_counter()
        page.locator("#live-mic-start").click()
        page.wait_for_function("() => window.avatarLiveMic && window.avatarLiveMic.frames > 0", timeout=60_000)
        first = time.perf_counter() - clicked
        time.sleep(1.0)  # settle
        t0, f0 = page.evaluate("() => [performance.now(), window.avatarLiveMic.frames]")
        n0 = page.evaluate("() => [window.avatarLiveMic.serverLatencies.length, window.avatarLiveMic.micToScreen.length]")
        time.sleep(seconds)
        t1, f1 = page.evaluate("() => [performance.now(), window.avatarLiveMic.frames]")
        server = page.evaluate(f"() => window.avatarLiveMic.serverLatencies.slice({n0[0]})")
        screen = page.evaluate(f"() => window.avatarLiveMic.micToScreen.slice({n0[1]})")
        stats = page.locator("#live-mic-stats").inner_text()
        page.locator("#live-mic-stop").click()
        browser.close()
    return {
        "mode": "browser",
        "seconds": seconds,
        "start_to_first_frame_s": round(first, 2),
        "server_latency_ms": percentiles(server),
        "mic_to_screen_ms": percentiles(screen),
        "fps_at_page": round((f1 - f0) / ((t1 - t0) / 1000.0), 2),
        "stats_line": stats,
    }


def bench_webrtc(seconds: float) -> dict:
    import asyncio

    from aiortc import RTCPeerConnection, VideoStreamTrack
    from av import VideoFrame

    import pipeline
    from pipeline.live.mic import MicSession

    session = MicSession(pipeline.prepare_avatar(None))
    voice = (np.random.default_rng(0).standard_normal(640) * 0.05).astype(np.float32)

    class AvatarTrack(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.handed: dict[int, float] = {}

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frames = []
            while not frames:
                frames = session.feed(voice, time.perf_counter())
            frame = VideoFrame.from_ndarray(np.ascontiguousarray(frames[-1].image), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            self.handed[pts] = time.perf_counter()
            return frame

    async def run() -> dict:
        sender, receiver = RTCPeerConnection(), RTCPeerConnection()
        track = AvatarTrack()
        sender.addTrack(track)
        got: asyncio.Queue = asyncio.Queue()
        receiver.on("track", got.put_nowait)
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        remote = await asyncio.wait_for(got.get(), 30)
        lat, n, t0 = [], 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            frame = await remote.recv()
            n += 1
            if frame.pts in track.handed and n > 25:
                lat.append(1000 * (time.perf_counter() - track.handed[frame.pts]))
        elapsed = time.perf_counter() - t0
        await sender.close()
        await receiver.close()
        return {"mode": "webrtc", "seconds": seconds, "added_latency_ms": percentiles(lat), "fps": round(n / elapsed, 1)}

    try:
        return asyncio.run(run())
    finally:
        session.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("pipeline", "browser", "webrtc", "both"), default="both")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--wav", help="the voice the fake microphone plays (default: a TTS sentence)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wav = voice_wav(folder, args.wav)
        out = []
        if args.mode in ("pipeline", "both"):
            out.append(bench_pipeline(wav, args.seconds))
            print(json.dumps(out[-1]), flush=True)
        if args.mode in ("browser", "both"):
            out.append(bench_browser(wav, args.seconds, folder))
            print(json.dumps(out[-1]), flush=True)
        if args.mode == "webrtc":
            out.append(bench_webrtc(args.seconds))
            print(json.dumps(out[-1]), flush=True)


if __name__ == "__main__":
    main()
