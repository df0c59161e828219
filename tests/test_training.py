"""End-to-end training on a small subset: every file is produced and the card matches the files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitflow.contract import sha256_file
from model_training import finetune
from tests.conftest import write_mnist_dir

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_train_then_export_produces_a_consistent_model(tmp_path, mnist_test):
    x, y = mnist_test
    # The carried fixture holds only the test split: train on part of it, report on the rest.
    data = write_mnist_dir(tmp_path / "mnist", x, y, train=6000)
    env_cmd = [sys.executable, "-m", "model_training"]
    train = subprocess.run(
        [*env_cmd, "train", "--data-dir", str(data), "--architecture", "tiny", "--epochs", "2", "--batch-size", "32", "--allow-subset",
         "--runs-dir", str(tmp_path / "runs"), "--elastic-alpha", "20", "--pen", "1", "--shear", "10",
         "--aspect", "0.3", "--gaps", "0.1", "--specks", "0.1", "--styles", "0.2",
         "--monitor", str(FIXTURES / "semeion.zip")],
        capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    for name in ("best.keras", "best.json", "history.csv", "summary.json", "config.json", "train.log"):
        assert (run_dir / name).is_file(), name
    assert "epoch 2:" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "summary.json").read_text())["best_epoch"] in (1, 2)
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["elastic_alpha"], config["pen"], config["shear"], config["aspect"], config["styles"]) == (
        20, 1, 10, 0.3, 0.2)
    history = (run_dir / "history.csv").read_text().splitlines()
    assert "semeion_accuracy" in history[0] and len(history) == 3  # the real set scored every epoch

    models = tmp_path / "models"
    export = subprocess.run([*env_cmd, "export", str(run_dir), "--model-dir", str(models), "--data-dir", str(data),
                             "--real-dir", str(FIXTURES), "--calibrate-on", "semeion", "--flat"],
                            capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stdout + export.stderr
    card = json.loads((models / "model_card.json").read_text())
    for name in ("model.keras", "model.onnx", "report/training_curves.png", "report/confusion_matrix.png",
                 "report/misclassified.png", "report/README.md", "report/metrics.json"):
        assert (models / name).is_file(), name
    assert card["files"] == {n: sha256_file(models / n) for n in ("model.onnx", "model.keras")}
    assert card["version"] == card["files"]["model.onnx"][:12]
    assert card["architecture"] == "tiny" and card["epochs"] == 2
    # calibrated on the named set; the real sets scored through the front end; the diagrams drawn
    assert card["calibration"]["fitted_on"] == "semeion" and card["calibration"]["temperature"] > 0
    assert card["real_sets"]["semeion"]["n"] == 1593 and 0.3 < card["real_sets"]["semeion"]["accuracy"] <= 1
    assert (models / "report" / "reliability.png").is_file()
    assert "| semeion |" in (models / "report" / "README.md").read_text()
    assert card["input"]["shape"] == ["N", 28, 28, 1] and card["output"]["shape"] == ["N", 10]
    assert card["onnx_keras_max_abs_diff"] <= 1e-4
    assert 0.5 < card["test_accuracy"] <= 1.0
    assert set(card["per_class"]) == {str(d) for d in range(10)}
    assert set(card["data_sha256"]) == {p.name for p in data.iterdir()}
    metrics = json.loads((models / "report" / "metrics.json").read_text())
    assert sum(map(sum, metrics["confusion_matrix"])) == 1000

    # SWA can continue the exported model folder (threads set before TensorFlow starts)
    swa = subprocess.run([*env_cmd, "swa", str(models), "--data-dir", str(data), "--epochs", "1", "--threads", "1",
                          "--allow-subset", "--runs-dir", str(tmp_path / "swa")], capture_output=True, text=True,
                         timeout=300)
    assert swa.returncode == 0, swa.stdout + swa.stderr
    swa_summary = json.loads((next((tmp_path / "swa").iterdir()) / "summary.json").read_text())
    assert swa_summary["swa"]["from"] == f"model {card['version']}" and swa_summary["epochs"] == 3

    # Promoting a newer run keeps the replaced model in the report (its run folder may be long gone).
    again = subprocess.run([*env_cmd, "export", str(run_dir), "--model-dir", str(models), "--data-dir", str(data),
                            "--keep-compared", "--real-dir", str(FIXTURES), "--flat"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    newer = json.loads((models / "model_card.json").read_text())
    before = [c for c in newer["compared_with"] if c.get("shipped_before")]
    assert [c["run"] for c in before] == [f"model {card['version']}"]
    assert before[0]["test_accuracy"] == card["test_accuracy"]
    assert before[0]["real_sets"]["semeion"] == round(card["real_sets"]["semeion"]["accuracy"], 6)
    assert newer["calibration"]["fitted_on"] == "mnist_validation"  # no cvl_valid here: MNIST validation
    assert f"model {card['version']} (shipped before" in (models / "report" / "README.md").read_text()


def test_runs_with_different_seeds_validate_on_the_same_images(mnist_test):
    from model_training.data import Mnist
    from model_training.train import TrainConfig, datasets

    x, y = mnist_test
    data = Mnist(x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])

    def val_images(**cfg):
        _, val, _, n_val = datasets(data, TrainConfig(**cfg))
        return n_val, np.concatenate([batch.numpy() for batch, _ in val])

    n1, first = val_images(seed=1)
    n2, second = val_images(seed=2)
    assert n1 == n2 == 1000 and np.array_equal(first, second)
    _, other_split = val_images(seed=1, split_seed=8)
    assert not np.array_equal(first, other_split)


def test_best_checkpoint_breaks_accuracy_ties_by_loss_and_survives_a_resume(tmp_path):
    from model_training.architectures import build
    from model_training.train import BestOnValidation

    def epoch(cb, n, acc, loss):
        cb.on_epoch_end(n, {"val_accuracy": acc, "val_loss": loss})
        return json.loads((tmp_path / "best.json").read_text())

    model = build("tiny")
    model.stop_training = False  # what fit() sets before the first epoch
    cb = BestOnValidation(tmp_path, patience=3)
    cb.set_model(model)
    assert epoch(cb, 0, 0.9960, 0.020)["epoch"] == 1
    assert epoch(cb, 1, 0.9966, 0.017)["epoch"] == 2
    assert epoch(cb, 2, 0.9966, 0.018) == {"best": [0.9966, 0.017], "wait": 1, "epoch": 2}  # same acc, worse loss
    assert epoch(cb, 3, 0.9966, 0.015)["epoch"] == 4  # same acc, lower loss: the later epoch is kept
    assert (tmp_path / "best.keras").is_file()

    resumed = BestOnValidation(tmp_path, patience=3)  # an interrupted run picks up its best and patience
    resumed.set_model(model)
    assert epoch(resumed, 4, 0.9964, 0.010)["wait"] == 1
    assert epoch(resumed, 5, 0.9966, 0.016)["wait"] == 2
    assert not model.stop_training
    assert epoch(resumed, 6, 0.9962, 0.020) == {"best": [0.9966, 0.015], "wait": 3, "epoch": 4}
    assert model.stop_training


def test_distillation_targets_keep_the_label_and_refuse_a_teacher_that_saw_the_validation_split(tmp_path, mnist_test):
    from model_training import distill
    from model_training.data import Mnist
    from model_training.train import TrainConfig, train, training_targets

    labels = np.array([3, 7])
    wrong = np.zeros((2, 10), np.float32)
    wrong[:, 1] = 1.0  # a teacher sure of the wrong digit
    mixed = distill.mixed_targets(labels, wrong, 0.49)
    assert np.allclose(mixed.sum(1), 1.0) and list(mixed.argmax(1)) == [3, 7]
    with pytest.raises(ValueError, match="must stay the argmax"):
        distill.mixed_targets(labels, wrong, 0.5)

    x, y = mnist_test
    data = Mnist(x_train=x[:6000], y_train=y[:6000], x_test=x[9000:], y_test=y[9000:])
    teacher = tmp_path / "teacher"
    train(data, TrainConfig(architecture="tiny", epochs=1), teacher)
    student = train(data, TrainConfig(architecture="tiny", epochs=1, teachers=[str(teacher)]), tmp_path / "student")
    assert student["teachers"] == [f"run {tmp_path.name}/teacher"]
    targets = training_targets(data.x_train[:500].astype(np.float32)[..., None] / 255.0, y[:500],
                               TrainConfig(teachers=[str(teacher)]))
    assert list(targets.argmax(1)) == list(y[:500]) and targets.max(1).mean() < 0.99  # soft, label on top

    with pytest.raises(ValueError, match="seen the student's validation images"):
        train(data, TrainConfig(architecture="tiny", epochs=1, split_seed=8, teachers=[str(teacher)]),
              tmp_path / "other-split")


def test_early_stopping_counts_only_after_patience_from(tmp_path):
    from model_training.architectures import build
    from model_training.train import BestOnValidation

    model = build("tiny")
    model.stop_training = False
    cb = BestOnValidation(tmp_path, patience=2, patience_from=4)
    cb.set_model(model)
    results = [(0.990, 0.05), (0.980, 0.06), (0.980, 0.06), (0.980, 0.06), (0.980, 0.06), (0.980, 0.06)]
    stopped_at = None
    for n, (acc, loss) in enumerate(results):
        cb.on_epoch_end(n, {"val_accuracy": acc, "val_loss": loss})
        if model.stop_training and stopped_at is None:
            stopped_at = n + 1
    assert stopped_at == 6  # epochs 2-4 are within the first four: only epochs 5 and 6 count


def test_with_an_ema_validation_and_the_checkpoint_use_the_averaged_weights(tmp_path, mnist_test):
    import csv

    from model_training.data import Mnist
    from model_training.train import TrainConfig, train

    x, y = mnist_test
    data = Mnist(x_train=x[:6000], y_train=y[:6000], x_test=x[9000:], y_test=y[9000:])
    plain = train(data, TrainConfig(architecture="tiny", epochs=2, batch_size=32), tmp_path / "plain")
    # A momentum this close to 1 keeps the average at the initial weights: if validation saw the
    # trained weights instead, it would score like the plain run.
    frozen = train(data, TrainConfig(architecture="tiny", epochs=2, batch_size=32, ema=0.99999), tmp_path / "frozen")
    averaged = train(data, TrainConfig(architecture="tiny", epochs=2, batch_size=32, ema=0.9), tmp_path / "averaged")
    assert plain["validation_accuracy"] > 0.7
    assert frozen["validation_accuracy"] < 0.3
    assert averaged["validation_accuracy"] > 0.7
    for summary, name in ((frozen, "frozen"), (averaged, "averaged")):  # the checkpoint is what was validated
        rows = list(csv.DictReader((tmp_path / name / "history.csv").open()))
        validated = float(rows[summary["best_epoch"] - 1]["val_accuracy"])
        assert summary["validation_accuracy"] == pytest.approx(validated, abs=1e-6)
    with pytest.raises(ValueError, match="ema momentum"):
        train(data, TrainConfig(architecture="tiny", epochs=1, ema=1.0), tmp_path / "bad")


def test_swa_continues_a_run_validates_the_average_and_exports(tmp_path, mnist_test):
    import csv

    import keras

    from model_training.data import Mnist
    from model_training.export import export_run
    from model_training.swa import config_for, recompute_batch_norm, swa
    from model_training.train import TrainConfig, train

    x, y = mnist_test
    data = Mnist(x_train=x[:6000], y_train=y[:6000], x_test=x[9000:], y_test=y[9000:])
    start = tmp_path / "start"
    train(data, TrainConfig(architecture="tiny", epochs=2, batch_size=32), start)
    cfg = config_for(start, epochs=3, learning_rate=1e-3, seed=5)
    assert (cfg.architecture, cfg.batch_size, cfg.split_seed, cfg.min_learning_rate) == ("tiny", 32, 7, 1e-3)
    run = tmp_path / "swa"
    summary = swa(data, start, cfg, run)
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert len(rows) == 3 and summary["epochs"] == 5 and summary["swa"]["from"] == f"run {tmp_path.name}/start"
    # best.keras is the validated average: it scores what history recorded for that epoch
    validated = float(rows[summary["swa"]["averaged_epochs"] - 1]["val_accuracy"])
    assert summary["validation_accuracy"] == pytest.approx(validated, abs=1e-6) and validated > 0.7
    # batch-norm statistics are those of the averaged weights: recomputing them changes nothing
    best = keras.models.load_model(run / "best.keras")
    before = [np.array(v) for v in best.non_trainable_weights]
    recompute_batch_norm(best, (x[:2000, ..., None] / 255.0).astype(np.float32))
    assert all(np.allclose(a, np.array(b), rtol=0.05, atol=0.05) for a, b in zip(before, best.non_trainable_weights,
                                                                                   strict=True))
    # a finished run resumed does no more epochs; export promotes it like any run
    assert swa(data, start, cfg, run)["validation_accuracy"] == pytest.approx(summary["validation_accuracy"])
    assert len(list(csv.DictReader((run / "history.csv").open()))) == 3
    write = write_mnist_dir(tmp_path / "mnist", x, y, train=None)
    card = export_run(run, tmp_path / "models", str(write))
    assert card["swa"]["from"] == f"run {tmp_path.name}/start" and card["epochs"] == 5

    with pytest.raises(ValueError, match="seen the student's validation images"):
        other = config_for(start, epochs=1, learning_rate=1e-3, seed=5)
        other.split_seed = 8
        swa(data, start, other, tmp_path / "other-split")


def test_finetune_trains_on_a_labelled_set_split_by_writer_and_the_card_names_parent_and_set(tmp_path, mnist_test):
    import zipfile

    from digitflow.imaging import to_png
    from model_training.data import Mnist
    from model_training.train import TrainConfig, train

    x, y = mnist_test
    data = write_mnist_dir(tmp_path / "mnist", x, y, train=3000)
    start = tmp_path / "start"
    train(Mnist(x[:3000], y[:3000], x[9000:], y[9000:]), TrainConfig(architecture="tiny", epochs=1, batch_size=32), start)
    # a labelled set as people's corrections would come: scans (dark ink on light paper), ten writers
    labelled = tmp_path / "corrections.zip"
    with zipfile.ZipFile(labelled, "w") as z:
        z.writestr("labels.csv", "filename,label,writer\n" + "".join(
            f"d{i}.png,{y[i]},w{i % 10}\n" for i in range(5000, 5400)))
        for i in range(5000, 5400):
            z.writestr(f"d{i}.png", to_png(255 - x[i]))
    env_cmd = [sys.executable, "-m", "model_training"]
    runs = tmp_path / "runs"
    ft = subprocess.run([*env_cmd, "finetune", str(start), "--labelled", str(labelled), "--data-dir", str(data),
                         "--epochs", "2", "--allow-subset", "--threads", "1", "--runs-dir", str(runs)],
                        capture_output=True, text=True, timeout=300)
    assert ft.returncode == 0, ft.stdout + ft.stderr
    run = next(runs.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["init_from"].startswith("run ") and summary["config"]["labelled"] == [str(labelled)]
    (info,) = summary["labelled"]
    assert info["sha256"] == sha256_file(labelled) and info["images"] == 400 and info["refused"] == 0
    assert info["split"] == "by writer (10 writers)" and info["held_out"] == 40 and info["train"] == 360  # 1 of 10
    history = (run / "history.csv").read_text().splitlines()
    assert "held_out_accuracy" in history[0] and "mnist_val_accuracy" in history[0]
    # replayed MNIST (two per labelled image) + the labelled training share; validation adds the held-out writer
    assert "on 1080 images, validating on 341" in (run / "train.log").read_text()
    # WiSE-FT: the kept weights are the best held-out share among those within the MNIST tolerance of the start
    wise = summary["wise_ft"]
    assert [r["share"] for r in wise["shares"]] == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5] and (run / "tuned.keras").is_file()
    ok = [r for r in wise["shares"] if r["mnist_val"] >= wise["start_mnist_val"] - wise["tolerance_pp"] / 100 - 1e-9]
    chosen = next(r for r in wise["shares"] if r["share"] == wise["share"])
    assert wise["within_tolerance"] == bool(ok)
    assert chosen == (max(ok, key=lambda r: (r["held_out"], r["share"])) if ok else
                      max(wise["shares"], key=lambda r: (r["mnist_val"], r["share"])))

    # the selection table scores the set it was fine-tuned on by the writer it held out, and never the test split
    table = subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / "scripts" / "candidates.py"),
                            str(start), str(run), "--set", str(labelled), "--data-dir", str(data), "--allow-subset"],
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stdout + table.stderr
    rows = [r for r in table.stdout.splitlines() if r.startswith(f"| {start.as_posix()} |") or
            r.startswith(f"| {run.as_posix()} |")]
    assert len(rows) == 2 and "(held out)" in rows[1] and "(held out)" not in rows[0]
    from model_training.train import split_indices

    n_val = len(split_indices(y[:3000], TrainConfig())[1])
    for r in rows:
        errors, of, total = r.split(" | ")[1].split()
        assert of == "of" and int(total) == n_val and 0 <= int(errors) <= n_val

    real = tmp_path / "real"
    real.mkdir()
    (real / "corrections.zip").write_bytes(labelled.read_bytes())
    models = tmp_path / "models"
    export = subprocess.run([*env_cmd, "export", str(run), "--model-dir", str(models), "--data-dir", str(data),
                             "--real-dir", str(real), "--calibrate-on", "corrections"],
                            capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stdout + export.stderr
    assert (models / "current").is_symlink()  # a live folder: versions/<version>/ and the serving pointer
    card = json.loads((models / "current" / "model_card.json").read_text())
    assert (models / "versions" / card["version"] / "report" / "README.md").is_file()
    assert card["parent"] == summary["init_from"] and card["labelled_sets"][0]["sha256"] == sha256_file(labelled)
    corr = card["real_sets"]["corrections"]
    assert corr["trained_on"] is True and corr["held_out"]["n"] == 40  # scored on the writer it never saw too
    held = finetune.held_out_if_trained(labelled, card["labelled_sets"], card["training_config"])
    assert held.sum() == 40 and len({f"w{i % 10}" for i in np.flatnonzero(held)}) == 1  # one whole writer
    assert "*held out*" in (models / "current" / "report" / "README.md").read_text()
    assert card["wise_ft"]["share"] == wise["share"]
    assert card["calibration"]["fitted_on"] == "mnist_validation"  # never calibrated on what it learnt from

    # a soup of the fine-tuned run with its start recomputes batch norm on what the fine-tuning mixed:
    # replayed MNIST and the labelled training share, in the same proportion
    from model_training import distill
    from model_training.soup import bn_images

    mnist = Mnist(x[:3000], y[:3000], x[9000:], y[9000:])
    configs = [distill.training_config(start), distill.training_config(run)]
    mixed = bn_images(mnist, TrainConfig(architecture="tiny"), configs)
    plain = bn_images(mnist, TrainConfig(architecture="tiny"), configs[:1])
    assert len(plain) >= 2690 and len(mixed) == 360 * summary["config"]["replay"] + 360  # MNIST only: ~90% of 3000
    assert np.array_equal(mixed[: len(mixed) - 360], plain[: len(mixed) - 360])
    assert not np.array_equal(mixed[-360:], plain[-360:])
    # the soup still says what it was fine-tuned on, and which writer stayed unseen
    from model_training.soup import soup

    souped = soup(mnist, [start, run], tmp_path / "soup")
    assert souped["labelled"] == summary["labelled"]
    assert finetune.held_out_if_trained(labelled, souped["labelled"], souped["config"]).sum() == 40


def test_repeat_shows_each_labelled_image_k_times_beside_up_to_all_of_mnist(tmp_path, mnist_test):
    import zipfile

    from digitflow.imaging import to_png
    from model_training.data import Mnist, to_model_input
    from model_training.soup import mixed_images
    from model_training.train import TrainConfig, datasets, split_indices

    x, y = mnist_test
    labelled = tmp_path / "small.zip"
    with zipfile.ZipFile(labelled, "w") as z:
        z.writestr("labels.csv", "filename,label\n" + "".join(f"d{i}.png,{y[i]}\n" for i in range(5000, 5100)))
        for i in range(5000, 5100):
            z.writestr(f"d{i}.png", to_png(255 - x[i]))
    mnist = Mnist(x[:3000], y[:3000], x[9000:], y[9000:])
    n_train, n_val_mnist = (len(i) for i in split_indices(mnist.y_train, TrainConfig()))  # about 2,700 and 300
    base = dict(architecture="tiny", labelled=[str(labelled)], holdout=0.2)
    lab = finetune.load_labelled([str(labelled)], 0.2, TrainConfig().split_seed, None)
    n, held = len(lab.y_train), len(lab.y_held)
    assert n + held == 100 and 15 <= held <= 25
    once, _, n_once, _ = datasets(mnist, TrainConfig(**base, replay=2))
    thrice, _, n_thrice, n_val = datasets(mnist, TrainConfig(**base, replay=2, repeat=3))
    assert n_once == n * 2 + n and n_thrice == n * 3 * 2 + n * 3  # replay counts per view
    assert n_val == n_val_mnist + held  # held-out images are never repeated
    views = thrice.digits[-3 * n:]
    assert np.array_equal(views[:n], views[n : 2 * n]) and np.array_equal(views[:n], views[2 * n :])
    assert np.array_equal(views[:n], once.digits[-n:])
    _, _, n_all, _ = datasets(mnist, TrainConfig(**base, replay=100, repeat=3))
    assert n_all == n_train + 3 * n  # every MNIST training image once, no more
    # batch norm of a soup or WiSE-FT mix sees the same proportion
    images = to_model_input(x[:2700])
    assert len(mixed_images(images, lab, 2, 3)) == 6 * n + 3 * n
    assert len(mixed_images(images, lab, 100, 3)) == 2700 + 3 * n


def test_train_from_scratch_mixes_a_labelled_set_beside_every_mnist_digit(tmp_path, mnist_test):
    x, y = mnist_test
    data = write_mnist_dir(tmp_path / "mnist", x, y, train=3000)
    runs = tmp_path / "runs"
    semeion = FIXTURES / "semeion.zip"
    tr = subprocess.run([sys.executable, "-m", "model_training", "train", "--architecture", "tiny", "--epochs", "1",
                         "--labelled", str(semeion), "--holdout", "0.25", "--repeat", "2", "--data-dir", str(data),
                         "--allow-subset", "--threads", "1", "--runs-dir", str(runs)],
                        capture_output=True, text=True, timeout=300)
    assert tr.returncode == 0, tr.stdout + tr.stderr
    run = next(runs.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["init_from"] is None and summary["config"]["repeat"] == 2
    (info,) = summary["labelled"]
    assert info["sha256"] == sha256_file(semeion) and (info["train"], info["held_out"]) == (1194, 399)
    # every MNIST training digit (about 2,700 of the 3,000; the rest validate) + each Semeion training digit
    # twice; the held-out Semeion digits join validation, once each
    from model_training.train import TrainConfig, split_indices

    n_train, n_val = (len(i) for i in split_indices(y[:3000], TrainConfig()))
    assert f"on {n_train + 2 * 1194} images, validating on {n_val + 399}" in (run / "train.log").read_text()
    assert "held_out_accuracy" in (run / "history.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("command", ["finetune", "train"])
def test_a_repeat_below_one_is_refused_before_any_work(tmp_path, command):
    start = [str(tmp_path / "nothing")] if command == "finetune" else []
    ft = subprocess.run([sys.executable, "-m", "model_training", command, *start, "--labelled",
                         str(FIXTURES / "semeion.zip"), "--repeat", "0", "--runs-dir", str(tmp_path / "runs")],
                        capture_output=True, text=True, timeout=120)
    assert ft.returncode != 0 and "--repeat must be at least 1, got 0" in ft.stderr
    assert not (tmp_path / "runs").exists()


def test_a_soup_averages_runs_from_one_start_and_exports(tmp_path, mnist_test):
    import keras

    from model_training.data import Mnist
    from model_training.export import export_run
    from model_training.soup import soup
    from model_training.train import TrainConfig, train

    x, y = mnist_test
    data = Mnist(x_train=x[:3000], y_train=y[:3000], x_test=x[9000:], y_test=y[9000:])
    train(data, TrainConfig(architecture="tiny", epochs=1, batch_size=32), tmp_path / "start")
    for name, styles in (("a", 0.0), ("b", 0.5)):
        train(data, TrainConfig(architecture="tiny", epochs=1, batch_size=32, styles=styles, seed=3,
                                init_from=str(tmp_path / "start")), tmp_path / name)
    summary = soup(data, [tmp_path / "a", tmp_path / "b"], tmp_path / "soup", [1.0, 3.0])
    assert summary["soup"]["weights"] == [0.25, 0.75] and summary["init_from"] == f"run {tmp_path.name}/start"
    got = keras.models.load_model(tmp_path / "soup" / "best.keras").get_weights()
    a, b = (keras.models.load_model(tmp_path / n / "best.keras").get_weights() for n in ("a", "b"))
    assert np.allclose(got[0], 0.25 * a[0] + 0.75 * b[0], atol=1e-6)  # the first conv kernel: the weighted mean
    with pytest.raises(ValueError, match="two runs"):
        soup(data, [tmp_path / "a"], tmp_path / "one")
    write = write_mnist_dir(tmp_path / "mnist", x, y, train=None)
    card = export_run(tmp_path / "soup", tmp_path / "models", str(write), flat=True)
    assert card["soup"]["of"] == summary["soup"]["of"]


def test_wise_ft_keeps_the_best_held_out_share_within_the_mnist_floor():
    from model_training.wiseft import choose

    rows = [{"share": 1.0, "mnist_val": 0.990, "held_out": 0.97}, {"share": 0.8, "mnist_val": 0.995, "held_out": 0.96},
            {"share": 0.6, "mnist_val": 0.996, "held_out": 0.95}, {"share": 0.5, "mnist_val": 0.997, "held_out": 0.95}]
    assert choose(rows, floor=0.995)["share"] == 0.8  # the fully fine-tuned one loses too much MNIST
    assert choose(rows, floor=0.98)["share"] == 1.0
    assert choose(rows, floor=0.996)["share"] == 0.6  # ties on held-out: more of the fine-tuned weights
    assert choose(rows, floor=0.999)["share"] == 0.5  # none within: the one that keeps MNIST best
    no_held_out = [{**r, "held_out": None} for r in rows]  # a set too small to hold any images out
    assert choose(no_held_out, floor=0.995)["share"] == 0.8  # the most fine-tuned share MNIST allows


def test_the_report_gives_the_true_reason_a_compared_model_was_not_shipped():
    from model_training.export import _why_not

    card = {"validation_accuracy": 0.9968, "validation_loss": 0.015,
            "real_sets": {"cvl_valid": {"accuracy": 0.968}, "semeion": {"accuracy": 0.974, "trained_on": True}}}
    assert _why_not({"validation_accuracy": 0.9950}, card) == "lower validation accuracy"
    assert _why_not({"validation_accuracy": 0.9968, "validation_loss": 0.02}, card).startswith("same validation")
    # higher MNIST validation, but worse on the real writers the choice was made on (a trained-on set says nothing)
    better_mnist = {"validation_accuracy": 0.9970, "real_sets": {"cvl_valid": 0.9553, "semeion": 0.9222}}
    assert _why_not(better_mnist, card) == "not lower validation accuracy, lower cvl_valid accuracy"
    other_rule = _why_not({"validation_accuracy": 0.9970, "real_sets": {"cvl_valid": 0.97}}, card)
    assert other_rule == "not lower validation accuracy; chosen by another rule"


@pytest.mark.parametrize("name", ["compact", "wide"])
def test_a_serving_architecture_fits_the_mac_budget_and_answers_ten_probabilities(name):
    from model_training.architectures import build, count_macs

    model = build(name)
    assert count_macs(model) <= 12_000_000  # the serving budget (issue 14): per image, convolutions and dense
    probs = np.asarray(model(np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32), training=False))
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
