"""The `digitflow` command as a real subprocess against the real service (Redis, workers, gunicorn)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

from digitflow.cli import MultipartBody, Progress
from tests.conftest import ROOT, digit_png, make_zip


def cli(*args: str, url: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m digitflow.cli ARGS` with DIGITFLOW_URL pointing at the service."""
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITFLOW_TOKEN", "API_TOKEN")}
    if url:
        env["DIGITFLOW_URL"] = url
    return subprocess.run([sys.executable, "-m", "digitflow.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_predict_prints_the_digit_and_json(api, mnist_test, tmp_path):
    x, y = mnist_test
    for i in range(3):
        image = tmp_path / f"d{i}.png"
        image.write_bytes(digit_png(x[i]))
        run = cli("predict", str(image), url=api)
        assert run.returncode == 0, run.stderr
        assert re.fullmatch(rf"{y[i]}  \(confidence [01]\.\d{{4}}\)\n", run.stdout)
    run = cli("predict", "--json", str(tmp_path / "d0.png"), url=api)
    body = json.loads(run.stdout)
    assert body["digit"] == y[0] and len(body["probabilities"]) == 10
    assert set(body["model"]) == {"version", "architecture", "test_accuracy"}
    # --server-wait 0 usually gets 202 and the CLI polls the job; the answer looks the same.
    run = cli("predict", "--server-wait", "0", "--json", str(tmp_path / "d1.png"), url=api)
    body = json.loads(run.stdout)
    assert body["digit"] == y[1] and len(body["probabilities"]) == 10 and "version" in body["model"]


def test_submit_folder_wait_csv_then_status_and_export(api, mnist_test, tmp_path):
    x, y = mnist_test
    folder = tmp_path / "scans"
    (folder / "more").mkdir(parents=True)
    n = 50
    for i in range(n):
        (folder / ("more" if i >= 40 else "") / f"{i:03d}.png").write_bytes(digit_png(x[i]))
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(digit_png(x[0]))
    out = tmp_path / "results.csv"

    run = cli("submit", str(folder), "--wait", "--csv", str(out), url=api)
    assert run.returncode == 0, run.stderr
    job_id, summary = run.stdout.splitlines()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert summary == f"succeeded: {n} succeeded, 0 failed of {n}"
    # stderr is not a terminal here: each bar prints one final line.
    assert re.search(r"^upload \[#{30}\] 100%", run.stderr, re.M)
    assert re.search(rf"^images \[#{{30}}\] 100%  {n}/{n}$", run.stderr, re.M)

    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == n
    assert [r["filename"] for r in rows][:2] == ["000.png", "001.png"] and rows[-1]["filename"] == "more/049.png"
    index = {r["filename"]: r for r in rows}
    accuracy = sum(index[f"{'more/' if i >= 40 else ''}{i:03d}.png"]["digit"] == str(y[i]) for i in range(n)) / n
    assert accuracy >= 0.85
    assert all(r["status"] == "done" for r in rows)

    run = cli("status", job_id, url=api)
    assert run.returncode == 0 and run.stdout == f"{job_id}  succeeded  {n}/{n} (100%)  failed 0\n"
    assert json.loads(cli("status", "--json", job_id, url=api).stdout)["done"] == n

    exported = cli("export", job_id, url=api)
    assert exported.returncode == 0 and exported.stdout == out.read_text()
    run = cli("--url", api, "export", job_id, "-o", str(tmp_path / "again.csv"))
    assert run.returncode == 0 and (tmp_path / "again.csv").read_text() == out.read_text()


def test_submit_zip_quietly_returns_the_job_id_at_once(api, mnist_test, tmp_path):
    x, _ = mnist_test
    archive = tmp_path / "digits.zip"
    archive.write_bytes(make_zip({f"{i}.png": digit_png(x[i]) for i in range(5)}))
    run = cli("submit", "--quiet", str(archive), url=api)
    assert run.returncode == 0 and run.stderr == ""
    job_id = run.stdout.strip()
    status = cli("status", "--json", job_id, url=api)
    assert json.loads(status.stdout)["total"] == 5


def test_errors_exit_non_zero_with_a_message(api, tmp_path):
    missing = "0" * 32
    for args in (("status", missing), ("export", missing)):
        run = cli(*args, url=api)
        assert run.returncode == 1 and run.stderr.startswith("error: not_found: "), run.stderr
        assert run.stdout == ""
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    run = cli("predict", str(junk), url=api)
    assert run.returncode == 1 and re.match(r"error: \w+: ", run.stderr)
    (tmp_path / "empty").mkdir()
    run = cli("submit", str(tmp_path / "empty"), url=api)
    assert run.returncode == 1 and run.stderr.startswith("error: no_images: ")


def test_unreachable_server_exits_2(tmp_path):
    from stack import free_port

    run = cli("--url", f"http://127.0.0.1:{free_port()}", "status", "0" * 32, timeout=30)
    assert run.returncode == 2
    assert "cannot reach" in run.stderr and "is the server running?" in run.stderr


def test_multipart_body_streams_the_same_bytes_in_any_read_size(tmp_path):
    payload = bytes(range(256)) * 100
    whole = None
    for size in (1, 7, 8192, -1):
        with io.BytesIO(payload) as f:
            body = MultipartBody("file", 'a"b.zip', f, len(payload), "application/zip",
                                 Progress("upload", len(payload), enabled=False))
            chunks = []
            while chunk := body.read(size):
                chunks.append(chunk)
            data = b"".join(chunks)
        assert len(data) == len(body) and body.sent == len(body)
        assert payload in data and b'filename="a%22b.zip"' in data
        whole = whole or data
        boundary = body.content_type.split("boundary=")[1].encode()
        assert data.replace(boundary, b"B") == whole.replace(whole[2:34], b"B")


def test_global_options_work_before_or_after_the_command():
    from digitflow.cli import build_parser

    parser = build_parser()
    a = parser.parse_args(["--url", "http://x:1", "status", "j"])
    b = parser.parse_args(["status", "j", "--url", "http://x:1", "--timeout", "5"])
    assert a.url == b.url == "http://x:1" and b.timeout == 5.0 and a.timeout == 60.0


def test_token_from_the_environment_is_sent_and_non_json_errors_are_reported():
    """A stub server: records the Authorization header, answers one job, then a proxy-style 502."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            ok = self.path.endswith("/ok")
            body = json.dumps({"id": "ok", "status": "running", "total": 4, "done": 1, "failed": 0}) if ok else "Bad Gateway"
            self.send_response(200 if ok else 502)
            self.send_header("Content-Type", "application/json" if ok else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        env = dict(os.environ, DIGITFLOW_URL=url, DIGITFLOW_TOKEN="s3cret")
        run = subprocess.run([sys.executable, "-m", "digitflow.cli", "status", "ok"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0 and run.stdout == "ok  running  1/4 (25%)  failed 0\n"
        run = cli("--token", "other", "status", "bad", url=url)
        assert run.returncode == 1 and run.stderr == "error: http_502: Bad Gateway\n"
        assert seen == ["Bearer s3cret", "Bearer other"]
    finally:
        server.shutdown()
        server.server_close()
