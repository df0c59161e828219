"""With the shipped model, real-looking uploads keep their accuracy through the front end, clear digits are
never refused, and images with no digit always are."""

from __future__ import annotations

import numpy as np
import pytest
from distortions import EMPTY_KINDS, KINDS, REAL_KINDS
from robustness import SEMEION_FIXTURE, measure, read_labelled, refusals, score

from digitflow.imaging import to_png
from digitflow.settings import get_settings
from model_training.finetune import held_out_if_trained
from worker.engine import Engine

PER_KIND = 300
FLOORS = {kind: 0.97 for kind in REAL_KINDS} | {"tight crop stretched to 16x16": 0.95}  # issue 13's targets
FLOOR = 0.99  # the synthetic kinds that came before


@pytest.fixture(scope="module")
def engine():
    return Engine(get_settings().model_dir, "onnx", threads=2)


@pytest.fixture(scope="module")
def rows(engine, mnist_test):
    x, y = mnist_test
    return {r["kind"]: r for r in measure(engine, x, y, PER_KIND, seed=1)}


@pytest.mark.parametrize("kind", list(KINDS))
def test_accuracy_floor_and_no_refusals(rows, kind):
    row = rows[kind]
    assert row["refused"] == 0, (kind, row["refused"])
    assert row["accuracy"] >= FLOORS.get(kind, FLOOR), (kind, row["accuracy"])


@pytest.mark.parametrize("kind", list(EMPTY_KINDS))
def test_images_without_a_digit_are_all_refused(kind):
    row = next(r for r in refusals(100, seed=3) if r["kind"] == kind)
    assert row["refused"] == row["n"], row


def test_semeion_scans_are_read_and_none_refused(engine):
    """Real scans by about 80 writers: 16x16, stretched to fill the box, thresholded (the committed fixture).
    Where the shipped model was fine-tuned on part of Semeion, only the images it held out count."""
    data, labels = read_labelled(SEMEION_FIXTURE)
    held = held_out_if_trained(SEMEION_FIXTURE, engine.card.get("labelled_sets"), engine.card["training_config"])
    if held is not None:
        assert 150 <= held.sum() < len(labels)  # a held-out share large enough to measure, not the whole set
        data, labels = [d for d, h in zip(data, held, strict=True) if h], labels[held]
    r = score(engine, data, labels)
    assert r["refused"] == 0
    assert r["accuracy"] >= 0.92  # the old front end: 90.3% with 23 refused; the model is the limit now


def test_mnist_test_pngs_score_the_models_own_accuracy(engine, mnist_test):
    """The front end costs nothing on MNIST itself: the PNGs score what the raw arrays score."""
    x, y = mnist_test
    r = score(engine, [to_png(d) for d in x], y)
    raw = float((engine.predict(x[..., None].astype(np.float32) / 255).argmax(1) == y).mean())
    assert r["refused"] == 0
    assert r["accuracy"] == raw
