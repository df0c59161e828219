"""Load MNIST from a directory of IDX files (or keras.datasets) and split off a validation set."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitflow.contract import sha256_file

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


@dataclass
class Mnist:
    x_train: np.ndarray  # uint8 [N,28,28]
    y_train: np.ndarray  # uint8 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> digest of the file used


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    raise FileNotFoundError(f"{stem}(.gz) not found in {data_dir}")


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed), checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise ValueError(f"{path}: bad IDX magic {magic:#010x}")
    ndim = magic & 0xFF  # 3 for images, 1 for labels
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, file holds {data.size} bytes")
    return data.reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (the format read_idx reads)."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _check(x: np.ndarray, y: np.ndarray, n: int | None, split: str) -> None:
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{split} images have shape {x.shape}, expected [N,28,28]")
    if len(x) != len(y):
        raise ValueError(f"{split}: {len(x)} images but {len(y)} labels")
    if n is not None and len(x) != n:
        raise ValueError(f"{split}: {len(x)} images, expected {n}")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"{split}: labels outside 0..9")


def load_mnist(data_dir: str | Path | None, require_full: bool = True) -> Mnist:
    """Load the four MNIST files from data_dir, or from keras.datasets when data_dir is None."""
    if data_dir is None:
        import keras  # only for the download path

        (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
        data = Mnist(xtr, ytr, xte, yte, {"keras.datasets.mnist": "downloaded"})
    else:
        data_dir = Path(data_dir)
        paths = {key: _find(data_dir, stem) for key, stem in FILES.items()}
        arrays = {key: read_idx(p) for key, p in paths.items()}
        data = Mnist(
            arrays["train_images"],
            arrays["train_labels"],
            arrays["test_images"],
            arrays["test_labels"],
            {p.name: sha256_file(p) for p in paths.values()},
        )
    _check(data.x_train, data.y_train, 60000 if require_full else None, "train")
    _check(data.x_test, data.y_test, 10000 if require_full else None, "test")
    return data


def load_test_split(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Only the 10k test images and labels (what evaluation and the tests need)."""
    data_dir = Path(data_dir)
    x = read_idx(_find(data_dir, FILES["test_images"]))
    y = read_idx(_find(data_dir, FILES["test_labels"]))
    _check(x, y, None, "test")
    return x, y


def stratified_split(y: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): a seeded split with each class in proportion to its share."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for digit in range(10):
        idx = np.flatnonzero(y == digit)
        take = round(val_size * len(idx) / len(y))
        val_parts.append(rng.permutation(idx)[:take])
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def one_hot(labels: np.ndarray) -> np.ndarray:
    """int labels [N] -> float32 [N,10] (the training and validation targets)."""
    return np.eye(10, dtype=np.float32)[labels]


def to_model_input(x: np.ndarray) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,28,28,1] in [0,1] (the serving contract)."""
    return (x.astype(np.float32) / 255.0)[..., None]
