"""The review page of a bulk job in a real Chromium: keyboard, touch, order modes, images, errors.

Each test makes its own finished job (the `api` fixture empties the job store): 12 MNIST digits and one broken
file in a ZIP, through the real service and workers. Labels are checked through the API.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import all_results, digit_png, make_zip, wait_job

pytestmark = pytest.mark.browser

N = 12


@pytest.fixture
def review_job(api, mnist_test):
    """(job id, its reviewable items in input order) of a finished job: 12 digits and a broken file."""
    x, _ = mnist_test
    files = {f"scans/{i:03d}.png": digit_png(x[i]) for i in range(6)}
    files["scans/broken.png"] = b"\x89PNG\r\n\x1a\n not really a png"
    files.update({f"scans/{i:03d}.png": digit_png(x[i]) for i in range(6, N)})
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("d.zip", make_zip(files), "application/zip")}, timeout=60)
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded" and job["failed"] == 1, job
    items = all_results(api, job["id"])
    assert [it["status"] for it in items].count("error") == 1
    done = [it for it in items if it["status"] == "done"]
    assert len(done) == N
    return job["id"], done


def lowest_first(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda it: (it["confidence"], it["index"]))


def item(api: str, job_id: str, index: int) -> dict:
    r = requests.get(f"{api}/api/v1/jobs/{job_id}/results?offset={index}&limit=1&include=probabilities", timeout=10)
    return r.json()["items"][0]


def wait_label(api: str, job_id: str, index: int, label, timeout: float = 10) -> dict:
    """The item once the API shows `label` for it (the page saves in the background)."""
    deadline = time.time() + timeout
    while True:
        got = item(api, job_id, index)
        if got["label"] == label or time.time() > deadline:
            assert got["label"] == label, got
            return got
        time.sleep(0.05)


def shown(page):
    return page.get_by_test_id("review-file")


def test_keyboard_only_lowest_confidence_first_label_accept_and_go_back(page, api, review_job):
    job_id, done = review_job
    low = lowest_first(done)
    page.goto(f"/jobs/{job_id}/review")
    progress = page.get_by_test_id("review-progress")
    state = page.get_by_test_id("review-state")
    expect(progress).to_have_text(f"0 of {N} reviewed")  # the broken file is not counted
    expect(progress).to_have_attribute("aria-live", "polite")
    expect(shown(page)).to_have_text(low[0]["filename"])
    expect(page.get_by_test_id("review-digit")).to_have_text(str(low[0]["digit"]))
    expect(page.get_by_test_id("review-pos")).to_have_text(f"Item 1 of {N}")
    expect(state).to_have_text("not reviewed")
    expect(page.get_by_test_id("review-card")).to_be_focused()  # keys work without a click first

    # The top three probabilities, best first, as the API has them.
    probs = item(api, job_id, low[0]["index"])["probabilities"]
    best = sorted(range(10), key=lambda d: (-probs[d], d))[:3]
    top = page.get_by_test_id("review-top").locator("li")
    expect(top).to_have_count(3)
    for li, d in zip(top.all(), best, strict=True):
        expect(li.locator(".digit")).to_have_text(str(d))
        expect(li.locator(".pct")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    screenshot(page, "review.png")

    # A digit key corrects the first item and moves on.
    wrong = (low[0]["digit"] + 1) % 10
    page.keyboard.press(str(wrong))
    expect(shown(page)).to_have_text(low[1]["filename"])
    got = wait_label(api, job_id, low[0]["index"], wrong)
    assert got["corrected"] is True and got["digit"] == low[0]["digit"]
    expect(progress).to_have_text(f"1 of {N} reviewed")

    # Enter accepts the prediction of the next one.
    page.keyboard.press("Enter")
    expect(shown(page)).to_have_text(low[2]["filename"])
    expect(progress).to_have_text(f"2 of {N} reviewed")
    got = wait_label(api, job_id, low[1]["index"], low[1]["digit"])
    assert got["corrected"] is False

    # Backspace goes back one at a time, showing what each got; arrows move without labelling.
    page.keyboard.press("Backspace")
    expect(shown(page)).to_have_text(low[1]["filename"])
    expect(state).to_have_text("accepted")
    expect(page.get_by_role("button", name=str(low[1]["digit"]), exact=True)).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Backspace")
    expect(shown(page)).to_have_text(low[0]["filename"])
    expect(state).to_have_text(f"corrected to {wrong}")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(shown(page)).to_have_text(low[2]["filename"])
    expect(state).to_have_text("not reviewed")
    page.keyboard.press("ArrowLeft")
    expect(shown(page)).to_have_text(low[1]["filename"])
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")  # Space accepts too
    expect(shown(page)).to_have_text(low[3]["filename"])
    expect(progress).to_have_text(f"3 of {N} reviewed")
    wait_label(api, job_id, low[2]["index"], low[2]["digit"])
    expect(page.locator("#review-saving")).to_have_text("")
    job = requests.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()
    assert job["reviewed"] == 3
    assert [it["label"] for it in all_results(api, job_id) if it["index"] not in
            {low[0]["index"], low[1]["index"], low[2]["index"]}] == [None] * (N + 1 - 3)

    # Coming back later starts at the first item not reviewed yet.
    page.reload()
    expect(progress).to_have_text(f"3 of {N} reviewed")
    expect(shown(page)).to_have_text(low[3]["filename"])


def test_touch_digit_buttons_accept_previous_next(phone, api, review_job):
    job_id, done = review_job
    low = lowest_first(done)
    phone.goto(f"/jobs/{job_id}/review")
    pad = phone.get_by_role("group", name="Label this digit as")
    expect(pad.get_by_role("button")).to_have_count(10)
    expect(shown(phone)).to_have_text(low[0]["filename"])
    # Big enough to tap, and nothing wider than the phone.
    for button in pad.get_by_role("button").all() + [phone.get_by_role("button", name="Accept")]:
        box = button.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, box
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390

    wrong = (low[0]["digit"] + 3) % 10
    pad.get_by_role("button", name=str(wrong), exact=True).tap()
    expect(shown(phone)).to_have_text(low[1]["filename"])
    phone.get_by_role("button", name="Accept").tap()
    expect(shown(phone)).to_have_text(low[2]["filename"])
    expect(phone.get_by_test_id("review-progress")).to_have_text(f"2 of {N} reviewed")
    assert wait_label(api, job_id, low[0]["index"], wrong)["corrected"] is True
    assert wait_label(api, job_id, low[1]["index"], low[1]["digit"])["corrected"] is False

    phone.get_by_role("button", name="Previous").tap()
    phone.get_by_role("button", name="Previous").tap()
    expect(shown(phone)).to_have_text(low[0]["filename"])
    expect(phone.get_by_test_id("review-state")).to_have_text(f"corrected to {wrong}")
    expect(phone.get_by_role("button", name="Previous")).to_be_disabled()
    # A second correction of the same item replaces the first.
    pad.get_by_role("button", name=str(low[0]["digit"]), exact=True).tap()
    assert wait_label(api, job_id, low[0]["index"], low[0]["digit"])["corrected"] is False
    expect(shown(phone)).to_have_text(low[1]["filename"])
    phone.get_by_role("button", name="Next").tap()
    expect(shown(phone)).to_have_text(low[2]["filename"])
    expect(phone.get_by_test_id("review-state")).to_have_text("not reviewed")
    expect(phone.get_by_test_id("review-progress")).to_have_text(f"2 of {N} reviewed")
    # After a tap, Enter accepts (focus is not left on the tapped button).
    phone.keyboard.press("Enter")
    expect(phone.get_by_test_id("review-progress")).to_have_text(f"3 of {N} reviewed")
    wait_label(api, job_id, low[2]["index"], low[2]["digit"])
    screenshot(phone, "review-phone.png", full_page=True)


def test_order_modes_input_order_and_corrected_first(page, api, review_job):
    job_id, done = review_job
    page.goto(f"/jobs/{job_id}/review")
    expect(shown(page)).to_have_text(lowest_first(done)[0]["filename"])
    expect(page.get_by_label("Order")).to_have_value("low")

    page.get_by_label("Order").select_option("order")
    expect(page).to_have_url(re.compile(r"/review\?mode=order$"))
    seen = []
    for i in range(N):
        expect(page.get_by_test_id("review-pos")).to_have_text(f"Item {i + 1} of {N}")
        seen.append(shown(page).inner_text())
        if i < N - 1:
            page.get_by_role("button", name="Next").click()
    assert seen == [it["filename"] for it in done]  # input order, the broken file left out
    assert "scans/broken.png" not in seen
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.keyboard.press("ArrowRight")  # past the end: stays, and says so
    expect(page.get_by_test_id("review-end")).to_be_visible()
    expect(page.get_by_test_id("review-pos")).to_have_text(f"Item {N} of {N}")

    # "errors": the corrected item first, then the rest lowest confidence first. The mode survives a reload.
    target = max(done, key=lambda it: it["confidence"])
    r = requests.put(f"{api}/api/v1/jobs/{job_id}/results/{target['index']}/label",
                     json={"label": (target["digit"] + 1) % 10}, timeout=10)
    assert r.status_code == 200
    page.get_by_label("Order").select_option("errors")
    expect(page).to_have_url(re.compile(r"/review\?mode=errors$"))
    page.reload()
    expect(page.get_by_label("Order")).to_have_value("errors")
    expect(shown(page)).to_have_text(target["filename"])
    expect(page.get_by_test_id("review-state")).to_have_text(f"corrected to {(target['digit'] + 1) % 10}")
    page.keyboard.press("ArrowRight")
    rest = lowest_first([it for it in done if it is not target])
    expect(shown(page)).to_have_text(rest[0]["filename"])


def test_images_load_and_the_job_page_links_here(page, review_job):
    job_id, done = review_job
    page.goto(f"/jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    page.get_by_test_id("review-link").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{job_id}/review$"))
    expect(page.get_by_test_id("review-progress")).to_have_text(f"0 of {N} reviewed")
    expect(page.locator("#review-note")).to_contain_text("1 file could not be read")

    for _ in range(3):
        name = shown(page).inner_text()
        original, seen = page.get_by_test_id("review-original"), page.get_by_test_id("review-seen")
        for img in (original, seen):
            expect(img).to_be_visible()
            expect(img).to_have_attribute("alt", re.compile(re.escape(name)))
        page.wait_for_function("""() => ['review-original', 'review-seen'].every(id => {
            const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; })""")
        assert seen.evaluate("i => i.naturalWidth") == 28
        assert 0 < original.evaluate("i => Math.max(i.naturalWidth, i.naturalHeight)") <= 96
        assert seen.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
        assert seen.evaluate("i => i.getBoundingClientRect().width") >= 28 * 4  # scaled up
        index = next(it["index"] for it in done if it["filename"] == name)
        assert seen.evaluate("i => i.src").endswith(f"/api/v1/jobs/{job_id}/results/{index}.png")
        assert original.evaluate("i => i.src").endswith(f"/api/v1/jobs/{job_id}/results/{index}/original")
        page.keyboard.press("ArrowRight")
        expect(shown(page)).not_to_have_text(name)


def test_api_errors_are_shown(page, api, review_job):
    job_id, done = review_job
    page.goto(f"/jobs/{job_id}/review")
    progress = page.get_by_test_id("review-progress")
    expect(progress).to_have_text(f"0 of {N} reviewed")
    first = lowest_first(done)[0]
    assert requests.delete(f"{api}/api/v1/jobs/{job_id}", timeout=10).status_code == 204  # gone under the page
    page.keyboard.press(str(first["digit"]))
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(first["filename"])
    expect(alert).to_contain_text("not saved")
    expect(progress).to_have_text(f"0 of {N} reviewed")  # the label the page showed is taken back
    page.keyboard.press("Backspace")
    expect(page.get_by_test_id("review-state")).to_have_text("not reviewed")

    page.goto("/jobs/" + "0" * 32 + "/review")
    expect(page.get_by_role("alert")).to_contain_text("expired")
    expect(page.get_by_test_id("review-card")).to_be_hidden()


def test_a_job_of_more_than_one_page_of_results(page, api, mnist_test):
    x, _ = mnist_test
    many = 1005
    files = {f"{i:05d}.png": digit_png(x[i]) for i in range(many)}
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("d.zip", make_zip(files), "application/zip")}, timeout=60)
    job_id = r.json()["id"]
    assert wait_job(api, job_id, timeout=240)["status"] == "succeeded"
    items = all_results(api, job_id)
    low = lowest_first(items)
    page.goto(f"/jobs/{job_id}/review")
    expect(page.get_by_test_id("review-progress")).to_have_text(f"0 of {many} reviewed", timeout=30_000)
    expect(page.get_by_test_id("review-pos")).to_have_text(f"Item 1 of {many}")
    expect(shown(page)).to_have_text(low[0]["filename"])
    page.keyboard.press("Enter")
    wait_label(api, job_id, low[0]["index"], low[0]["digit"])
    expect(page.get_by_test_id("review-progress")).to_have_text(f"1 of {many} reviewed")

    # A correction on the second page of results comes first in the "errors" order.
    late = items[1003]
    assert requests.put(f"{api}/api/v1/jobs/{job_id}/results/1003/label", json={"label": (late["digit"] + 1) % 10},
                        timeout=10).status_code == 200
    page.goto(f"/jobs/{job_id}/review?mode=errors")
    expect(page.get_by_test_id("review-progress")).to_have_text(f"2 of {many} reviewed", timeout=30_000)
    expect(shown(page)).to_have_text(late["filename"])
