"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright
(its own browser downloads are never used).

Import it at the top of a browser test module: the module is skipped when the playwright
package or the browser is missing. :func:`launch` starts the browser (skipping the test
when it cannot start), :func:`open_page` opens a page of the studio.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

try:
    from playwright.sync_api import Browser, Page
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError as exc:
    pytest.skip(f"playwright is not installed ({exc})", allow_module_level=True)
if not CHROMIUM.exists():
    pytest.skip(f"Chromium not found at {CHROMIUM}", allow_module_level=True)


@contextlib.contextmanager
def launch(*extra_args: str) -> Iterator[Browser]:
    """A headless Chromium with :data:`CHROMIUM_ARGS` and ``extra_args``; closed after."""
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + list(extra_args),
                                        timeout=30_000)
        except PlaywrightError as exc:
            pytest.skip(f"Chromium could not start: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, url: str) -> Page:
    """A 1280x1000 page at ``url`` with a 30 s default timeout, once its DOM is loaded."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(url, wait_until="domcontentloaded")
    return page
