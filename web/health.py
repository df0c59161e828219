"""Liveness and readiness."""

from flask import Blueprint, current_app, jsonify

from digitflow.contract import serving_target

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when Redis answers, at least one worker replies to a ping, and the model card is readable."""
    svc = current_app.extensions["digitflow"]
    checks: dict = {}
    try:
        checks["redis"] = bool(svc.redis.ping())
    except Exception as exc:  # any Redis failure means not ready
        checks["redis"] = False
        checks["redis_error"] = str(exc)
    try:
        checks["workers"] = svc.workers_alive(timeout=1.0) if checks["redis"] else []
    except Exception:
        checks["workers"] = []
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
    ready = checks["redis"] and bool(checks["workers"]) and checks["model"] is not None
    checks["status"] = "ready" if ready else "unavailable"
    return jsonify(checks), (200 if ready else 503)
