"""Configuration switches: settings from the environment, the app factory, the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digitflow.settings import Settings
from web import create_app
from web.openapi import SPEC


def test_settings_read_the_environment_with_types():
    s = Settings.from_env({"CHUNK_SIZE": "100", "MODEL_DIR": "/m", "RATE_LIMIT": "", "PREDICT_WAIT_MAX": "12.5"})
    assert s.chunk_size == 100 and s.model_dir == Path("/m") and s.predict_wait_max == 12.5
    assert s.rate_limit == Settings().rate_limit  # empty means "not set"
    assert Settings.from_env({}).max_request_bytes == 256 * 1024 * 1024


def test_bad_setting_names_the_variable():
    with pytest.raises(ValueError, match="CHUNK_SIZE"):
        Settings.from_env({"CHUNK_SIZE": "lots"})


def test_factory_applies_limits_and_secret():
    app = create_app({"max_request_bytes": 1234, "secret_key": "s3cret", "rate_limit": "off"})
    assert app.config["MAX_CONTENT_LENGTH"] == 1234
    assert app.config["SECRET_KEY"] == "s3cret"
    assert app.extensions["digitflow"].settings.max_request_bytes == 1234


def test_factory_without_secret_key_makes_a_random_one():
    a, b = create_app({"rate_limit": "off"}), create_app({"rate_limit": "off"})
    assert a.config["SECRET_KEY"] and a.config["SECRET_KEY"] != b.config["SECRET_KEY"]


def test_web_process_never_imports_tensorflow_or_onnxruntime():
    import subprocess
    import sys

    code = "import sys, web; web.create_app(); bad = {'tensorflow', 'onnxruntime', 'keras'} & set(sys.modules); print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_openapi_document_describes_every_api_route():
    app = create_app({"rate_limit": "off"})
    documented = {(path, method) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}
    routes = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/v1") or rule.rule in ("/healthz", "/readyz")):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    assert routes == documented


def test_the_web_depends_on_the_shared_core_not_on_the_workers():
    """The web and the workers share digitflow/ (settings, job store, Celery app, drawing stream); the web
    never imports worker/, so a web-only install or image works without the worker code."""
    import subprocess
    import sys

    code = "import sys, web; web.create_app(); print(sorted({m.split('.')[0] for m in sys.modules} & {'worker'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
