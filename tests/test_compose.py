"""docker-compose.yml as a deployment would use it (no Docker engine here: structure and commands)."""

from __future__ import annotations

import importlib
import importlib.util
import json
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
        if svc["command"][0] == "celery":
            node = svc["command"][svc["command"].index("-n") + 1]
            assert node.endswith("@%h")  # unique per container
        else:  # the drawing worker names its consumer after its host and pid itself
            assert "--name" not in svc["command"]


def test_the_drawing_worker_is_health_checked_by_its_heartbeat(compose):
    svc = compose["services"]["worker-interactive"]
    assert svc["command"] == ["python", "-m", "worker.drawings"]
    assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "worker.drawings", "--check"]


def test_every_command_names_real_modules(compose):
    for name, svc in compose["services"].items():
        cmd = svc.get("command")
        if name == "redis" or "monitoring" in svc.get("profiles", []) or cmd is None:
            continue  # third-party images
        if cmd[0] == "celery":
            module = cmd[cmd.index("-A") + 1]
            assert importlib.util.find_spec(module) is not None
            from worker import app  # the Celery app celery -A worker finds

            assert app.main == "digitflow"
            if "-Q" in cmd:
                assert cmd[cmd.index("-Q") + 1] in {r["queue"] for r in app.conf.task_routes.values()}
        elif cmd[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(cmd[2]) is not None
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



# -- the monitoring profile (docker compose --profile monitoring up) -------------------------------------
MONITORING = ("prometheus", "grafana")


def _bind_mounts(svc: dict) -> dict[str, Path]:
    """container path -> the repository path of each ./ bind mount"""
    mounts = {}
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_monitoring_is_an_opt_in_profile(compose):
    for name, svc in compose["services"].items():
        assert svc.get("profiles", []) == (["monitoring"] if name in MONITORING else []), name


@pytest.mark.parametrize("name", MONITORING)
def test_monitoring_mounts_files_that_exist(compose, name):
    mounts = _bind_mounts(compose["services"][name])
    assert mounts
    for target, source in mounts.items():
        assert source.exists(), (target, source)


def test_prometheus_scrapes_the_web_and_every_worker_port(compose):
    services = compose["services"]
    prom = services["prometheus"]
    config_path = next(t for t in _bind_mounts(prom) if t.endswith("prometheus.yml"))
    assert f"--config.file={config_path}" in prom["command"]
    config = yaml.safe_load(_bind_mounts(prom)[config_path].read_text())
    targets = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sd in job["dns_sd_configs"]:  # every container of a scaled service
            for host in sd["names"]:
                targets[host] = sd["port"]
    assert targets["web"] == int(services["web"]["environment"]["PORT"])
    workers = {n for n, svc in services.items() if ((svc.get("command") or [""])[0] == "celery" and "-Q" in svc["command"])
               or (svc.get("command") or [])[:3] == ["python", "-m", "worker.drawings"]}
    assert workers == {"worker-bulk", "worker-interactive"} and workers <= set(targets)
    for name in workers:
        env = services[name]["environment"]
        assert targets[name] == int(env["METRICS_PORT"]) and env["METRICS_HOST"] == "0.0.0.0", name
    assert set(targets) <= set(services)


def test_grafana_provisions_the_datasource_and_the_dashboard(compose):
    grafana = compose["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    prom_port = compose["services"]["prometheus"]["ports"][0].split(":")[-1]
    assert source["type"] == "prometheus" and source["url"] == f"http://prometheus:{prom_port}"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "digitflow.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]  # the provider reads the mounted folder
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    dashboard = json.loads((dashboards / Path(home).name).read_text())
    code = "".join((ROOT / f).read_text() for f in ("web/metrics.py", "web/service_metrics.py", "worker/metrics.py"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
    for expr in exprs:  # names the code defines (tests/test_metrics.py checks a live scrape exposes them)
        names = re.findall(r"\bdigitflow_\w+", expr)
        assert names, expr
        for name in names:
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert f'"{base}"' in code or f'"{re.sub(r"_total$", "", base)}"' in code, name
