"""A job's reviewed digits as a labelled set: `labels.csv` (filename,label,source) and 28x28 PNGs at the root.

The images are the digits the model saw (white ink on black, 28x28): the front end passes them through
unchanged, so fine-tuning on the export trains on exactly what was reviewed. `source` says where each
label comes from: `corrected` (a reviewer changed it), `accepted` (a reviewer confirmed the prediction)
or `predicted` (unreviewed, included only above `min_confidence`).
"""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np

from digitflow.imaging import to_png
from digitflow.jobstore import JobStore


def labelled_zip(store: JobStore, job: dict, min_confidence: float | None) -> tuple[bytes, int]:
    """(ZIP bytes, number of labelled items)."""
    rows: list[tuple[int, int, str]] = []
    for offset in range(0, job["total"], 1000):
        for item in store.results(job["id"], offset, 1000):
            result = item["result"]
            if result is None or "error" in result:
                continue
            if item["label"] is not None:
                source = "accepted" if item["label"] == result["digit"] else "corrected"
                rows.append((item["index"], item["label"], source))
            elif min_confidence is not None and result["confidence"] >= min_confidence:
                rows.append((item["index"], result["digit"], "predicted"))
    count = 0
    buf = io.BytesIO()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["filename", "label", "source"])
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for start in range(0, len(rows), 1000):
            part = rows[start : start + 1000]
            for (index, label, source), digit in zip(part, store.images(job["id"], [r[0] for r in part]), strict=True):
                if digit is None:
                    continue
                name = f"{index:06d}.png"
                z.writestr(name, to_png(np.frombuffer(digit, dtype=np.uint8).reshape(28, 28)))
                writer.writerow([name, label, source])
                count += 1
        z.writestr("labels.csv", text.getvalue())
    return buf.getvalue(), count
