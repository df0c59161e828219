"""Training augmentation, labelled sets and calibration: what a model trainer relies on."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitflow.frontend import is_model_format
from digitflow.imaging import to_png
from digitflow.labelled import read_labelled, to_digits
from model_training import augment as A
from model_training import calibration as C

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine():
    from worker.engine import Engine

    return Engine(ROOT / "models")


@pytest.fixture(scope="module")
def sample(mnist_test):
    x, y = mnist_test
    return x[:600], y[:600]


def _read(engine, batch: np.ndarray) -> np.ndarray:
    return engine.predict(batch.astype(np.float32)).argmax(1)


def test_without_augmentation_the_images_stay_in_model_format(sample):
    x, y = sample
    out = A.augment_batch(x, y, A.Augmentation(rotation=0, zoom=0, shift=0), np.random.default_rng(0))
    assert out.shape == (600, 28, 28, 1) and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    fitted = [is_model_format((o[..., 0] * 255).astype(np.uint8)) for o in out]
    assert np.mean(fitted) > 0.97  # the front end's fitting: 20x20 box, centred by mass


@pytest.mark.parametrize("setting", [
    {"elastic_alpha": 34.0}, {"pen": 1.5}, {"shear": 15.0}, {"aspect": 0.4}, {"gaps": 1.0}, {"specks": 1.0},
    {"styles": 1.0},
])
def test_each_augmentation_changes_images_but_keeps_the_digit(engine, sample, setting):
    x, y = sample
    plain = A.augment_batch(x, y, A.Augmentation(), np.random.default_rng(1))
    varied = A.augment_batch(x, y, A.Augmentation(**setting), np.random.default_rng(1))
    changed = np.abs(varied - plain).reshape(len(x), -1).max(axis=1) > 0.2
    touched = (y == 1) | (y == 7) if "styles" in setting else np.ones(len(y), bool)
    assert changed[touched].mean() > 0.8
    # the shipped model still reads nearly all of them: the label holds
    assert (_read(engine, varied) == y).mean() > 0.93


def test_pen_width_makes_strokes_thicker_or_thinner_but_never_erases_them(sample):
    x, _ = sample
    canvas = np.zeros((A.CANVAS, A.CANVAS), np.float32)
    for digit in x[:50]:
        canvas[8:64, 8:64] = cv2.resize(digit.astype(np.float32) / 255, (56, 56))
        ink = (canvas > 0.5).sum()
        assert (A.pen_width(canvas, 1.5) > 0.5).sum() > ink
        thin = (A.pen_width(canvas, -3.0) > 0.5).sum()
        assert 0 < thin < ink


def test_style_variants_flag_a_one_and_cross_a_seven(sample):
    x, y = sample
    rng = np.random.default_rng(0)
    one, seven, two = (x[np.flatnonzero(y == d)[0]] for d in (1, 7, 2))

    def canvas(d):
        c = np.zeros((A.CANVAS, A.CANVAS), np.float32)
        c[8:64, 8:64] = cv2.resize(d.astype(np.float32) / 255, (56, 56))
        return c

    c1 = canvas(one)
    flagged = A.style_variant(c1, 1, rng)
    top, bottom, left, _ = A._ink_box(c1)
    added = (flagged > 0.5) & ~(c1 > 0.5)
    upper_left = added[: (top + bottom) // 2, : left + 2]  # a flag from the top of the stem, going left
    assert upper_left.sum() > 10
    crossed = A.style_variant(canvas(seven), 7, rng)
    assert ((crossed > 0.5) & ~(canvas(seven) > 0.5)).sum() > 10
    assert np.array_equal(A.style_variant(canvas(two), 2, rng), canvas(two))


def test_augmentation_is_reproducible_from_its_seed(sample):
    x, y = sample
    cfg = A.Augmentation(elastic_alpha=34, pen=1.5, shear=15, aspect=0.4, gaps=0.2, specks=0.2, styles=0.3)
    a = A.augment_batch(x[:64], y[:64], cfg, np.random.default_rng(5))
    b = A.augment_batch(x[:64], y[:64], cfg, np.random.default_rng(5))
    c = A.augment_batch(x[:64], y[:64], cfg, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_training_images_are_what_the_front_end_serves(engine, mnist_test):
    from model_training.train import serving_digits

    x, y = mnist_test
    served = serving_digits(x[:2000])
    unchanged = (served == x[:2000]).all(axis=(1, 2))
    assert unchanged.mean() > 0.97  # MNIST digits pass the front end untouched; the rest are re-fitted
    assert served[~unchanged].reshape((~unchanged).sum(), -1).max(axis=1).min() > 0
    raw = (_read(engine, x[:2000, ..., None] / 255.0) == y[:2000]).mean()
    assert (_read(engine, served[..., None] / 255.0) == y[:2000]).mean() >= raw - 0.002


def _zip(rows: list[tuple[str, bytes, str]], header: str = "filename,label") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("labels.csv", header + "\n" + "\n".join(f"{n},{lab}" for n, _, lab in rows) + "\n")
        for name, data, _ in rows:
            z.writestr(name, data)
    return buf.getvalue()


def test_labelled_sets_read_from_a_zip_or_a_folder_and_reject_bad_labels(tmp_path, sample):
    x, y = sample
    rows = [(f"d{i}.png", to_png(255 - x[i]), str(y[i])) for i in range(5)]
    (tmp_path / "set.zip").write_bytes(_zip(rows))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "labels.csv").write_text("filename,label,writer\n" + "".join(f"{n},{lab},w{i % 2}\n"
                                       for i, (n, _, lab) in enumerate(rows)))
    for name, data, _ in rows:
        (folder / name).write_bytes(data)
    for s in (read_labelled(tmp_path / "set.zip"), read_labelled(folder)):
        assert len(s) == 5 and list(s.labels) == list(y[:5])
        digits, refused = to_digits(s.images)
        assert digits.shape == (5, 28, 28) and not refused.any()
    assert read_labelled(folder).writers == ["w0", "w1", "w0", "w1", "w0"]
    (tmp_path / "bad.zip").write_bytes(_zip([("a.png", rows[0][1], "12")]))
    with pytest.raises(ValueError, match="line 2"):
        read_labelled(tmp_path / "bad.zip")


def test_temperature_scaling_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (20000, 10))
    true_p = C.with_temperature(np.exp(logits), 2.5)  # the world is softer than the model says
    labels = np.array([rng.choice(10, p=p) for p in true_p])
    model_p = C.with_temperature(np.exp(logits), 1.0)
    t = C.fit_temperature(model_p, labels)
    assert 2.3 < t < 2.7
    before = C.expected_calibration_error(model_p, labels)
    after = C.expected_calibration_error(C.with_temperature(model_p, t), labels)
    assert after < before / 2 and after < 0.015
    assert (C.with_temperature(model_p, t).argmax(1) == model_p.argmax(1)).all()


def test_a_folded_temperature_is_the_same_as_scaling_the_probabilities(mnist_test):
    import keras

    from model_training.architectures import build

    x, _ = mnist_test
    model = build("tiny")
    inputs = x[:64, ..., None].astype(np.float32) / 255
    probs = np.asarray(model(inputs))
    C.fold_into(model, 1.7)
    assert np.allclose(np.asarray(model(inputs)), C.with_temperature(probs, 1.7), atol=1e-5)
    bare = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="softmax"):
        C.fold_into(bare, 2.0)


def test_confidence_summary_counts_errors_under_the_review_threshold():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    probs = np.pad(probs, ((0, 0), (0, 8)))
    labels = np.array([0, 1, 1, 0])  # the second is wrong at 0.6 (flagged); the rest right
    s = C.confidence_summary(probs, labels)
    assert s["errors"] == 1 and s["errors_flagged_low"] == 1 and s["flagged_low"] == 3
