"""With the shipped model, normalised real-looking inputs keep >= 99% accuracy for every kind."""

from __future__ import annotations

import pytest
from distortions import KINDS
from robustness import measure

from digitflow.settings import get_settings
from worker.engine import Engine

FLOOR = 0.99
PER_KIND = 300


@pytest.fixture(scope="module")
def rows(mnist_test):
    engine = Engine(get_settings().model_dir, "onnx", threads=2)
    x, y = mnist_test
    return {r["kind"]: r for r in measure(engine, x, y, PER_KIND, seed=1)}


@pytest.mark.parametrize("kind", list(KINDS))
def test_accuracy_floor_after_normalisation(rows, kind):
    assert rows[kind]["with"] >= FLOOR, rows[kind]
