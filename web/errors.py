"""JSON errors: one exception type for the API and handlers that render every error the same way."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as {"error": {"code", "message"}} with an HTTP status."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code or CODES.get(status, "error"), message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    resp = jsonify({"error": {"code": code, "message": message}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


MAX_URL_BYTES = 4096  # path + query string; longer is a 414 with the usual JSON body


def register(app: Flask) -> None:
    @app.before_request
    def _refuse_long_urls():
        from flask import request

        if len(request.full_path) > MAX_URL_BYTES:
            return error_response(414, "uri_too_long", f"the URL is limited to {MAX_URL_BYTES} bytes")
        return None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        original = exc.get_response().headers
        headers = {k: original[k] for k in ("Allow", "Retry-After") if k in original}
        if status == 429:
            headers.setdefault("Retry-After", "60")
        message = exc.description or exc.name
        if status == 413:
            message = "the request body is larger than the server accepts"
        return error_response(status, CODES.get(status, "error"), message, headers)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _redis_down(exc):
        log.warning("redis unavailable: %s", exc)
        return error_response(503, "unavailable", "the job store is unavailable; try again shortly", {"Retry-After": "2"})

    @app.errorhandler(Exception)
    def _unexpected(exc):
        if _is_broker_error(exc):
            return error_response(503, "unavailable", "the task queue is unavailable; try again shortly", {"Retry-After": "2"})
        log.exception("unexpected error")
        return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")


def _is_broker_error(exc: Exception) -> bool:
    from kombu.exceptions import OperationalError

    return isinstance(exc, OperationalError | ConnectionError | TimeoutError)
