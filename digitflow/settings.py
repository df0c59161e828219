"""One typed settings object, read from the environment, shared by every process."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Each field is read from the environment variable of the same name in upper case."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    model_dir: Path = ROOT / "models"
    mnist_dir: Path | None = None
    api_token: str = ""  # one key, named `default` (web/auth.py)
    api_keys: str = ""  # comma-separated name:token pairs, one per client
    secret_key: str = ""
    inference_backend: str = "onnx"  # onnx (default) or keras (the reference)
    inference_threads: int = 0  # 0: cores / worker processes, at least 1
    # jobs
    result_ttl_seconds: int = 24 * 3600
    chunk_size: int = 512  # images per bulk task
    batch_size: int = 256  # images per model call
    interactive_batch_max: int = 64  # drawings batched into one model call at most
    drawing_claim_seconds: float = 3.0  # a drawing unacknowledged this long by its consumer goes to another
    max_redeliveries: int = 5
    visibility_timeout: int = 300  # seconds before Redis re-delivers an unacked task
    task_time_limit: int = 120  # seconds a task may run before it is killed
    reconcile_interval: int = 30  # seconds between scans for lost chunk tasks; 0: off (worker/reconcile.py)
    # upload limits
    max_request_bytes: int = 256 * 1024 * 1024
    max_json_bytes: int = 2 * 1024 * 1024
    max_zip_entries: int = 100_000
    max_total_uncompressed: int = 2 * 1024**3
    max_entry_bytes: int = 20 * 1024 * 1024
    max_compression_ratio: int = 200
    max_image_pixels: int = 40_000_000
    rate_limit: str = "6000 per minute"  # per client on the API; empty disables it
    # web
    predict_wait_default: float = 5.0
    predict_wait_max: float = 30.0
    # webhooks (digitflow/webhooks.py, digitflow/callback_url.py)
    webhook_secret: str = ""  # signs every event; without it callback URLs are refused
    webhook_allowed_hosts: str = ""  # comma-separated host[:port] receivers allowed although not public
    # metrics (web/metrics.py, worker/metrics.py)
    metrics_token: str = ""  # empty: GET /metrics is open; else it needs `Authorization: Bearer <token>`
    metrics_port: int = 0  # a worker's own metrics port; 0: off
    metrics_host: str = "127.0.0.1"  # where a worker's metrics port listens (0.0.0.0 in containers)
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Build settings from an environment mapping (default os.environ) plus explicit overrides."""
        env = os.environ if env is None else env
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.type, raw, f.name)
        values.update(overrides)
        return cls(**values)


def _convert(kind: str, raw: str, name: str):
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind in ("Path", "Path | None"):
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(f"setting {name.upper()}={raw!r} is not a valid {kind}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings.from_env()
