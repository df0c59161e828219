"""The draw page in a real Chromium: mouse strokes, touch strokes, probabilities, preview, clear."""

from __future__ import annotations

import math
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

ONE = [(0.5, 0.12), (0.5, 0.88)]  # a vertical bar
ONE_UPWARDS = list(reversed(ONE))  # drawn bottom to top: a finger swipe that would scroll the page down
ZERO = [(0.5 + 0.27 * math.sin(t / 24 * 2 * math.pi), 0.5 - 0.36 * math.cos(t / 24 * 2 * math.pi)) for t in range(25)]
SEVEN = [(0.22, 0.18), (0.78, 0.18), (0.42, 0.88)]


def to_page(canvas, points):
    box = canvas.bounding_box()
    return [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]


def mouse_stroke(page, points, steps: int = 6) -> None:
    pts = to_page(page.get_by_test_id("draw-canvas"), points)
    page.mouse.move(*pts[0])
    page.mouse.down()
    for x, y in pts[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def touch_stroke(page, cdp, points, steps: int = 6) -> None:
    """A real touch sequence through the DevTools protocol (Chromium turns it into pointerType=touch)."""
    pts = to_page(page.get_by_test_id("draw-canvas"), points)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": pts[0][0], "y": pts[0][1], "id": 1}]})
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        for i in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y, "id": 1}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def expect_digit(page, digit: int) -> str:
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_have_text(re.compile(rf"^{digit} \(\d+(\.\d)?%\)"))
    return prediction.inner_text()


def canvas_ink(page) -> int:
    """How many canvas pixels are lit (the pad draws white ink on black)."""
    return page.get_by_test_id("draw-canvas").evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 127) n++; return n; }""")


def test_draw_with_the_mouse_predicts_shows_bars_and_preview_and_clears(page):
    page.goto("/")
    expect(page.get_by_test_id("prediction")).not_to_have_text(re.compile(r"^\d"))
    assert page.get_by_test_id("draw-canvas").evaluate("c => getComputedStyle(c).touchAction") == "none"

    mouse_stroke(page, ONE)
    expect_digit(page, 1)
    bars = page.get_by_test_id("probabilities").locator("li")
    expect(bars).to_have_count(10)
    expect(bars.nth(1)).to_have_class(re.compile(r"\bbest\b"))
    # Rendered bar lengths, as a fraction of their tracks: they add up to about 1 and the "1" bar is longest.
    page.wait_for_function("() => document.getAnimations().length === 0")  # the bars' transitions are over
    widths = bars.locator(".bar").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().width / e.parentNode.getBoundingClientRect().width)")
    assert len(widths) == 10 and 0.9 < sum(widths) < 1.1 and max(widths) == widths[1] > 0.5
    preview = page.get_by_test_id("preview")
    expect(preview).to_be_visible()
    assert preview.get_attribute("src").startswith("data:image/png;base64,")
    assert preview.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [28, 28]
    assert preview.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"

    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("prediction")).not_to_have_text(re.compile(r"^\d"))
    expect(preview).to_be_hidden()
    assert canvas_ink(page) == 0

    mouse_stroke(page, ZERO, steps=3)
    expect_digit(page, 0)
    page.get_by_test_id("clear").click()
    mouse_stroke(page, SEVEN)
    expect_digit(page, 7)
    screenshot(page, "draw.png")


def test_draw_as_a_touch_device_without_scrolling_the_page(phone):
    page = phone
    page.goto("/")
    cdp = page.context.new_cdp_session(page)
    canvas = page.get_by_test_id("draw-canvas")
    canvas.scroll_into_view_if_needed()
    scroll_before = page.evaluate("window.scrollY")
    scrollable = page.evaluate("document.documentElement.scrollHeight > window.innerHeight")

    touch_stroke(page, cdp, ONE_UPWARDS)
    expect_digit(page, 1)
    assert canvas.evaluate("c => c.dataset.pointerType") == "touch"
    assert scrollable, "the phone layout should be taller than the screen, or the scroll check proves nothing"
    assert page.evaluate("window.scrollY") == scroll_before, "drawing scrolled the page"
    expect(page.get_by_test_id("preview")).to_be_visible()
    expect(page.get_by_test_id("probabilities").locator("li")).to_have_count(10)

    page.get_by_test_id("clear").tap()
    assert canvas_ink(page) == 0
    touch_stroke(page, cdp, ZERO, steps=3)
    expect_digit(page, 0)
    screenshot(page, "draw-phone.png", scale="css")


def test_no_digit_found_is_a_friendly_message(page):
    page.goto("/")
    # Start a stroke, then paint the pad black before lifting: the service gets a blank image (422).
    pts = to_page(page.get_by_test_id("draw-canvas"), ONE)
    page.mouse.move(*pts[0])
    page.mouse.down()
    page.mouse.move(*pts[1], steps=3)
    page.get_by_test_id("draw-canvas").evaluate(
        "c => { const x = c.getContext('2d'); x.save(); x.fillStyle = '#000'; x.fillRect(0, 0, c.width, c.height); x.restore(); }")
    page.mouse.up()
    expect(page.get_by_role("alert")).to_contain_text("couldn't find a digit")
    expect(page.get_by_test_id("prediction")).to_have_text("No prediction")
