"""The `callback_url` form field of POST /api/v1/jobs, checked before anything is stored."""

from __future__ import annotations

from flask import request

from digitflow.callback_url import CallbackRefused, check_callback
from digitflow.settings import Settings
from web.errors import ApiError


def callback_url_field(settings: Settings) -> str | None:
    """The request's callback URL if it passes the checks of digitflow/callback_url.py (None if not given);
    400 `invalid_callback_url`, `callback_url_not_allowed` or `webhooks_disabled` otherwise."""
    url = request.form.get("callback_url", "")
    if not url:
        return None
    if not settings.webhook_secret:
        raise ApiError(400, "webhooks_disabled", "this server sends no webhooks (WEBHOOK_SECRET is not set)")
    try:
        check_callback(url, settings.webhook_allowed_hosts)
    except CallbackRefused as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return url
