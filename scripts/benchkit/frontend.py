"""1b. Front end alone: decode + digitflow/frontend, CPU per image, in a spawned child."""

from __future__ import annotations

import contextlib
import statistics
import time

import numpy as np

from benchkit.common import in_child, log, mnist_dir


def frontend_child(pngs: list[bytes], repeats: int, smoke: bool) -> list[dict]:
    """CPU time per image of decode + front end (digitflow.imaging.normalise_bytes), median of repeats."""
    from distortions import dark_on_light, phone_photo, tight_16

    from digitflow.imaging import ImageError, normalise_bytes
    from model_training.data import load_test_split

    def one(d: bytes) -> None:
        with contextlib.suppress(ImageError):  # a refused image costs its time too
            normalise_bytes(d)

    x, _ = load_test_split(mnist_dir())
    rng = np.random.default_rng(0)
    n = 50 if smoke else 2000
    cases = {
        "28x28 MNIST test PNGs (light ink on black, already fitted)": pngs[:n],
        "28x28 scans, dark ink on light paper (MNIST inverted)": [dark_on_light(d, rng) for d in x[:n]],
        "16x16 tight crops stretched to the box (postal-scan style)": [tight_16(d, rng) for d in x[:n]],
        "12 MP phone photo, JPEG (4032x3024)": [phone_photo(d, rng, size=(3024, 4032)) for d in x[: 3 if smoke else 20]],
    }
    rows = []
    for name, data in cases.items():
        one(data[0])  # warm
        runs = []
        for _ in range(repeats):
            start = time.process_time()
            for d in data:
                one(d)
            runs.append((time.process_time() - start) * 1000 / len(data))
        rows.append({"case": name, "images": len(data), "bytes": int(np.mean([len(d) for d in data])),
                     "cpu_ms": statistics.median(runs), "runs": runs})
    return rows


def frontend_section(pngs: list[bytes], repeats: int, smoke: bool) -> list[dict]:
    """Section 1b, in a spawned child, logged row by row."""
    rows = in_child(frontend_child, pngs, repeats, smoke)
    for r in rows:
        log(f"frontend: {r['case']:<60} {r['cpu_ms']:8.3f} ms CPU/image")
    return rows
