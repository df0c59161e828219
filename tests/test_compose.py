"""docker-compose.yml as a deployment would use it (no Docker engine here: structure and commands)."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_are_there(compose):
    assert {"redis", "web", "worker-bulk", "worker-interactive", "flower"} <= set(compose["services"])


def test_redis_persists_and_is_health_checked(compose):
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"]


@pytest.mark.parametrize("name", ["web", "worker-bulk", "worker-interactive", "flower"])
def test_app_services_wait_for_redis_restart_and_read_settings_from_env(compose, name):
    svc = compose["services"][name]
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert svc["restart"] in ("always", "unless-stopped", "on-failure")
    assert svc["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert svc["build"] == "."


def test_workers_scale_without_fixed_names_or_ports(compose):
    for name in ("worker-bulk", "worker-interactive"):
        svc = compose["services"][name]
        assert "container_name" not in svc and "ports" not in svc
        node = svc["command"][svc["command"].index("-n") + 1]
        assert node.endswith("@%h")  # unique per container


def test_every_command_names_real_modules(compose):
    for name, svc in compose["services"].items():
        cmd = svc.get("command")
        if name == "redis" or cmd is None:
            continue
        if cmd[0] == "celery":
            module = cmd[cmd.index("-A") + 1]
            assert importlib.util.find_spec(module) is not None
            from worker import app  # the Celery app celery -A worker finds

            assert app.main == "digitflow"
            if "-Q" in cmd:
                assert cmd[cmd.index("-Q") + 1] in {r["queue"] for r in app.conf.task_routes.values()}
        elif cmd[0] == "gunicorn":
            assert (ROOT / cmd[cmd.index("-c") + 1]).is_file()
            module, factory = re.fullmatch(r"(\w+):(\w+)\(\)", cmd[-1]).groups()
            assert callable(getattr(importlib.import_module(module), factory))
        else:
            raise AssertionError(f"unexpected command in {name}: {cmd}")


def test_dockerfile_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src

