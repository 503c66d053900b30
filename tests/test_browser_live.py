"""The Live tab in a real headless Chromium: Speak streams the script into the HLS player,
which starts playing while the rest renders; Stop ends the stream.

Skipped when the playwright package or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from chromium import launch, open_page  # noqa: E402  (same folder; skips this module without Chromium)
from test_studio import serve_studio  # noqa: E402

PLAYING_JS = """() => {
  const v = document.querySelector('#live-video video');
  if (!v) return null;
  return {t: v.currentTime, paused: v.paused, ready: v.readyState, muted: v.muted,
          audio: v.mozHasAudio || (v.webkitAudioDecodedByteCount || 0) > 0 || (v.audioTracks ? v.audioTracks.length : 0)};
}"""

SCRIPT = " ".join(
    f"Sentence number {i} of the live preview test is being spoken now." for i in range(1, 9)
)


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory) -> Iterator[str]:
    with serve_studio(tmp_path_factory.mktemp("studio-live") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(studio_url):
    with launch("--autoplay-policy=no-user-gesture-required") as browser:
        page = open_page(browser, studio_url)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-speak").wait_for()
        yield page


def _wait_playing(page, timeout: float, since: float = 0.0) -> tuple[float, dict]:
    """Seconds until the live video's clock runs past ``since`` (unpaused), and its state."""
    t0 = time.perf_counter()
    state = None
    while time.perf_counter() - t0 < timeout:
        state = page.evaluate(PLAYING_JS)
        if state and not state["paused"] and state["t"] > since:
            return time.perf_counter() - t0, state
        time.sleep(0.05)
    raise AssertionError(f"the live video did not play within {timeout:.0f} s (last state {state})")


def test_speak_plays_while_rendering_and_stop_ends_it(page, tmp_path):
    box = page.locator("#live-text textarea")
    box.fill(SCRIPT)
    # the tab's warm-up (face, voice, encoders) has run when the first Speak matters most
    page.wait_for_timeout(1500)
    page.locator("#live-speak").click()
    t_click = time.perf_counter()
    waited, state = _wait_playing(page, timeout=20.0)
    print(f"Speak -> playback {time.perf_counter() - t_click:.2f} s")
    status = page.locator("#live-status").inner_text()
    assert "Streaming" in status or "Done" in status, status
    # it keeps playing past the first chunk (0.48 s) while the rest is rendered
    deadline = time.perf_counter() + 15.0
    later = page.evaluate(PLAYING_JS)
    while later["t"] < 1.0 and time.perf_counter() < deadline:
        page.wait_for_timeout(100)
        later = page.evaluate(PLAYING_JS)
    assert not later["paused"] and later["t"] >= 1.0, later
    assert later["audio"], later  # hls.js took the audio track from the first segment: the stream is not silent
    page.screenshot(path=str(tmp_path / "live.png"))
    page.locator("#live-stop").click()
    page.get_by_text("Stopped").first.wait_for(timeout=5000)
