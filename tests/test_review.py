"""Corrections over the API, the labelled export and its way back into fine-tuning (real Redis, workers, HTTP)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import requests

from digitflow.labelled import read_labelled, to_digits
from tests.conftest import all_results, digit_png, make_zip, wait_job, write_mnist_dir


@pytest.fixture
def job(api, mnist_test):
    """A finished job of 40 digit scans and one broken file."""
    x, _ = mnist_test
    files = {f"scan/{i:03d}.png": digit_png(x[i]) for i in range(40)}
    files["scan/broken.png"] = b"not an image"
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("d.zip", make_zip(files), "application/zip")}, timeout=60)
    assert r.status_code == 202, r.text
    return wait_job(api, r.json()["id"])


def _label(api, job_id, index, body, **kw):
    return requests.put(f"{api}/api/v1/jobs/{job_id}/results/{index}/label", json=body, timeout=10, **kw)


def test_labels_set_and_clear_and_show_in_results_job_and_csv(api, job, mnist_test):
    _, y = mnist_test
    items = {it["filename"]: it for it in all_results(api, job["id"])}
    first = items["scan/000.png"]
    assert first["label"] is None and first["corrected"] is False and len(first["model_version"]) == 12
    wrong = (int(y[0]) + 1) % 10
    r = _label(api, job["id"], first["index"], {"label": wrong})
    assert r.status_code == 200 and r.json()["label"] == wrong and r.json()["corrected"] is True
    r = _label(api, job["id"], items["scan/001.png"]["index"], {"label": int(y[1])})  # accepted as predicted
    assert r.status_code == 200 and r.json()["corrected"] is False
    assert requests.get(f"{api}/api/v1/jobs/{job['id']}", timeout=10).json()["reviewed"] == 2
    r = _label(api, job["id"], first["index"], {"label": None})
    assert r.status_code == 200 and r.json()["label"] is None
    assert requests.get(f"{api}/api/v1/jobs/{job['id']}", timeout=10).json()["reviewed"] == 1
    _label(api, job["id"], first["index"], {"label": wrong})

    rows = {r["filename"]: r for r in csv.DictReader(io.StringIO(
        requests.get(f"{api}/api/v1/jobs/{job['id']}/results.csv", timeout=30).text))}
    assert list(next(iter(rows.values()))) == ["index", "filename", "status", "digit", "confidence", "label",
                                               "corrected", "model_version", "error"]
    assert rows["scan/000.png"]["label"] == str(wrong) and rows["scan/000.png"]["corrected"] == "true"
    assert rows["scan/001.png"]["corrected"] == "false" and rows["scan/002.png"]["label"] == ""
    assert rows["scan/000.png"]["model_version"] == first["model_version"]


@pytest.mark.parametrize("body,status,code", [
    ({"label": 10}, 400, "bad_request"), ({"label": -1}, 400, "bad_request"), ({"label": "7"}, 400, "bad_request"),
    ({"label": True}, 400, "bad_request"), ({"label": 2.5}, 400, "bad_request"), ({}, 400, "bad_request"),
    ([3], 400, "bad_request"),
])
def test_bad_labels_are_refused_with_the_error_body(api, job, body, status, code):
    r = _label(api, job["id"], 3, body)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_bad_index_failed_item_unknown_job_and_wrong_content_type(api, job):
    items = {it["filename"]: it for it in all_results(api, job["id"])}
    assert _label(api, job["id"], job["total"], {"label": 1}).status_code == 404
    assert _label(api, job["id"], "x1", {"label": 1}).status_code == 404
    r = _label(api, job["id"], items["scan/broken.png"]["index"], {"label": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_reviewable"
    r = _label(api, "0" * 32, 0, {"label": 1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.put(f"{api}/api/v1/jobs/{job['id']}/results/0/label", data="label=1", timeout=10,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_labelled_export_round_trips_and_feeds_finetune(api, job, mnist_test, tmp_path):
    x, y = mnist_test
    items = {it["filename"]: it for it in all_results(api, job["id"])}
    assert _label(api, job["id"], items["scan/000.png"]["index"], {"label": (int(y[0]) + 1) % 10}).status_code == 200
    for i in range(1, 12):  # eleven more reviewed: labelled with the truth
        assert _label(api, job["id"], items[f"scan/{i:03d}.png"]["index"], {"label": int(y[i])}).status_code == 200
    r = requests.get(f"{api}/api/v1/jobs/{job['id']}/labelled.zip", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    path = tmp_path / "labelled.zip"
    path.write_bytes(r.content)
    with zipfile.ZipFile(path) as z:
        rows = list(csv.DictReader(io.TextIOWrapper(z.open("labels.csv"), encoding="utf-8")))
    assert len(rows) == 12 and {r["source"] for r in rows} == {"corrected", "accepted"}
    labelled = read_labelled(path)
    digits, refused = to_digits(labelled.images)
    assert not refused.any()
    for name, digit in zip(labelled.filenames, digits, strict=True):  # the digits the model saw, unchanged
        stored = requests.get(f"{api}/api/v1/jobs/{job['id']}/results/{int(name[:6])}.png", timeout=10).content
        assert np.array_equal(to_digits([stored])[0][0], digit)
    more = requests.get(f"{api}/api/v1/jobs/{job['id']}/labelled.zip?min_confidence=0.5", timeout=30)
    assert int(more.headers["X-Digitflow-Items"]) == 40  # every prediction, the broken file excluded
    assert requests.get(f"{api}/api/v1/jobs/{job['id']}/labelled.zip?min_confidence=2", timeout=10).status_code == 400
    assert requests.get(f"{api}/api/v1/jobs/{job['id']}/labelled.zip?min_confidence=x", timeout=10).status_code == 400

    # the export is a fine-tuning input: a tiny start, a few seconds
    from model_training.data import Mnist
    from model_training.train import TrainConfig, train

    data = write_mnist_dir(tmp_path / "mnist", x, y, train=2000)
    start = tmp_path / "start"
    train(Mnist(x[:2000], y[:2000], x[9000:], y[9000:]), TrainConfig(architecture="tiny", epochs=1), start)
    ft = subprocess.run([sys.executable, "-m", "model_training", "finetune", str(start), "--labelled", str(path),
                         "--data-dir", str(data), "--epochs", "1", "--allow-subset", "--threads", "1",
                         "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert ft.returncode == 0, ft.stdout + ft.stderr
    summary = json.loads((next((tmp_path / "runs").iterdir()) / "summary.json").read_text())
    assert summary["labelled"][0]["images"] == 12 and summary["labelled"][0]["held_out"] + summary["labelled"][0]["train"] == 12


def test_every_upload_keeps_a_small_preview_even_when_refused(api, mnist_test):
    import cv2
    from PIL import Image

    x, _ = mnist_test
    big = np.full((1200, 900), 235, np.uint8)  # a phone-sized scan: a large digit on grey paper
    big[300:860, 200:700] = 255 - cv2.resize(x[0], (500, 560), interpolation=cv2.INTER_LINEAR)
    ok, jpeg = cv2.imencode(".jpg", big)
    blank = np.full((300, 300), 250, np.uint8)
    files = {"small.png": digit_png(x[1]), "photo.jpg": jpeg.tobytes(), "blank.png": digit_png(blank)}
    r = requests.post(f"{api}/api/v1/jobs", files={"file": ("d.zip", make_zip(files), "application/zip")}, timeout=60)
    job = wait_job(api, r.json()["id"])
    items = {it["filename"]: it for it in all_results(api, job["id"])}
    assert items["blank.png"]["status"] == "error"
    for name, it in items.items():
        got = requests.get(f"{api}/api/v1/jobs/{job['id']}/results/{it['index']}/original", timeout=10)
        assert got.status_code == 200, name
        assert got.headers["Content-Type"] in ("image/png", "image/jpeg") and len(got.content) <= 12_288
        shown = Image.open(io.BytesIO(got.content))
        assert max(shown.size) <= 96
    small = requests.get(f"{api}/api/v1/jobs/{job['id']}/results/{items['small.png']['index']}/original", timeout=10)
    assert small.content == files["small.png"]  # already small: the upload itself
    assert requests.get(f"{api}/api/v1/jobs/{job['id']}/results/99/original", timeout=10).status_code == 404
