"""2. In-process pipeline: one process per core, no HTTP/Redis/Celery (the ceiling)."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from benchkit.common import SPAWN, log
from digitflow.settings import get_settings

_P: dict = {}


def _pipe_init(model_dir: str, pngs: list[bytes]) -> None:
    from worker.engine import Engine

    _P["engine"] = Engine(model_dir, "onnx", 1)
    _P["pngs"] = pngs
    _P["engine"].predict(np.zeros((1, 28, 28, 1), np.float32))


def _pipe_ready(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def _pipe_chunk(span: tuple[int, int]) -> list[tuple[int, int]]:
    from worker.pipeline import run_batch

    s = get_settings()
    start, end = span
    inputs = {i: _P["pngs"][i] for i in range(start, end)}
    results = run_batch(_P["engine"], inputs, s.max_image_pixels, s.batch_size).results
    return [(i, r.get("digit", -1)) for i, r in results.items()]


def pipeline_rate(model_dir: str, pngs: list[bytes], labels: np.ndarray, processes: int, repeats: int) -> dict:
    chunk = get_settings().chunk_size
    spans = [(i, min(i + chunk, len(pngs))) for i in range(0, len(pngs), chunk)]
    with SPAWN.Pool(processes, initializer=_pipe_init, initargs=(model_dir, pngs)) as pool:
        pool.map(_pipe_ready, range(processes * 2), chunksize=1)
        rates, acc = [], None
        for _ in range(repeats):
            t = time.perf_counter()
            out = [r for part in pool.map(_pipe_chunk, spans, chunksize=1) for r in part]
            rates.append(len(pngs) / (time.perf_counter() - t))
            pred = dict(out)
            acc = float(np.mean([pred[i] == labels[i] for i in range(len(pngs))]))
    return {"processes": processes, "images": len(pngs), "images_per_s": statistics.median(rates),
            "runs": rates, "accuracy": acc}


def pipeline_section(model_dir: str, pngs: list[bytes], labels: np.ndarray, cores: int, repeats: int,
                     smoke: bool) -> dict:
    """Section 2: one process per core; outside a smoke run also one process alone."""
    out = {"cores": pipeline_rate(model_dir, pngs, labels, cores, repeats)}
    if not smoke and cores > 1:
        out["one"] = pipeline_rate(model_dir, pngs, labels, 1, 1)
    for v in out.values():
        log(f"pipeline: {v['processes']} process(es): {v['images_per_s']:,.0f} images/s, "
            f"accuracy {v['accuracy']:.4f}")
    return out
