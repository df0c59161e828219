"""Browser fixtures: Debian's Chromium driven by Playwright for Python (never `playwright install`).

Without a Chromium the browser tests skip with a message saying how to get one -- except under
CI=true, where a missing browser is a failure. SCREENSHOTS=1 refreshes docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    given = os.environ.get("CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing browser is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    exe = chromium_path()
    if exe is None:
        unavailable("no Chromium at /usr/bin/chromium: install it with `apt-get install chromium` "
                    "(or set CHROMIUM=/path/to/chromium) to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is missing: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageWatch:
    """Fails the test on uncaught page errors and on any request that leaves the service (no CDNs)."""

    def __init__(self, page, base: str):
        self.base, self.errors, self.external = base, [], []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", self._request)

    def _request(self, req) -> None:
        url = req.url
        if url.startswith(("http:", "https:", "ws:", "wss:")) and not url.startswith(self.base + "/"):
            self.external.append(url)

    def check(self) -> None:
        assert not self.errors, f"JavaScript errors: {self.errors}"
        assert not self.external, f"requests outside the service: {self.external}"


def open_page(browser, base: str, **context_args):
    context = browser.new_context(base_url=base, **context_args)
    context.set_default_timeout(15_000)
    page = context.new_page()
    return context, page, PageWatch(page, base)


@pytest.fixture
def page(browser, api):
    """A desktop page on the running service (fresh context: no cookies)."""
    context, pg, watch = open_page(browser, api, viewport={"width": 1100, "height": 800})
    yield pg
    context.close()
    watch.check()


@pytest.fixture
def phone(browser, api):
    """A phone-sized touch page (has_touch, is_mobile)."""
    context, pg, watch = open_page(browser, api, viewport={"width": 390, "height": 700}, device_scale_factor=2,
                                   has_touch=True, is_mobile=True)
    yield pg
    context.close()
    watch.check()


def screenshot(page, name: str, **kwargs) -> None:
    """docs/screenshots/<name> when SCREENSHOTS=1 (kept out of ordinary runs so the tree stays clean)."""
    if os.environ.get("SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), animations="disabled", **kwargs)
