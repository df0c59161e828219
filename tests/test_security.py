"""Safe pages: security headers everywhere, cross-site state changes refused (real gunicorn)."""

from __future__ import annotations

import requests

from tests.conftest import digit_png


def test_every_page_and_api_answer_carries_the_security_headers(api):
    for path in ("/", "/upload", "/jobs/" + "0" * 32 + "/review", "/api/v1/models", "/api/v1/jobs/nope",
                 "/static/draw.js", "/api/docs/"):
        r = requests.get(api + path, timeout=10)
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp.split(
            "script-src")[1].split(";")[0], (path, csp)
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin"


def test_cross_site_state_changes_are_refused_but_same_site_and_scripts_work(api, mnist_test):
    x, _ = mnist_test
    files = {"image": ("d.png", digit_png(x[0]), "image/png")}
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://attacker.invalid"}, {"Origin": "null"}):
        r = requests.post(f"{api}/api/v1/predict", files=files, headers=headers, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request", headers
    host = api.split("//", 1)[1]
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": f"http://{host}"}, {},
                    {"Sec-Fetch-Site": "cross-site", "Authorization": "Bearer any"}):  # a token is no cookie
        r = requests.post(f"{api}/api/v1/predict", files=files, headers=headers, timeout=30)
        assert r.status_code == 200, (headers, r.text)
    # reads are never refused: a cross-site GET cannot change anything
    assert requests.get(f"{api}/api/v1/models", headers={"Sec-Fetch-Site": "cross-site"}, timeout=10).status_code == 200
