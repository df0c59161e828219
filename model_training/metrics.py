"""Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix (NumPy only)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def per_class(m: np.ndarray) -> dict[str, dict[str, float]]:
    tp = np.diag(m).astype(float)
    precision = tp / np.maximum(m.sum(axis=0), 1)
    recall = tp / np.maximum(m.sum(axis=1), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {
        str(c): {"precision": round(precision[c], 5), "recall": round(recall[c], 5), "f1": round(f1[c], 5),
                 "support": int(m[c].sum())}
        for c in range(len(m))
    }


def summary(y_true: np.ndarray, probs: np.ndarray) -> dict:
    pred = probs.argmax(axis=1)
    m = confusion(y_true, pred)
    return {
        "accuracy": float((pred == y_true).mean()),
        "misclassified": int((pred != y_true).sum()),
        "per_class": per_class(m),
        "confusion_matrix": m.tolist(),
    }
