"""The model a worker process serves, following MODEL_DIR/current between tasks (rollout without restarts).

Each process checks the pointer at most once a second (one readlink). A new target is loaded and
checked (the card's hashes, version and shapes; a probe prediction) before it replaces the old engine;
a model that fails is refused: the old one keeps serving, the error is logged and recorded in Redis
(`df:model:refused`), where /readyz reports it. Tasks in flight finish on the engine they started with.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from digitflow.contract import REFUSED_KEY, SERVING_KEY, check_model_folder, serving_target
from worker.engine import Engine, default_threads

log = logging.getLogger(__name__)
CHECK_EVERY = 1.0  # seconds between looks at the pointer
REFUSED, SERVING = REFUSED_KEY, SERVING_KEY


class ServingModel:
    def __init__(self, model_dir: str | Path, backend: str, threads: int, redis_client=None):
        self.model_dir, self.backend, self.threads, self.redis = Path(model_dir), backend, threads, redis_client
        self._engine: Engine | None = None
        self._target: str | None = None
        self._refused: set[str] = set()
        self._checked = 0.0

    def engine(self) -> Engine:
        """The engine to use for the next task (loads the first one, or a newly pointed-to one)."""
        now = time.monotonic()
        if self._engine is not None and now - self._checked < CHECK_EVERY:
            return self._engine
        self._checked = now
        target = serving_target(self.model_dir)
        if self._engine is None or (target != self._target and target not in self._refused):
            self._switch(target)
        return self._engine

    def _folder(self, target: str) -> Path:
        return self.model_dir if target == "." else (self.model_dir / target if not os.path.isabs(target) else Path(target))

    def _switch(self, target: str) -> None:
        folder = self._folder(target)
        try:
            check_model_folder(folder)
            eng = Engine(folder, self.backend, self.threads)
            probe = eng.predict(np.zeros((2, 28, 28, 1), np.float32))
            if probe.shape != (2, 10) or not np.isfinite(probe).all() or abs(float(probe[0].sum()) - 1) > 1e-3:
                raise ValueError(f"a probe prediction gave shape {probe.shape}, not probabilities [2,10]")
        except Exception as exc:
            if self._engine is None:
                raise  # nothing to serve yet: fail as loudly as a missing model always did
            self._refused.add(target)
            log.error("model %s refused (%s); still serving %s", target, exc, self._engine.model["version"])
            self._record(REFUSED, target, json.dumps({"error": str(exc), "at": time.time(),
                                                      "serving": self._engine.model["version"]}))
            return
        before = self._engine.model["version"] if self._engine else None
        self._engine, self._target = eng, target
        log.info("serving model %s (%s, %d threads) in pid %d%s", eng.model["version"], eng.backend, self.threads,
                 os.getpid(), f", switched from {before}" if before else "")
        self._record(SERVING, target, str(time.time()))

    def _record(self, key: str, field: str, value: str) -> None:
        if self.redis is None:
            return
        try:
            self.redis.hset(key, field, value)
            self.redis.expire(key, 7 * 86400)
        except Exception as exc:  # Redis trouble must not stop serving
            log.warning("could not record %s in Redis: %s", key, exc)


def for_this_process(model_dir: str | Path, backend: str, threads: int | None, redis_client) -> ServingModel:
    processes = int(os.environ.get("WORKER_PROCESSES", "0")) or None
    return ServingModel(model_dir, backend, threads or default_threads(processes), redis_client)
