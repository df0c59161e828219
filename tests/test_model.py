"""The shipped model: its card's accuracy is reproducible, and ONNX agrees with the Keras reference."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.contract import load_card, model_version, sha256_file
from digitflow.settings import ROOT
from model_training.data import to_model_input
from model_training.export import onnx_probs

MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def card() -> dict:
    return load_card(MODELS)


def test_card_describes_the_files(card):
    assert card["version"] == model_version(MODELS / "model.onnx")
    for name, digest in card["files"].items():
        assert sha256_file(MODELS / name) == digest
    assert card["macs_per_image"] <= 12_000_000
    assert (MODELS / "model.onnx").stat().st_size < 5 * 1024 * 1024


def test_shipped_onnx_model_reaches_its_card_accuracy(card, mnist_test):
    x, y = mnist_test
    probs = onnx_probs(MODELS / "model.onnx", to_model_input(x))
    accuracy = float((probs.argmax(1) == y).mean())
    assert accuracy == pytest.approx(card["test_accuracy"], abs=1e-6)
    assert accuracy >= 0.9965  # issue 3: beat the 99.64% average of published single CNNs


def test_default_architecture_beats_the_seed_design_at_under_half_its_macs(card):
    seed = next(c for c in card["compared_with"] if c["architecture"] == "seed")
    assert card["test_accuracy"] > seed["test_accuracy"]
    assert card["validation_accuracy"] > seed["validation_accuracy"]
    assert card["macs_per_image"] < 0.5 * seed["macs_per_image"]


@pytest.mark.slow
def test_onnx_and_keras_agree_on_the_test_split(mnist_test):
    import keras

    x, _ = mnist_test
    inputs = to_model_input(x)
    reference = np.asarray(keras.models.load_model(MODELS / "model.keras").predict(inputs, batch_size=1000, verbose=0))
    served = onnx_probs(MODELS / "model.onnx", inputs)
    assert np.abs(reference - served).max() <= 1e-4
    assert np.array_equal(reference.argmax(1), served.argmax(1))


@pytest.mark.slow
def test_keras_reference_backend_serves_the_same_digits(mnist_test):
    from worker.engine import Engine

    x, _ = mnist_test
    inputs = to_model_input(x[:256])
    onnx, keras_backend = Engine(MODELS, "onnx", 1), Engine(MODELS, "keras", 1)
    assert np.array_equal(onnx.predict(inputs).argmax(1), keras_backend.predict(inputs).argmax(1))
    assert onnx.model == keras_backend.model


def test_the_warm_up_batch_runs_the_whole_pipeline_and_never_stops_a_worker(caplog):
    """Pool processes run one batch as they start (worker/tasks.py): with the shipped model it goes through
    decode, front end and model without a warning; with a model that fails it is logged, not raised."""
    import logging

    from digitflow.settings import get_settings
    from worker.engine import Engine
    from worker.pipeline import warm_up

    s = get_settings()
    with caplog.at_level(logging.WARNING, logger="worker.pipeline"):
        warm_up(Engine(ROOT / "models", "onnx", 1), s.max_image_pixels, s.batch_size)
    assert not caplog.records

    class Broken:
        def predict(self, x):
            raise RuntimeError("no session")

    with caplog.at_level(logging.WARNING, logger="worker.pipeline"):
        warm_up(Broken(), s.max_image_pixels, s.batch_size)
    assert "warm-up batch failed" in caplog.text
