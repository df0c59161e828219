"""API docs from local assets, navigation, and the token prompt when API_TOKEN is set."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect
from stack import Stack

from tests.browser.conftest import open_page
from tests.browser.test_draw import ONE, expect_digit, mouse_stroke

pytestmark = pytest.mark.browser


def test_api_docs_render_from_local_assets(page):
    page.goto("/")
    page.get_by_role("navigation").get_by_role("link", name="API docs").click()
    expect(page).to_have_url(re.compile(r"/api/docs/?$"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("digitflow")
    expect(page.locator(".opblock-summary-path").filter(has_text="/api/v1/predict")).to_be_visible()
    assert page.locator(".opblock").count() >= 8  # the page fixture also fails on any request outside the service


def test_navigation_and_labels(page):
    page.goto("/upload")
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Upload")).to_have_attribute("aria-current", "page")
    expect(page.get_by_label("Choose a ZIP of images, or several images")).to_have_attribute("data-testid", "upload-input")
    nav.get_by_role("link", name="Draw").click()
    expect(page.get_by_test_id("draw-canvas")).to_be_visible()
    expect(page.get_by_test_id("prediction")).to_have_attribute("aria-live", "polite")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


@pytest.fixture
def token_web(stack, redis_url, tmp_path):
    """A second web server sharing Redis and the workers, with API_TOKEN set."""
    s = Stack({"REDIS_URL": redis_url, "RATE_LIMIT": "", "API_TOKEN": "browser-secret-123",
               "SECRET_KEY": "browser-test-key"}, tmp_path / "logs")
    s.start("web")
    try:
        s.wait_ready()
        yield s.url
    finally:
        s.stop_all()


def test_token_is_asked_once_and_kept_in_the_session(browser, token_web):
    context, page, watch = open_page(browser, token_web)
    try:
        assert requests.post(f"{token_web}/api/v1/predict", json={"pixels": [[0] * 28] * 28}, timeout=10).status_code == 401
        page.goto("/upload")
        expect(page).to_have_url(re.compile(r"/login\?next=/upload$"))
        page.get_by_label("API token").fill("wrong")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("alert")).to_contain_text("not valid")
        page.get_by_label("API token").fill("browser-secret-123")
        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_url(re.compile(r"/upload$"))
        assert "browser-secret-123" not in page.content()
        page.goto("/")
        assert "browser-secret-123" not in page.content()
        mouse_stroke(page, ONE)
        expect_digit(page, 1)
    finally:
        context.close()
    watch.check()
