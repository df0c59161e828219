"""Promote a training run into MODEL_DIR: model.keras, model.onnx, model_card.json and report/."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import keras
import numpy as np

from digitflow.contract import (
    CARD_FILE,
    CURRENT,
    INPUT_SPEC,
    KERAS_FILE,
    ONNX_FILE,
    OUTPUT_SPEC,
    REPORT_DIR,
    VERSIONS_DIR,
    check_model_folder,
    model_version,
    point_to,
    resolve_model_dir,
    sha256_file,
)
from digitflow.labelled import read_labelled, real_sets
from model_training import calibration, finetune, report
from model_training.architectures import build, count_macs
from model_training.data import load_mnist, load_test_split, stratified_split, to_model_input
from model_training.distill import run_label, training_config
from model_training.metrics import summary
from model_training.scoring import load_model, score, set_digits

log = logging.getLogger("model_training")
AGREEMENT_TOLERANCE = 1e-4


def onnx_probs(onnx_path: Path, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def to_onnx(model: keras.Model, path: Path) -> None:
    """Export with a dynamic batch dimension (the model must have been called once)."""
    model(np.zeros((1, 28, 28, 1), np.float32), training=False)
    model.export(str(path), format="onnx", verbose=False)


def clean_copy(trained: keras.Model) -> keras.Model:
    """The same weights in a freshly built graph, without optimizer state (a smaller file)."""
    fresh = build(trained.name)
    fresh.set_weights(trained.get_weights())
    return fresh


MNIST_VALIDATION = "mnist_validation"


def mnist_validation(name: str, run_dir: Path, data_dir: str | None):
    """(inputs, labels, MNIST_VALIDATION): the run's own MNIST validation split through the front end,
    to calibrate on when the labelled set `name` is absent; (None, None, None) without training data."""
    from model_training.train import serving_digits

    cfg = training_config(run_dir)
    try:
        data = load_mnist(data_dir, require_full=False) if data_dir else None
    except FileNotFoundError:  # only the test split at hand
        data = None
    if data is None:
        log.warning("no labelled set %r and no MNIST training split: the model is exported uncalibrated (T = 1)", name)
        return None, None, None
    _, val_idx = stratified_split(data.y_train, min(cfg["val_size"], len(data.y_train) // 10), cfg["split_seed"])
    return to_model_input(serving_digits(data.x_train[val_idx])), data.y_train[val_idx].astype(np.int64), MNIST_VALIDATION


def export_run(
    run_dir: Path, model_dir: Path, data_dir: str | None, compare: list[str] | None = None, keep_compared: bool = False,
    real_dir: Path | None = None, calibrate_on: str = "cvl_valid", flat: bool = False,
) -> dict:
    """Calibrate the run's best checkpoint, export it, write card and report.

    `compare`: other runs for the report. `keep_compared`: also list the model being replaced and the
    comparisons of its card (runs of earlier sessions whose folders are gone). `real_dir`: labelled real
    sets scored for the card and report. `calibrate_on`: the set the temperature is fitted on (a real
    set's name, or MNIST validation when that set is absent). The model goes into
    model_dir/versions/<version>/ and model_dir/current is switched to it atomically, so a running
    service picks it up between tasks; `flat` writes the files at model_dir's top instead (the
    repository's shipped model).
    """
    run_summary = _summary(run_dir)
    sets = real_sets(real_dir)
    carried = _carried_comparisons(resolve_model_dir(model_dir), sets) if keep_compared else []
    model = clean_copy(keras.models.load_model(run_dir / "best.keras"))
    trained_on = {d["sha256"] for d in run_summary.get("labelled") or [] if d.get("sha256")}
    unseen = {n: path for n, path in sets.items() if sha256_file(path) not in trained_on}
    raw = {name: _set_probs(model, path) for name, path in sets.items()}  # once per set, before calibration
    if calibrate_on in unseen:
        probs, y_cal, refused = raw[calibrate_on]
        probs_cal, y_cal, fitted_on = probs[~refused], y_cal[~refused], calibrate_on
    else:
        x_cal, y_cal, fitted_on = mnist_validation(calibrate_on, run_dir, data_dir)
        probs_cal = None if x_cal is None else np.asarray(model.predict(x_cal, batch_size=1000, verbose=0))
    temperature = 1.0 if probs_cal is None else calibration.fit_temperature(probs_cal, y_cal)
    calibration.fold_into(model, temperature)  # the same as with_temperature on its probabilities
    log.info("temperature %.3f fitted on %s (%d images)", temperature, fitted_on, 0 if y_cal is None else len(y_cal))
    x_raw, y = load_test_split(data_dir) if data_dir else _keras_test()
    x = to_model_input(x_raw)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        model.save(staging / KERAS_FILE)
        to_onnx(model, staging / ONNX_FILE)
        keras_probs = np.asarray(model.predict(x, batch_size=1000, verbose=0))
        ort_probs = onnx_probs(staging / ONNX_FILE, x)
        diff = float(np.abs(keras_probs - ort_probs).max())
        if diff > AGREEMENT_TOLERANCE or (keras_probs.argmax(1) != ort_probs.argmax(1)).any():
            raise RuntimeError(f"ONNX and Keras disagree (max abs diff {diff:.2e})")
        metrics = summary(y, ort_probs)
        out = model_dir if flat else model_dir / VERSIONS_DIR / f".staging-{os.getpid()}-{time.time_ns()}"
        out.mkdir(parents=True, exist_ok=True)
        for name in (KERAS_FILE, ONNX_FILE):
            shutil.copy(staging / name, out / name)
    calibrated_probs = {name: (calibration.with_temperature(p, temperature), y_set, refused)
                        for name, (p, y_set, refused) in raw.items()}
    real = {name: {**score(p, y_set, refused),
                   "confidence": calibration.confidence_summary(p[~refused], y_set[~refused]),
                   "uncalibrated": calibration.confidence_summary(raw[name][0][~refused], y_set[~refused]),
                   **({} if name in unseen else _held_out_score(sets[name], run_summary, p, y_set, refused))}
            for name, (p, y_set, refused) in calibrated_probs.items()}
    calibrated = {"temperature": temperature, "fitted_on": fitted_on, "fitted_images": 0 if y_cal is None else len(y_cal),
                  "folded_into": "the last Dense layer (kernel and bias divided by the temperature)",
                  "mnist_test": calibration.confidence_summary(ort_probs, y)}
    rep = out / REPORT_DIR
    rep.mkdir(exist_ok=True)
    report.reliability_plot({"MNIST test": (ort_probs, y),
                             **{n: (p[~refused], y_set[~refused]) for n, (p, y_set, refused) in calibrated_probs.items()}},
                            rep / "reliability.png", temperature)
    report.training_curves(run_dir / "history.csv", rep / "training_curves.png")
    report.confusion_plot(metrics["confusion_matrix"], rep / "confusion_matrix.png")
    report.misclassified_grid(x_raw, y, ort_probs.argmax(1), rep / "misclassified.png")
    others = carried + [_run_accuracy(Path(r), x, y, sets) for r in compare or []]
    card = _card(model, out, run_summary, metrics, diff, others)
    card["calibration"], card["real_sets"] = calibrated, real
    (rep / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (rep / "README.md").write_text(_report_md(card, metrics))
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")  # last: a folder with a card is complete
    if not flat:
        publish(model_dir, out, card["version"])
    log.info("exported to %s: test accuracy %.4f, %d misclassified", model_dir, metrics["accuracy"], metrics["misclassified"])
    return card


def publish(model_dir: Path, staged: Path, version: str) -> None:
    """Move a complete staged folder to versions/<version> and point `current` at it (atomic renames)."""
    final = model_dir / VERSIONS_DIR / version
    check_model_folder(staged)
    if final.exists():  # the same ONNX file again (same version): keep the newer card and report
        shutil.rmtree(final)
    os.replace(staged, final)
    point_to(model_dir, version)
    log.info("serving pointer %s -> %s", model_dir / CURRENT, final)


def rollback(model_dir: Path, version: str) -> dict:
    """Point model_dir/current back at an earlier version (after checking its folder)."""
    card = check_model_folder(model_dir / VERSIONS_DIR / version)
    point_to(model_dir, version)
    return card


def _keras_test():
    (_, _), (x, y) = keras.datasets.mnist.load_data()
    return x, y


def _comparison(run: str, info: dict, config: dict, test_accuracy: float, **extra) -> dict:
    """One row of the report's comparison table, from a run summary or a model card (same field names)."""
    keys = ("architecture", "validation_accuracy", "epochs", "parameters", "macs_per_image", "training_seconds")
    return {"run": run, "test_accuracy": test_accuracy, **{k: info[k] for k in keys},
            "planned_epochs": config["epochs"], **extra}


def _set_probs(model: keras.Model, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, refused) of a labelled set through the front end."""
    x, y, refused = set_digits(str(path))
    return np.asarray(model.predict(x, batch_size=1000, verbose=0)), y, refused


def _held_out_score(path: Path, run: dict, probs: np.ndarray, labels: np.ndarray, refused: np.ndarray) -> dict:
    """For a set the run was fine-tuned on: `trained_on`, and the score of the images it held out (the only
    part of the set that still measures something the model did not learn by heart)."""
    held = finetune.held_out_by(run["config"], read_labelled(path))
    if not held.any():
        return {"trained_on": True}
    p, y, r = probs[held], labels[held], refused[held]
    return {"trained_on": True, "held_out": {**score(p, y, r), "confidence": calibration.confidence_summary(p[~r], y[~r])}}


def _real_accuracy(model: keras.Model, sets: dict[str, Path], trained: list[dict] | None = None,
                   config: dict | None = None) -> dict:
    """{set: accuracy} and `held_out_sets`: the sets the model was fine-tuned on, scored by their held-out images."""
    accuracy, held_names = {}, []
    for name, path in sets.items():
        x, y, refused = set_digits(str(path))
        held = finetune.held_out_if_trained(path, trained, config or {})
        if held is not None:
            held_names.append(name)
            if not held.any():  # trained on all of it: nothing left that measures unseen writing
                accuracy[name] = None
                continue
            x, y, refused = x[held], y[held], refused[held]
        accuracy[name] = round(score(np.asarray(model.predict(x, batch_size=1000, verbose=0)), y, refused)["accuracy"], 6)
    return {"real_sets": accuracy, "held_out_sets": held_names}


def _run_accuracy(run: Path, x: np.ndarray, y: np.ndarray, sets: dict[str, Path]) -> dict:
    """Another run's best checkpoint, for the comparison table of the report."""
    model = keras.models.load_model(run / "best.keras")
    probs = np.asarray(model.predict(x, batch_size=1000, verbose=0))
    s = _summary(run)
    return _comparison(run_label(run), s, s["config"], float((probs.argmax(1) == y).mean()),
                       teachers=len(s.get("teachers") or []), validation_loss=s["validation_loss"],
                       swa_from=(s.get("swa") or {}).get("from"), ema=s["config"].get("ema") or 0.0,
                       init_from=s.get("init_from"), **_real_accuracy(model, sets, s.get("labelled"), s["config"]))


def _summary(run: Path) -> dict:
    """summary.json; runs from before validation_loss was recorded take it from best.json."""
    s = json.loads((run / "summary.json").read_text())
    if "validation_loss" not in s:
        s["validation_loss"] = json.loads((run / "best.json").read_text())["best"][1]
    return s


def _carried_comparisons(model_dir: Path, sets: dict[str, Path]) -> list[dict]:
    """The card now in model_dir: its comparison entries, and its own model as a 'shipped before' entry
    (scored on the real sets now, from its model file)."""
    if not (model_dir / CARD_FILE).exists():
        return []
    card = json.loads((model_dir / CARD_FILE).read_text())
    real = (_real_accuracy(load_model(model_dir), sets, card.get("labelled_sets"), card["training_config"])
            if (model_dir / KERAS_FILE).exists() else {})
    before = _comparison(f"model {card['version']}", card, card["training_config"], card["test_accuracy"],
                         shipped_before=True, validation_loss=card.get("validation_loss"), **real)
    kept = [c for c in card.get("compared_with") or [] if c.get("run") != before["run"]]
    return kept + [before]


def _card(model, model_dir: Path, run: dict, metrics: dict, diff: float, others: list[dict]) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    files = {name: sha256_file(model_dir / name) for name in (ONNX_FILE, KERAS_FILE)}
    return {
        "version": model_version(model_dir / ONNX_FILE),
        "architecture": run["architecture"],
        "parameters": int(model.count_params()),
        "macs_per_image": count_macs(model),
        "test_accuracy": round(metrics["accuracy"], 6),
        "test_misclassified": metrics["misclassified"],
        "validation_accuracy": round(run["validation_accuracy"], 6),
        "validation_loss": round(run["validation_loss"], 6),
        "per_class": metrics["per_class"],
        "epochs": run["epochs"],
        "best_epoch": run.get("best_epoch"),
        "training_seconds": round(run["training_seconds"], 1),
        "training_config": run["config"],
        "teachers": run.get("teachers", []),
        **({"parent": run["init_from"]} if run.get("init_from") else {}),  # continued from this model or run
        **({"labelled_sets": run["labelled"]} if run.get("labelled") else {}),  # fine-tuned on (SHA-256, counts)
        **({"swa": run["swa"]} if run.get("swa") else {}),  # start_config: how the start was trained
        **({"soup": run["soup"]} if run.get("soup") else {}),  # the runs averaged, with their weights
        **({"wise_ft": run["wise_ft"]} if run.get("wise_ft") else {}),  # fine-tuned weights averaged with the start's
        "data_sha256": run["data_sha256"],
        "files": files,
        "onnx_keras_max_abs_diff": diff,
        "input": {**INPUT_SPEC, "name": sess.get_inputs()[0].name},
        "output": {**OUTPUT_SPEC, "name": sess.get_outputs()[0].name},
        "versions": {pkg: version(pkg) for pkg in ("tensorflow-cpu", "keras", "onnx", "tf2onnx", "onnxruntime", "numpy")}
        | {"python": platform.python_version()},
        "compared_with": others,
    }


def _distillation_md(card: dict) -> list[str]:
    if not card.get("teachers"):
        return []
    cfg = card["training_config"]
    return [
        f"Trained by distillation from {len(card['teachers'])} teacher(s) ({', '.join(card['teachers'])}): each",
        f"training target is {1 - cfg['distill_weight']:.2f} x the one-hot label + {cfg['distill_weight']:.2f} x the "
        f"teachers' mean probabilities softened at temperature {cfg['temperature']:g}. The teachers were trained on the",
        "same training split, so the validation images stayed unseen.",
        "",
    ]


def _swa_md(card: dict) -> list[str]:
    if not card.get("swa"):
        return []
    swa = card["swa"]
    return [
        f"Stochastic weight averaging (Izmailov et al. 2018): {swa['from']} was trained {swa['epochs']} more epochs at a",
        f"constant learning rate of {swa['learning_rate']:g}; the shipped weights are the mean of its weights at the end of",
        f"the first {swa['averaged_epochs']} of them (the average with the best validation result), with batch-norm",
        "statistics recomputed for the averaged weights. Epochs and training time include the start's;",
        "`training_curves.png` shows the SWA epochs (validation: the running average after each epoch).",
        "",
    ]


def _soup_md(card: dict) -> list[str]:
    if not card.get("soup"):
        return []
    parts = ", ".join(f"{w:.2f} x {name}" for name, w in zip(card["soup"]["of"], card["soup"]["weights"], strict=True))
    return [
        f"A weight-averaged model soup (Wortsman et al. 2022; WiSE-FT when one ingredient is the start): {parts},",
        "batch-norm statistics recomputed for the mean; validated like a run. Epochs and training time add up",
        "the ingredients'.",
        "",
    ]


def _cell(accuracy: float | None) -> str:
    return "—" if accuracy is None else f"{accuracy:.4f}"


def _why_not(other: dict, card: dict) -> str:
    tie = round(other["validation_accuracy"], 4) == round(card["validation_accuracy"], 4)
    if tie and (other.get("validation_loss") or 0) > card["validation_loss"]:
        return "same validation accuracy, higher validation loss"
    if round(other["validation_accuracy"], 4) < round(card["validation_accuracy"], 4):
        return "lower validation accuracy"
    theirs = other.get("real_sets") or {}
    lower = [n for n, v in (card.get("real_sets") or {}).items()
             if not v.get("trained_on") and theirs.get(n) is not None and theirs[n] < v["accuracy"]]
    if lower:  # chosen on real writers: say so instead of claiming a lower validation figure
        return f"not lower validation accuracy, lower {' and '.join(lower)} accuracy"
    return "not lower validation accuracy; chosen by another rule"


def _how_trained(teachers: int | None, ema: float | None, swa_from: str | None) -> str:
    """', distilled from 3 teachers, weight EMA 0.999, SWA from model ...' (the parts that apply)."""
    return ((f", distilled from {teachers} teachers" if teachers else "") + (f", weight EMA {ema:g}" if ema else "")
            + (f", SWA from {swa_from}" if swa_from else ""))


def _real_sets_md(card: dict) -> list[str]:
    if not card.get("real_sets"):
        return []
    sets = ", ".join(f"{n} ({v['n']:,} images, {v['refused']} refused{_trained_note(v)})"
                     for n, v in card["real_sets"].items())
    return [
        f"Real labelled sets (by writers MNIST never saw; `../shared/data/real`): {sets}. Accuracy through the",
        "service's decoding and front end; a refused image counts as wrong. Only a set marked TRAINED ON was",
        "trained on; its column gives the images the fine-tuning held out (marked *held out*), the whole set's",
        f"figure beside it; {card['calibration']['fitted_on'] or 'none'} fitted the temperature.",
        "",
    ]


def _trained_note(v: dict) -> str:
    if not v.get("trained_on"):
        return ""
    held = v.get("held_out")
    return ", TRAINED ON" + (f" except {held['n']:,} held-out images" if held else ", none held out")


def _real_cell(v: dict) -> str:
    """The shipped model's figure on a real set: the held-out part where it was trained on the rest."""
    if v.get("held_out"):
        return f" **{v['held_out']['accuracy']:.4f}** *held out* ({v['accuracy']:.4f} all) |"
    return f" **{v['accuracy']:.4f}**{' (trained on)' if v.get('trained_on') else ''} |"


def _calibration_md(card: dict) -> list[str]:
    cal = card.get("calibration")
    if not cal or not cal.get("fitted_on"):
        return ["## Calibrated confidence", "", "Not calibrated: no validation data was given to `export`.", ""]
    rows = [("MNIST test", None, cal["mnist_test"])]
    for n, v in (card.get("real_sets") or {}).items():
        rows.append((n + (" (trained on)" if v.get("trained_on") else ""), v["uncalibrated"], v["confidence"]))
        if v.get("held_out"):
            rows.append((f"{n}, held-out images only", None, v["held_out"]["confidence"]))
    lines = [
        "## Calibrated confidence",
        "",
        f"Temperature scaling (Guo et al. 2017): T = {cal['temperature']:g}, fitted by maximum likelihood on "
        f"{cal['fitted_on']} ({cal['fitted_images']:,} images), folded into {cal['folded_into']}: the ONNX file the",
        "workers load gives calibrated probabilities. ECE: expected calibration error, 15 equal-width bins;",
        f"low confidence: below {calibration.LOW_CONFIDENCE:g}, the UI's review filter. `reliability.png` shows the diagrams.",
        "",
        "| set | ECE before | ECE after | right among the 95% most confident | errors | errors flagged low | flagged low |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, before, after in rows:
        ece_before = f"{before['ece']:.2%}" if before else "—"
        lines.append(f"| {name} | {ece_before} | {after['ece']:.2%} | {after['accuracy_top_95pct_confident']:.2%} | "
                     f"{after['errors']} | {after['errors_flagged_low']} | {after['flagged_low']} |")
    return lines + [""]


def _report_md(card: dict, metrics: dict) -> str:
    shipped_how = _how_trained(0, card["training_config"].get("ema"), (card.get("swa") or {}).get("from"))
    sets = list(card.get("real_sets") or {})
    lines = [
        "# Evaluation report (canonical MNIST test split, 10,000 images)",
        "",
        "The test split chose nothing: epochs, checkpoint and hyper-parameters were chosen on a",
        f"seeded, stratified validation split of {card['training_config']['val_size']} training images (split seed "
        f"{card['training_config'].get('split_seed', card['training_config']['seed'])}) and, where the report",
        "lists real sets, on CVL validation; the runs compared are listed beside the shipped one (a run's own",
        "checkpoint: the highest MNIST validation accuracy, ties broken by the lower validation loss).",
        f"One image is {1 / card['training_config']['val_size']:.4f} of validation accuracy and 0.0001 of test accuracy:",
        "differences of a few images between runs of one design are within run-to-run noise.",
        "",
        *_distillation_md(card),
        *_swa_md(card),
        *_soup_md(card),
        *_real_sets_md(card),
        "| model | parameters | MAC/image | epochs | validation acc. | test acc. | misclassified |"
        + "".join(f" {n} |" for n in sets),
        "| --- | --- | --- | --- | --- | --- | --- |" + " --- |" * len(sets),
        f"| **{card['architecture']}**{shipped_how} (shipped) | {card['parameters']:,} | {card['macs_per_image'] / 1e6:.1f} M | "
        f"{card['epochs']} | {card['validation_accuracy']:.4f} | **{card['test_accuracy']:.4f}** | {card['test_misclassified']} |"
        + "".join(_real_cell(card["real_sets"][n]) for n in sets),
    ]
    for other in card.get("compared_with") or []:
        if other["architecture"] == "seed":
            role = f"seed, the original design (short schedule: {other['epochs']} epochs)"
        elif other.get("shipped_before"):
            role = f"{other['architecture']}, {other['run']} (shipped before; {_why_not(other, card)})"
        elif other["parameters"] != card["parameters"]:
            role = f"{other['architecture']} (earlier design), run {other['run']}"
        else:
            how = _how_trained(other.get("teachers"), other.get("ema"), other.get("swa_from"))
            role = f"{other['architecture']}{how}, run {other['run']} (not shipped: {_why_not(other, card)})"
        lines.append(
            f"| {role} | {other['parameters']:,} | {other['macs_per_image'] / 1e6:.1f} M | {other['epochs']} | "
            f"{other['validation_accuracy']:.4f} | {other['test_accuracy']:.4f} | "
            f"{round((1 - other['test_accuracy']) * 10000)} |"
            + "".join(f" {_cell((other.get('real_sets') or {}).get(n))}"
                      f"{' *held out*' if n in (other.get('held_out_sets') or []) else ''} |" for n in sets)
        )
    lines += ["", *_calibration_md(card), "## Per class", "", "| digit | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for c, m in metrics["per_class"].items():
        lines.append(f"| {c} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |")
    lines += [
        "",
        "## Plots",
        "",
        "- `training_curves.png`: accuracy and loss per epoch (train and validation)",
        "- `confusion_matrix.png`: rows true, columns predicted",
        "- `misclassified.png`: every misclassified test digit with true and predicted label",
        "- `reliability.png`: accuracy against confidence per bin, MNIST test and each real set, calibrated",
        "",
        f"ONNX and Keras agree on every test image: identical argmax, max |Δp| = {card['onnx_keras_max_abs_diff']:.1e}.",
        "",
    ]
    return "\n".join(lines)
