"""Safe pages: security headers on every response, and cross-site state changes refused.

Headers (OWASP Secure Headers): a Content-Security-Policy without inline script (pages load their
JavaScript from /static), framing refused (`frame-ancestors 'none'`, and X-Frame-Options for old
browsers), `nosniff`, a same-origin Referrer-Policy. Swagger UI's page also needs inline styles and
data: images.

Cross-site requests: a state-changing request (POST, PUT, PATCH, DELETE) that carries no
`Authorization` header is authenticated, if at all, by the session cookie; beyond its SameSite=Strict
flag it is refused with 403 when the browser says it comes from another site (Fetch Metadata:
`Sec-Fetch-Site` other than same-origin/none) or, from browsers without Fetch Metadata, when its
`Origin` is not this host. Scripts and the CLI (no such headers, or a bearer token) are unaffected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from web.errors import error_response

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")  # Swagger UI styles inline
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def cross_site() -> bool:
    """True for a cookie-authenticated state change that a browser says comes from another site."""
    if request.method not in UNSAFE_METHODS or request.headers.get("Authorization"):
        return False
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.host


def register(app: Flask) -> None:
    @app.before_request
    def _refuse_cross_site():
        if cross_site():
            return error_response(403, "cross_site_request",
                                  "state-changing requests from other sites are refused; send a bearer token")
        return None

    @app.after_request
    def _headers(response):
        docs = request.path.startswith("/api/docs")
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
