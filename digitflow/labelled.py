"""Labelled sets: images plus `labels.csv` (`filename,label`, optionally `writer`) at the root of a ZIP or folder.

The format of `../shared/data/real`; evaluation, training (selection, fine-tuning) and the scripts read
it here, and every image goes through the service's own decoding and front end.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitflow.imaging import ImageError, normalise_bytes

LABELS_FILE = "labels.csv"


@dataclass
class LabelledSet:
    name: str
    filenames: list[str]
    images: list[bytes]
    labels: np.ndarray  # int [N], 0-9
    writers: list[str] | None = None  # who wrote each image, where the set says

    def __len__(self) -> int:
        return len(self.labels)


def read_labelled(path: str | Path) -> LabelledSet:
    """Read a labelled set from a ZIP or a folder; a bad row is a ValueError naming it."""
    path = Path(path)
    if path.is_dir():
        text = (path / LABELS_FILE).read_text(encoding="utf-8")
        read = lambda name: (path / name).read_bytes()  # noqa: E731
        return _parse(path.name, text, read)
    with zipfile.ZipFile(path) as z:
        text = z.read(LABELS_FILE).decode("utf-8")
        return _parse(path.stem, text, z.read)


def _parse(name: str, text: str, read) -> LabelledSet:
    rows = list(csv.DictReader(io.StringIO(text)))
    filenames, labels, writers = [], [], []
    for n, row in enumerate(rows, start=2):
        try:
            label = int(row["label"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{name}: {LABELS_FILE} line {n} has no label 0-9") from None
        if not 0 <= label <= 9:
            raise ValueError(f"{name}: {LABELS_FILE} line {n}: label {label} is not 0-9")
        filenames.append(row["filename"])
        labels.append(label)
        writers.append(row.get("writer") or "")
    images = [read(f) for f in filenames]
    return LabelledSet(name, filenames, images, np.array(labels, dtype=np.int64),
                       writers if any(writers) else None)


def to_digits(images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The 28x28 digits the model sees (zeros where the front end refused) and the refused mask."""
    digits, refused = [], []
    for data in images:
        try:
            digits.append(normalise_bytes(data))
            refused.append(False)
        except ImageError:
            digits.append(np.zeros((28, 28), np.uint8))
            refused.append(True)
    return np.stack(digits) if digits else np.zeros((0, 28, 28), np.uint8), np.array(refused, dtype=bool)


def default_real_dir() -> Path | None:
    """$REAL_DATA_DIR, else ../shared/data/real beside the repository (where the project's sets live)."""
    import os

    env = os.environ.get("REAL_DATA_DIR")
    here = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real"  # beside the checkout
    path = Path(env) if env else here
    return path if path.is_dir() else None


def real_sets(real_dir: Path | None) -> dict[str, Path]:
    """Every labelled ZIP in real_dir by name (cvl_valid, cvl_train, semeion, ...)."""
    if real_dir is None or not Path(real_dir).is_dir():
        return {}
    return {p.stem: p for p in sorted(Path(real_dir).glob("*.zip"))}
