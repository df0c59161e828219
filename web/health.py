"""Liveness and readiness."""

from flask import Blueprint, current_app, jsonify

from digitflow.contract import serving_target

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when Redis answers, a worker of each kind (bulk, interactive) has its model loaded (its heartbeat
    says so, fresh), and the model card is readable. `workers` names them all, `workers_by_queue` by kind."""
    svc = current_app.extensions["digitflow"]
    checks: dict = {}
    try:
        checks["redis"] = bool(svc.redis.ping())
    except Exception as exc:  # any Redis failure means not ready
        checks["redis"] = False
        checks["redis_error"] = str(exc)
    try:
        by_queue = svc.ready_workers() if checks["redis"] else {}
    except Exception:
        by_queue = {}
    checks["workers"] = sorted(name for names in by_queue.values() for name in names)
    checks["workers_by_queue"] = by_queue
    try:
        checks["model"] = svc.model
    except Exception as exc:
        checks["model"] = None
        checks["model_error"] = str(exc)
    if checks["redis"]:
        try:
            target = serving_target(svc.settings.model_dir)
            refused = svc.refused_models().get(target)
            if refused:  # the pointer names a model the workers would not load: they serve the old one
                checks["model_refused"] = {"target": target, **refused}
        except Exception:  # reporting a refusal must not make /readyz fail
            pass
    every_kind = bool(by_queue) and all(by_queue.values())
    ready = checks["redis"] and every_kind and checks["model"] is not None
    checks["status"] = "ready" if ready else "unavailable"
    return jsonify(checks), (200 if ready else 503)
