"""Streaming preview: time to the first chunk on disk, and steady-state speed.

    python bench/live_stream.py [--repeat 5] [--size 512] [--minutes 3]

Measures, in one process that has been warmed up the way the Live tab warms up when it is
opened (face found, voice, engine and encoders loaded by a one-word stream):
- first chunk: from the call (what Speak does: parts of the script, one render session
  over them, chunk files) to the first chunk file on disk, for one sentence and for a
  3-minute script (the same sentence first);
- steady state: seconds of video rendered and written per second of wall-clock time
  after the first chunk, over the whole 3-minute script, and the frame count against
  round(audio duration * fps);
- cold: the first chunk in a fresh process with nothing warmed (face, voice, engine);
- recording: the first chunk of a 60 s recording without transcript (timed per segment);
With ``--browser``: the studio is started (``launch.py`` on a free loopback port) and a
headless Chromium (/usr/bin/chromium, Playwright) opens the Live tab, clicks Speak for
one sentence and for the 3-minute script, and reports the time from the click to the
video's clock running, then watches ``--watch`` seconds of playback for stalls (a monitor in
the page: the video's clock not moving for more than 0.25 s). ``--fresh`` starts a new browser for
each case; ``--gradio-ffmpeg`` leaves the chunks to Gradio's own three FFmpeg commands per chunk
(the reference for ``pipeline.live.hls``). Prints JSON with medians and the load average before
and after. Not a test; numbers on a shared machine are noisy: compare arms run interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli_speed import SENTENCES  # noqa: E402  (the same sentences as the CLI bench)

FIRST = "Hello! This is the live preview, and it starts right away."


def script(seconds: float) -> str:
    text, n = [FIRST], len(FIRST.split())
    while n < seconds * 3.0:  # the bundled voice says ~3 words per second
        s = SENTENCES[len(text) % len(SENTENCES)]
        text.append(s)
        n += len(s.split())
    return " ".join(text)


def one(avatar, text: str, size: int, whole: bool) -> dict:
    import pipeline
    from pipeline.options import RenderOptions, VoiceOptions

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        preview = pipeline.stream_preview(avatar, pipeline.live_text_parts(text, VoiceOptions()), folder,
                                          RenderOptions(size=size), started=t0)
        first_at = None
        for path in preview:
            if first_at is None:
                first_at = time.perf_counter()
                assert path.exists()
                if not whole:
                    break
        preview.wait()  # the next run starts with no thread of this one left
        st = preview.stats
        out = {"first_chunk_ms": round(st.first_chunk * 1000, 1)}
        if whole:
            steady = (st.audio_s - 0.48) / max(1e-9, (st.finished or time.perf_counter()) - first_at)
            out.update(
                audio_s=round(st.audio_s, 2), chunks=st.chunks, wall_s=round(st.wall_s, 2),
                steady_x_realtime=round(steady, 2), frames=st.frames,
                frames_expected=round(preview.session.speech.duration * 25),
            )
        return out


def recording_first(avatar, size: int, seconds: float) -> float:
    """First chunk of a recording (the long script spoken, written as WAV), timed per segment."""
    import pipeline
    from pipeline.export.wav import write_wav
    from pipeline.options import RenderOptions

    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        write_wav(pipeline.synthesize(script(seconds)).audio, wav)
        t0 = time.perf_counter()
        preview = pipeline.stream_preview(avatar, pipeline.live_recording_parts(wav), Path(folder) / "out",
                                          RenderOptions(size=size), started=t0)
        for _ in preview:
            break
        preview.wait()
        return preview.stats.first_chunk or 0.0


def cold(size: int) -> float:
    code = (
        "import sys, time, tempfile; sys.path.insert(0, %r); t0 = time.perf_counter(); import pipeline;"
        "from pipeline.options import RenderOptions;"
        "a = pipeline.prepare_avatar(None);"
        "p = pipeline.stream_preview(a, pipeline.live_text_parts(%r), tempfile.mkdtemp(), RenderOptions(size=%d),"
        " started=t0); it = iter(p); next(it); it.close(); p.wait(); print(p.stats.first_chunk, flush=True)"
    ) % (str(ROOT), FIRST, size)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


PLAYING_JS = """() => { const v = document.querySelector('#live-video video');
  return v ? {t: v.currentTime, paused: v.paused, ended: v.ended} : null; }"""


# In the page: every 50 ms, a stretch where the video's clock did not move for over 250 ms counts as a stall
MONITOR_JS = """() => {
  const v = document.querySelector('#live-video video');
  const s = window.__stall = {n: 0, total: 0, longest: 0, last: v.currentTime, lastMove: performance.now()};
  window.__stallTimer = setInterval(() => {
    const now = performance.now();
    if (v.currentTime > s.last) {
      const gap = now - s.lastMove;
      if (gap > 250) { s.n += 1; s.total += gap; s.longest = Math.max(s.longest, gap); }
      s.last = v.currentTime; s.lastMove = now;
    } else if (v.ended) { s.lastMove = now; }
  }, 50);
}"""


def browser(long: str, repeat: int, watch: float, fresh: bool) -> dict:
    import os
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               NO_PROXY="127.0.0.1,localhost")
    log = open(tempfile.mktemp(suffix=".log"), "wb")
    server = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    results: dict = {}
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
    try:
        import httpx

        for _ in range(240):
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        with sync_playwright() as p:
            b = None

            def open_page():
                nonlocal b
                if b is None or fresh:
                    if b is not None:
                        b.close()
                    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
                page = b.new_page()
                page.goto(url, wait_until="domcontentloaded")
                page.get_by_role("tab", name="Live").click()
                page.locator("#live-speak").wait_for()
                page.wait_for_timeout(3000)  # the tab's warm-up
                return page

            for name, text in (("one_sentence", FIRST), ("long_script", long)):
                starts, stalls = [], []
                for _ in range(repeat):
                    page = open_page()
                    page.locator("#live-text textarea").fill(text)
                    page.locator("#live-speak").click()
                    t0 = time.perf_counter()
                    while True:
                        st = page.evaluate(PLAYING_JS)
                        if st and st["t"] > 0 and not st["paused"]:
                            break
                        if time.perf_counter() - t0 > 30:
                            break
                        time.sleep(0.02)
                    starts.append(round(time.perf_counter() - t0, 2))
                    t_start = st["t"] if st else 0.0
                    page.evaluate(MONITOR_JS)
                    span = watch if name == "long_script" else 2.0
                    page.wait_for_timeout(int(span * 1000))
                    mon = page.evaluate("() => { clearInterval(window.__stallTimer); return window.__stall; }")
                    stalls.append({"stalls": mon["n"], "stalled_s": round(mon["total"] / 1000, 2),
                                   "longest_s": round(mon["longest"] / 1000, 2),
                                   "media_advanced_s": round(mon["last"] - t_start, 2), "watched_s": span})
                    page.locator("#live-stop").click()
                    page.close()
                results[name] = {"click_to_playing_s": {"median": statistics.median(starts), "runs": starts},
                                 "stalls": {"count_median": statistics.median(w["stalls"] for w in stalls),
                                            "total_s_median": statistics.median(w["stalled_s"] for w in stalls),
                                            "longest_s_max": max(w["longest_s"] for w in stalls)},
                                 "watch": stalls}
            if b is not None:
                b.close()
    finally:
        server.terminate()
        server.wait(10)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--browser", action="store_true", help="time Speak -> playback in headless Chromium")
    ap.add_argument("--fresh", action="store_true", help="with --browser: a new browser per run")
    ap.add_argument("--watch", type=float, default=20.0, help="with --browser: seconds of playback watched")
    ap.add_argument("--gradio-ffmpeg", action="store_true",
                    help="with --browser: leave the chunks to Gradio's own FFmpeg commands (the reference)")
    args = ap.parse_args()
    if args.browser:
        import os

        if args.gradio_ffmpeg:
            os.environ["AVATAR_STUDIO_LIVE_GRADIO_FFMPEG"] = "1"  # the studio started below inherits it
        load0 = os.getloadavg()
        out = browser(script(args.minutes * 60), args.repeat, args.watch, args.fresh)
        print(json.dumps({"cores": os.cpu_count(), "load_avg_before": load0, "load_avg": os.getloadavg(),
                          "fresh_browser": args.fresh, "gradio_ffmpeg": args.gradio_ffmpeg, **out}, indent=2))
        return

    import os

    import pipeline

    avatar = pipeline.prepare_avatar(None)
    one(avatar, "Hi.", args.size, whole=True)  # the Live tab's warm-up
    long = script(args.minutes * 60)
    short_runs, long_first = [], []
    for _ in range(args.repeat):  # interleaved, so load from elsewhere hits both alike
        short_runs.append(one(avatar, FIRST, args.size, whole=False)["first_chunk_ms"])
        long_first.append(one(avatar, long, args.size, whole=False)["first_chunk_ms"])
    whole = one(avatar, long, args.size, whole=True)
    colds = [round(cold(args.size) * 1000, 1) for _ in range(max(1, args.repeat // 2))]
    recs = [round(recording_first(avatar, args.size, 60.0) * 1000, 1) for _ in range(max(1, args.repeat // 2))]
    print(json.dumps({
        "size": args.size, "cores": os.cpu_count(), "load_avg": os.getloadavg(),
        "first_chunk_ms_one_sentence": {"median": statistics.median(short_runs), "runs": short_runs},
        "first_chunk_ms_long_script": {"median": statistics.median(long_first), "runs": long_first,
                                       "script_chars": len(long)},
        "long_script_whole_stream": whole,
        "cold_process_first_chunk_ms": {"median": statistics.median(colds), "runs": colds},
        "first_chunk_ms_recording_60s_no_transcript": {"median": statistics.median(recs), "runs": recs},
    }, indent=2))


if __name__ == "__main__":
    main()
