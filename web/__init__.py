"""Flask front end: `gunicorn -c gunicorn.conf.py 'web:create_app()'` or `flask --app web run`."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask

from digitflow.settings import Settings, get_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """App factory: shared settings first, then test overrides (a dict of Settings fields)."""
    settings: Settings = get_settings()
    if test_config:
        settings = Settings.from_env(**test_config)
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        MAX_FORM_PARTS=settings.max_zip_entries + 10,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=True,
        DIGITFLOW=settings,
    )
    app.json.sort_keys = False  # keep documented field order
    from web import api, errors, health, limiter, metrics, openapi, security, ui
    from web.services import Services

    app.extensions["digitflow"] = Services(settings)
    metrics.register(app)  # first: it times requests that other hooks answer early
    errors.register(app)
    security.register(app)
    limiter.init(app, settings)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    return app
