"""Calibrated confidence: temperature scaling (Guo, Pleiss, Sun & Weinberger 2017), folded into the model.

One temperature T divides the logits: p_T = softmax(z / T). The models end in Dense + softmax, so
z / T = (W / T) x + b / T: dividing the last layer's kernel and bias by T *is* the calibration. The
exported Keras and ONNX files then carry it (the workers need no code and no setting for it; the card
records T and where it was fitted). T keeps every image's argmax, so accuracy is unchanged.
"""

from __future__ import annotations

import math

import numpy as np

LOW_CONFIDENCE = 0.8  # the UI's "low confidence" filter (web/static/upload.js)
BINS = 15  # equal-width confidence bins of the expected calibration error (as Guo et al.)


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))


def with_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    z = _logits(probs) / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, low: float = 0.2, high: float = 10.0) -> float:
    """The T minimising the negative log-likelihood of labels (golden-section search on log T)."""
    a, b = math.log(low), math.log(high)
    g = (math.sqrt(5) - 1) / 2
    f = lambda log_t: nll(with_temperature(probs, math.exp(log_t)), labels)  # noqa: E731
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return round(math.exp((a + b) / 2), 4)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: count, mean confidence, accuracy (the reliability diagram's points)."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        m = which == i
        out.append({"low": float(edges[i]), "high": float(edges[i + 1]), "n": int(m.sum()),
                    "confidence": float(conf[m].mean()) if m.any() else None,
                    "accuracy": float(right[m].mean()) if m.any() else None})
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Sum over bins of |accuracy - confidence| weighted by the bin's share of the images."""
    n = len(labels)
    return float(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability(probs, labels, bins)
                     if b["n"]))


def confidence_summary(probs: np.ndarray, labels: np.ndarray, coverage: float = 0.95) -> dict:
    """What a reviewer relies on: calibration, accuracy of the most confident share, errors the UI flags."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    keep = np.argsort(-conf, kind="stable")[: int(round(coverage * len(conf)))]
    errors = ~right
    return {
        "ece": round(expected_calibration_error(probs, labels), 5),
        "nll": round(nll(probs, labels), 5),
        f"accuracy_top_{int(coverage * 100)}pct_confident": round(float(right[keep].mean()), 5),
        "errors": int(errors.sum()),
        "errors_flagged_low": int((errors & (conf < LOW_CONFIDENCE)).sum()),
        "flagged_low": int((conf < LOW_CONFIDENCE).sum()),
    }


def fold_into(model, t: float) -> None:
    """Divide the final Dense layer's kernel and bias by T (the model must end in Dense + softmax)."""
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or last.activation is not keras.activations.softmax:
        raise ValueError(f"{model.name} does not end in a softmax Dense layer; cannot fold a temperature in")
    kernel, bias = last.get_weights()
    last.set_weights([kernel / t, bias / t])
