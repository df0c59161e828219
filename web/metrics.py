"""GET /metrics: the web's request histogram (summed over gunicorn's processes) and service-wide figures.

Under gunicorn prometheus_client runs in multiprocess mode: gunicorn.conf.py gives each start a fresh
PROMETHEUS_MULTIPROC_DIR, every process writes its samples there, and a scrape answered by any process
sums them (a MultiProcessCollector per scrape). Without it (`flask run`, an app in a test process) the
process's own registry is served. Service-wide figures are read from Redis at scrape time
(web/service_metrics.py). Open unless METRICS_TOKEN is set; outside /api/v1, so never rate-limited.
"""

from __future__ import annotations

import hmac
import os
import time

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from web.errors import ApiError
from web.service_metrics import ServiceCollector

bp = Blueprint("metrics", __name__)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
REQUEST_SECONDS = Histogram(
    "digitflow_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the URL rule, not the path: bounded), method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


class _ThisProcess:
    """The default registry's metrics, for a process that runs without multiprocess mode."""

    def collect(self):
        yield from REGISTRY.collect()


def register(app: Flask) -> None:
    """Time every request (register before other before_request hooks, which may answer early)."""
    settings = app.config["DIGITFLOW"]
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    app.extensions["digitflow_metrics"] = ServiceCollector(client, lambda: app.extensions["digitflow"].model)
    app.before_request(_start)
    app.after_request(_observe)
    app.register_blueprint(bp)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response):
    started = g.pop("metrics_started", None)
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        REQUEST_SECONDS.labels(route, method, str(response.status_code)).observe(time.perf_counter() - started)
    return response


@bp.get("/metrics")
def metrics():
    token = current_app.config["DIGITFLOW"].metrics_token
    if token:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "unauthorized", "GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`",
                           {"WWW-Authenticate": 'Bearer realm="digitflow-metrics"'})
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(current_app.extensions["digitflow_metrics"])
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
