"""Per-client rate limit on the API (Flask-Limiter, counters in Redis)."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from digitflow.settings import Settings


def _client_key() -> str:
    """A valid API key's name: each key has its own budget. Without one, the client's address, never a
    header it chooses (a made-up token per request would otherwise escape the limit)."""
    from web.auth import given_token

    client = current_app.extensions["digitflow"].keys.client(given_token())
    return f"key:{client}" if client else f"addr:{get_remote_address()}"


def init(app: Flask, settings: Settings) -> None:
    if settings.rate_limit.strip().lower() in ("", "off", "none"):
        return
    limiter = Limiter(
        key_func=_client_key,
        app=app,
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
        strategy="moving-window",
        headers_enabled=True,
        swallow_errors=True,  # Redis down: the request goes on and gets a clear 503 from the API itself
        key_prefix="df-limit",
        # one budget per client for the whole API (default_limits would give each route its own budget)
        application_limits=[settings.rate_limit],
        application_limits_exempt_when=lambda: not request.path.startswith("/api/v1"),
    )
    app.extensions["digitflow_limiter"] = limiter
