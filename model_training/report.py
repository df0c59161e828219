"""The evaluation report: plots (training curves, confusion matrix, misclassified digits) and README."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curves(history_csv: Path, out: Path) -> None:
    rows = list(csv.DictReader(history_csv.open()))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        axes[0].plot(epochs, [float(r[key]) for r in rows], label=label)
    axes[0].set(title="accuracy", xlabel="epoch", ylim=(0.97, 1.0))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        axes[1].plot(epochs, [float(r[key]) for r in rows], label=label)
    axes[1].set(title="loss", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def confusion_plot(matrix: list[list[int]], out: Path) -> None:
    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(np.log1p(m), cmap="Blues")
    for i in range(10):
        for j in range(10):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def misclassified_grid(x: np.ndarray, y: np.ndarray, pred: np.ndarray, out: Path, limit: int = 80) -> None:
    wrong = np.flatnonzero(pred != y)[:limit]
    cols = 10
    rows = max(1, (len(wrong) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(x[i], cmap="gray_r")
        ax.set_title(f"#{i} {y[i]}→{pred[i]}", fontsize=7)
    fig.suptitle("misclassified test digits: index, true → predicted", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def reliability_plot(sets: dict[str, tuple[np.ndarray, np.ndarray]], out: Path, temperature: float) -> None:
    """Reliability diagrams: per confidence bin, accuracy against mean confidence (the diagonal is calibrated)."""
    from model_training.calibration import expected_calibration_error, reliability

    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 4), squeeze=False)
    for ax, (name, (probs, labels)) in zip(axes[0], sets.items(), strict=True):
        bins = [b for b in reliability(probs, labels) if b["n"]]
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=1 / 15, align="edge",
               edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3", ms=3,
                label="mean confidence")
        ece = expected_calibration_error(probs, labels)
        ax.set(title=f"{name}: ECE {ece:.2%}", xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"reliability after temperature scaling (T = {temperature:g})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
