"""Bulk upload in a real Chromium: a ZIP of MNIST digits, both progress bars, the table, CSV, cancel."""

from __future__ import annotations

import csv
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import digit_png, make_zip, wait_job

pytestmark = pytest.mark.browser

N = 300


def progress(page) -> tuple[float, float]:
    return tuple(page.get_by_test_id("progress").evaluate("p => [p.value, p.max]"))


def test_upload_a_zip_watch_progress_then_table_filters_sorting_and_csv(page, mnist_test, tmp_path):
    x, y = mnist_test
    files = {f"scans/{i:03d}.png": digit_png(x[i]) for i in range(N)}
    files["scans/broken.png"] = b"\x89PNG\r\n\x1a\n not really a png"
    archive = tmp_path / "digits.zip"
    archive.write_bytes(make_zip(files))
    total = N + 1

    page.goto("/upload")
    expect(page.get_by_test_id("results")).to_be_hidden()
    # Record every value the job progress bar takes, to see it move and reach 100%.
    page.evaluate("""() => { window.seen = [];
        new MutationObserver(() => { const p = document.querySelector('[data-testid=progress]');
            window.seen.push([p.value, p.max]); })
          .observe(document.querySelector('[data-testid=progress]'), {attributes: true}); }""")
    page.get_by_test_id("upload-input").set_input_files(archive)
    expect(page.locator("#chosen")).to_contain_text("digits.zip")
    page.get_by_test_id("upload-submit").click()

    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=60_000)
    assert progress(page) == (total, total)
    seen = page.evaluate("window.seen")
    print("job progress bar values seen:", seen)
    assert seen[-1] == [total, total]
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    assert page.locator("#upload-progress").evaluate("p => p.value === p.max")

    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(total)
    first = rows.first
    expect(first.locator("td").nth(2)).to_have_text("scans/000.png")
    expect(first.locator("td").nth(3)).to_have_text(str(y[0]))
    expect(first.locator("img")).to_have_attribute("src", f"/api/v1/jobs/{job_id}/results/0.png")
    expect(first.locator("img")).to_have_attribute("loading", "lazy")
    assert first.locator("img").evaluate("i => i.decode().then(() => i.naturalWidth)") == 28

    # Low confidence is highlighted; the error row is marked and is all the "errors only" filter leaves.
    low = page.locator("tbody tr.low")
    for conf in low.locator("td.conf").all_inner_texts()[:20]:
        assert float(conf.split("%")[0]) < 80
    page.get_by_label("Errors only").check()
    visible = page.locator("tbody tr:visible")
    expect(visible).to_have_count(1)
    expect(visible.first).to_contain_text("broken.png")
    expect(visible.first).to_contain_text("error")
    page.get_by_label("Errors only").uncheck()
    expect(page.locator("tbody tr:visible")).to_have_count(total)

    # Sorting by confidence: ascending, then descending (the error row, with no confidence, stays last).
    page.get_by_role("button", name="Confidence").click()
    confs = [float(c.rstrip("%")) for c in page.locator("tbody td.conf").all_inner_texts() if c]
    assert confs == sorted(confs) and len(confs) == N
    expect(page.locator("th", has=page.get_by_role("button", name="Confidence"))).to_have_attribute("aria-sort", "ascending")
    page.wait_for_function("""() => [...document.querySelectorAll('tbody img')]
        .filter(i => i.getBoundingClientRect().top < innerHeight)
        .every(i => i.complete && i.naturalWidth === 28)""")  # the thumbnails in view have loaded
    screenshot(page, "upload.png")
    page.get_by_role("button", name="Confidence").click()
    confs = [float(c.rstrip("%")) for c in page.locator("tbody td.conf").all_inner_texts() if c]
    assert confs == sorted(confs, reverse=True)

    with page.expect_download() as download:
        page.get_by_test_id("csv-link").click()
    with open(download.value.path(), newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["index", "filename", "status", "digit", "confidence", "label", "corrected", "model_version",
                        "error"]
    body = lines[1:]
    assert len(body) == total
    predicted = {row[1]: row[3] for row in body}
    right = sum(predicted[f"scans/{i:03d}.png"] == str(y[i]) for i in range(N))
    assert right >= 0.85 * N, f"only {right}/{N} right"
    assert [row[2] for row in body].count("error") == 1

    # The job page is shareable: a fresh load shows the same job and table.
    page.goto(f"/jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("results").locator("tbody tr")).to_have_count(total)
    assert progress(page) == (total, total)


def test_cancel_a_running_job(page, mnist_test, tmp_path):
    x, _ = mnist_test
    archive = tmp_path / "many.zip"
    archive.write_bytes(make_zip({f"{i:05d}.png": digit_png(x[i % len(x)]) for i in range(4000)}))
    page.goto("/upload")
    page.get_by_test_id("upload-input").set_input_files(archive)
    page.get_by_test_id("upload-submit").click()
    cancel = page.get_by_test_id("cancel")
    expect(cancel).to_be_visible()
    cancel.click()
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(cancel).to_be_hidden()
    value, maximum = progress(page)
    assert maximum == 4000 and value < maximum


def test_unknown_job_page_says_so(page):
    page.goto("/jobs/" + "0" * 32)
    expect(page.get_by_test_id("job-status")).to_have_text("not found")
    expect(page.get_by_role("alert").filter(has_text="expired")).to_be_visible()


def test_drop_several_images_onto_the_zone(page, mnist_test):
    x, y = mnist_test
    page.goto("/upload")
    names = [f"digit-{i}.png" for i in range(3)]
    pngs = [list(digit_png(x[i])) for i in range(3)]
    # A real drop event carrying File objects, as the browser makes for files dragged from the desktop.
    page.locator("#dropzone").evaluate("""(zone, [names, pngs]) => {
        const dt = new DataTransfer();
        names.forEach((n, i) => dt.items.add(new File([new Uint8Array(pngs[i])], n, {type: 'image/png'})));
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [names, pngs])
    expect(page.locator("#chosen")).to_contain_text("3 files")
    page.get_by_test_id("upload-submit").click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=30_000)
    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(3)
    assert rows.locator("td.file").all_inner_texts() == names
    assert rows.locator("td.digit").all_inner_texts() == [str(v) for v in y[:3]]


def test_a_job_that_has_already_finished_when_the_upload_is_answered_shows_its_results(page, api, mnist_test):
    # A worker can finish a few small images before the web reads the job back for its 202 answer; the
    # answer then says "succeeded" and no poll follows. Hold the answer until the job is over, as that race does.
    x, y = mnist_test
    answered = []

    def answer_after_the_job_ends(route):
        created = route.fetch()
        finished = wait_job(api, created.json()["id"])
        answered.append(finished["status"])
        route.fulfill(response=created, json=finished)

    page.route(re.compile(r".*/api/v1/jobs$"), answer_after_the_job_ends)
    page.goto("/upload")
    page.get_by_test_id("upload-input").set_input_files(files=[{"name": f"d{i}.png", "mimeType": "image/png",
                                           "buffer": digit_png(x[i])} for i in range(3)])
    page.get_by_test_id("upload-submit").click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    assert answered == ["succeeded"]
    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(3)
    assert rows.locator("td.digit").all_inner_texts() == [str(v) for v in y[:3]]


def test_a_dropped_results_read_after_the_job_ends_is_retried_until_the_table_fills(page, mnist_test):
    x, y = mnist_test
    failed = []

    def drop_first(route):  # the connection drops on the first read of the results, as on a flaky network
        if not failed:
            failed.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/jobs/[0-9a-f]+/results\?limit=1000$"), drop_first)
    page.goto("/upload")
    page.get_by_test_id("upload-input").set_input_files(files=[{"name": f"d{i}.png", "mimeType": "image/png",
                                           "buffer": digit_png(x[i])} for i in range(3)])
    page.get_by_test_id("upload-submit").click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=30_000)
    rows = page.get_by_test_id("results").locator("tbody tr")
    expect(rows).to_have_count(3, timeout=15_000)
    assert failed, "the results read was never dropped, so the retry was not exercised"
    assert rows.locator("td.digit").all_inner_texts() == [str(v) for v in y[:3]]
