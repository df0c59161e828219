"""4. Single drawings end to end: POST /api/v1/predict at several concurrency levels."""

from __future__ import annotations

import time

from benchkit.common import log
from benchkit.http import http_load
from benchkit.service import Service, cpu_delta


def drawings_section(svc: Service, bodies: list[bytes], labels: list[int], n_requests: int,
                     concurrencies: list[int]) -> list[dict]:
    """Per concurrency level, after a warm-up: latency, rate, server CPU and Redis commands per request."""
    rows = []
    for c in concurrencies:
        http_load(svc.url, "/api/v1/predict", bodies, min(100, n_requests), c)  # warm-up
        cpu0, t0, info0 = svc.cpu(), time.time(), svc.redis_info()
        r = http_load(svc.url, "/api/v1/predict", bodies, n_requests, c, labels)
        r["server_cpu"] = cpu_delta(cpu0, svc.cpu(), time.time() - t0)
        if svc.redis:
            r["redis_calls_per_request"] = (svc.redis_info()["calls"] - info0["calls"]) / n_requests
        rows.append(r)
        log(f"drawings c={c}: p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"{r['rps']:,.0f} req/s, statuses {r['statuses']}, client CPU {r['client_cpu_cores']:.2f} cores")
    return rows
