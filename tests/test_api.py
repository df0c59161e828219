"""The REST API against real Redis and real workers: predictions, jobs, pages, CSV, deletion."""

from __future__ import annotations

import base64
import csv
import io

import requests

from tests.conftest import all_results, digit_png, make_zip, wait_job


def test_predict_multipart_returns_the_digit_from_the_model(api, mnist_test):
    x, y = mnist_test
    for i in range(5):
        r = requests.post(f"{api}/api/v1/predict", files={"image": ("d.png", digit_png(x[i]), "image/png")}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["digit"] == y[i]
        assert len(body["probabilities"]) == 10
        assert abs(sum(body["probabilities"]) - 1) < 1e-3
        assert body["confidence"] == max(body["probabilities"])
        assert body["image"].startswith("data:image/png;base64,")
        assert set(body["model"]) == {"version", "architecture", "test_accuracy"}


def test_predict_json_data_url_and_pixels(api, mnist_test):
    x, y = mnist_test
    url = "data:image/png;base64," + base64.b64encode(digit_png(x[1])).decode()
    r = requests.post(f"{api}/api/v1/predict", json={"image": url}, timeout=30)
    assert r.status_code == 200 and r.json()["digit"] == y[1]
    r = requests.post(f"{api}/api/v1/predict", json={"pixels": x[2].tolist()}, timeout=30)
    assert r.status_code == 200 and r.json()["digit"] == y[2]


def test_predict_wait_zero_answers_202_with_a_pollable_job(api, mnist_test):
    x, y = mnist_test
    r = requests.post(f"{api}/api/v1/predict?wait=0", files={"image": ("d.png", digit_png(x[3]))}, timeout=30)
    assert r.status_code in (200, 202)
    if r.status_code == 202:
        job = wait_job(api, r.json()["job_id"])
        assert job["status"] == "succeeded"
        assert all_results(api, job["id"])[0]["digit"] == y[3]


def test_zip_job_results_in_input_order_with_pages_csv_and_thumbnails(api, mnist_test):
    x, y = mnist_test
    n = 1200
    files = {f"batch/{i:04d}.png": digit_png(x[i]) for i in range(n)}
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("digits.zip", make_zip(files), "application/zip")}, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()
    assert len(job["id"]) == 32 and r.headers["Location"].endswith(job["id"])
    assert job["total"] == n
    job = wait_job(api, job["id"])
    assert job["status"] == "succeeded" and job["done"] == n and job["failed"] == 0
    assert job["finished_at"] >= job["started_at"] >= job["created_at"]

    page = requests.get(f"{api}/api/v1/jobs/{job['id']}/results?offset=100&limit=50&include=probabilities", timeout=10).json()
    assert [it["index"] for it in page["items"]] == list(range(100, 150))
    assert page["items"][0]["filename"] == "batch/0100.png"
    assert len(page["items"][0]["probabilities"]) == 10
    assert page["total"] == n and "offset=150" in page["next"]

    items = all_results(api, job["id"])
    assert [it["index"] for it in items] == list(range(n))
    accuracy = sum(it["digit"] == y[it["index"]] for it in items) / n
    assert accuracy >= 0.98

    rows = list(csv.DictReader(io.StringIO(requests.get(f"{api}/api/v1/jobs/{job['id']}/results.csv", timeout=30).text)))
    assert list(rows[0]) == ["index", "filename", "status", "digit", "confidence", "label", "corrected", "model_version",
                            "error"]
    assert len(rows) == n and rows[7]["digit"] == str(y[7])

    png = requests.get(f"{api}/api/v1/jobs/{job['id']}/results/5.png", timeout=10)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_several_image_files_make_one_job(api, mnist_test):
    x, y = mnist_test
    files = [("file", (f"img{i}.png", digit_png(x[i]), "image/png")) for i in range(4)]
    r = requests.post(f"{api}/api/v1/jobs", files=files, timeout=30)
    assert r.status_code == 202
    job = wait_job(api, r.json()["id"])
    items = all_results(api, job["id"])
    assert [it["filename"] for it in items] == [f"img{i}.png" for i in range(4)]
    assert [it["digit"] for it in items] == [int(v) for v in y[:4]]


def test_partly_failed_job_succeeds_with_per_image_errors(api, mnist_test):
    x, _ = mnist_test
    files = {"good.png": digit_png(x[0]), "bad.png": b"not an image at all", "blank.png": digit_png(x[0] * 0)}
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("m.zip", make_zip(files))}, timeout=30)
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded" and job["done"] == 3 and job["failed"] == 2
    errors = {it["filename"]: it["error"] for it in all_results(api, job["id"])}
    assert errors["good.png"] is None
    assert errors["bad.png"]["code"] == "not_an_image"
    assert errors["blank.png"]["code"] == "no_digit_found"


def test_job_where_every_image_fails_is_failed(api):
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("m.zip", make_zip({"a.png": b"junk", "b.png": b"x"}))}, timeout=30)
    assert wait_job(api, r.json()["id"])["status"] == "failed"


def test_delete_finished_job_removes_it(api, mnist_test):
    x, _ = mnist_test
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("a.png", digit_png(x[0]))}, timeout=30)
    job = wait_job(api, r.json()["id"])
    assert requests.delete(f"{api}/api/v1/jobs/{job['id']}", timeout=10).status_code == 204
    assert requests.get(f"{api}/api/v1/jobs/{job['id']}", timeout=10).status_code == 404


def test_unknown_and_malformed_job_ids_are_404(api):
    for job_id in ("0" * 32, "nope", "../../etc/passwd"):
        r = requests.get(f"{api}/api/v1/jobs/{job_id}", timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_very_long_url_is_a_json_414(api):
    for url in (f"{api}/api/v1/jobs?limit=" + "9" * 5000, f"{api}/api/v1/jobs/" + "a" * 5000):
        r = requests.get(url, timeout=10)
        assert r.status_code == 414, r.text[:200]
        assert r.json()["error"]["code"] == "uri_too_long"
