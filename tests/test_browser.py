"""The studio page in a real headless Chromium (Playwright): tabs, layout, an error toast.

Skipped when the playwright package or /usr/bin/chromium is missing (Playwright's own
browser downloads are never used).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from chromium import launch, open_page  # noqa: E402  (same folder; skips this module without Chromium)
from test_studio import serve_studio  # noqa: E402  (same folder: pytest puts it on sys.path)


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory) -> Iterator[str]:
    with serve_studio(tmp_path_factory.mktemp("studio") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(studio_url):
    with launch() as browser:
        page = open_page(browser, studio_url)
        page.get_by_role("tab", name="Avatar").wait_for()
        yield page


def test_tabs_and_screenshot(page, tmp_path):
    tabs = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
    assert tabs == ["Avatar", "Voice", "Background", "Render", "Live", "Batch", "Jobs", "Models"]
    assert page.get_by_role("heading", name="Avatar Studio").is_visible()
    assert page.get_by_role("button", name="Detect face").is_visible()
    shot = tmp_path / "studio.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_render_without_text_shows_the_error(page, tmp_path):
    page.get_by_role("tab", name="Render").click()
    for label in ("Frame rate (fps)", "Output size", "Mouth movement", "Eye blinks", "Seed"):
        assert page.get_by_text(label, exact=True).first.is_visible(), label
    page.get_by_role("button", name="Render", exact=True).click()
    page.get_by_text("The text is empty").first.wait_for()
    page.screenshot(path=str(tmp_path / "render-error.png"))


def test_voice_source_switches_the_inputs(page):
    page.get_by_role("tab", name="Voice").click()
    text = page.get_by_label("Text", exact=True)
    assert text.is_visible() and page.get_by_role("button", name="Preview voice").is_visible()
    page.get_by_label("Microphone or file").check()
    text.wait_for(state="hidden")
    assert page.get_by_text("Speech", exact=True).first.is_visible()
    page.get_by_label("Text (TTS)").check()
    text.wait_for(state="visible")
