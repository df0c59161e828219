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


class Pipeline:
    """A pool of `processes` spawned processes, each with the model loaded (one ONNX thread), that runs the
    10k images as a job would be cut (web.ingest.chunk_plan), one chunk per task; `run()` times one pass.
    One untimed pass first warms it as the service's workers are warmed before they count as ready (the first
    pass of a fresh pool ran 20-30% slower than the next ones in every run: the model's full-batch buffers,
    the decoders' first calls)."""

    def __init__(self, model_dir: str, pngs: list[bytes], labels: np.ndarray, processes: int):
        from web.ingest import chunk_plan

        self.pngs, self.labels, self.processes = pngs, labels, processes
        bounds = np.cumsum([0, *chunk_plan(len(pngs), get_settings().chunk_size)])
        self.spans = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.pool = SPAWN.Pool(processes, initializer=_pipe_init, initargs=(model_dir, pngs))
        self.pool.map(_pipe_ready, range(processes * 2), chunksize=1)
        self.run()

    def run(self) -> tuple[float, float]:
        """(images/s, accuracy) of one pass."""
        t = time.perf_counter()
        pred = dict(r for part in self.pool.map(_pipe_chunk, self.spans, chunksize=1) for r in part)
        rate = len(self.pngs) / (time.perf_counter() - t)
        return rate, float(np.mean([pred[i] == self.labels[i] for i in range(len(self.pngs))]))

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


def pipeline_rate(model_dir: str, pngs: list[bytes], labels: np.ndarray, processes: int, repeats: int) -> dict:
    pipe = Pipeline(model_dir, pngs, labels, processes)
    try:
        runs = [pipe.run() for _ in range(repeats)]
    finally:
        pipe.close()
    return {"processes": processes, "images": len(pngs), "images_per_s": statistics.median(r for r, _ in runs),
            "runs": [r for r, _ in runs], "accuracy": runs[-1][1]}


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
