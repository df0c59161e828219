"""The `digitflow` command as a real subprocess against the real service (Redis, workers, gunicorn)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from digitflow.cli.upload import multipart_body
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
    (tmp_path / "payload").write_bytes(payload)
    whole = None
    for size in (1, 7, 8192, -1):
        with (tmp_path / "payload").open("rb") as f:
            body = multipart_body("file", 'a"b\\.zip', f, "application/zip")
            # requests-toolbelt reads the file object itself as the body is read: not a copy of it.
            assert [part.body.fd for part in body.encoder.parts] == [f]
            chunks = []
            while chunk := body.read(size):
                chunks.append(chunk)
            data = b"".join(chunks)
        assert len(data) == body.len and body.bytes_read == body.len
        assert payload in data and b'filename="a%22b%5C.zip"' in data
        whole = whole or data
        boundary = body.content_type.split("boundary=")[1].encode()
        assert data.replace(boundary, b"B") == whole.replace(whole[2:2 + len(boundary)], b"B")


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


def test_json_output_is_one_document_on_stdout_and_no_progress(api, mnist_test, tmp_path):
    x, y = mnist_test
    archive = tmp_path / "digits.zip"
    archive.write_bytes(make_zip({f"{i}.png": digit_png(x[i]) for i in range(4)}))
    # submit without --wait: the job as created; --json works before or after the command.
    for args in (("--json", "submit", str(archive)), ("submit", str(archive), "--json")):
        run = cli(*args, url=api)
        assert run.returncode == 0 and run.stderr == "", run.stderr
        job = json.loads(run.stdout)
        assert re.fullmatch(r"[0-9a-f]{32}", job["id"]) and job["total"] == 4 and "status" in job
    # submit --wait --csv: the finished job, the CSV in its file, and no progress lines on stderr.
    out = tmp_path / "r.csv"
    run = cli("--json", "submit", str(archive), "--wait", "--csv", str(out), url=api)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    job = json.loads(run.stdout)
    assert job["status"] == "succeeded" and job["done"] == 4 and job["failed"] == 0
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 4
    # export -o FILE: a summary of the download.
    again = tmp_path / "again.csv"
    run = cli("export", job["id"], "-o", str(again), "--json", url=api)
    assert run.returncode == 0 and run.stderr == ""
    assert json.loads(run.stdout) == {"job_id": job["id"], "path": str(again), "bytes": again.stat().st_size}
    assert again.read_bytes() == out.read_bytes()
    run = cli("labelled", job["id"], "-o", str(tmp_path / "l.zip"), "--min-confidence", "0", "--json", url=api)
    summary = json.loads(run.stdout)
    assert run.returncode == 0 and summary["bytes"] == (tmp_path / "l.zip").stat().st_size > 0
    # Where the CSV would share stdout with the JSON: refused as bad usage, nothing downloaded.
    for args in (("export", job["id"]), ("export", job["id"], "-o", "-"), ("submit", str(archive), "--csv", "-")):
        run = cli("--json", *args, url=api)
        assert run.returncode == 2 and json.loads(run.stdout)["error"]["code"] == "usage", run.stdout
    # An error: exit 1, the API's error object on stdout, the usual line on stderr.
    run = cli("--json", "status", "0" * 32, url=api)
    assert run.returncode == 1 and json.loads(run.stdout)["error"]["code"] == "not_found"
    assert run.stderr.startswith("error: not_found: ")
    # status --json is the same job the API returns.
    status = json.loads(cli("status", job["id"], "--json", url=api).stdout)
    assert status["id"] == job["id"] and status["status"] == "succeeded"


def test_jobs_lists_the_callers_jobs_newest_first(api, mnist_test, tmp_path):
    x, _ = mnist_test
    ids = []
    for n in (1, 2, 3):
        archive = tmp_path / f"{n}.zip"
        archive.write_bytes(make_zip({f"{i}.png": digit_png(x[i]) for i in range(n)}))
        run = cli("submit", "-q", str(archive), url=api)
        assert run.returncode == 0, run.stderr
        ids.append(run.stdout.strip())
    newest_first = ids[::-1]
    run = cli("jobs", url=api)
    assert run.returncode == 0 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == newest_first
    assert re.match(rf"{ids[2]}  \w+  \d/3 \(\d+%\)  failed 0  \S+$", lines[0])
    # One page of two: the rest is named on stderr; --all follows `next` to the end.
    run = cli("jobs", "--limit", "2", url=api)
    assert [line.split()[0] for line in run.stdout.splitlines()] == newest_first[:2]
    assert "1 more" in run.stderr and "--offset 2" in run.stderr
    run = cli("--json", "jobs", "--limit", "1", "--all", url=api)
    page = json.loads(run.stdout)
    assert [j["id"] for j in page["items"]] == newest_first and page["next"] is None and page["total"] == 3
    page = json.loads(cli("--json", "jobs", "--limit", "1", "--offset", "1", url=api).stdout)
    assert [j["id"] for j in page["items"]] == newest_first[1:2] and page["next"]


def _on_a_terminal(*args: str, url: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns the run (stdout captured) and what the terminal got."""
    import pty
    import threading

    master, slave = pty.openpty()
    seen = bytearray()

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer closed it
                return
            if not data:
                return
            seen.extend(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITFLOW_TOKEN", "API_TOKEN")}
    try:
        run = subprocess.run([sys.executable, "-m", "digitflow.cli", *args], cwd=ROOT, env=env | {"DIGITFLOW_URL": url},
                             stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
    finally:
        os.close(slave)
        reader.join(30)
        os.close(master)
    return run, seen.decode("utf-8", "replace")


def test_progress_is_live_on_a_terminal_and_off_with_quiet_or_json(api, mnist_test, tmp_path):
    x, _ = mnist_test
    archive = tmp_path / "digits.zip"
    archive.write_bytes(make_zip({f"{i}.png": digit_png(x[i]) for i in range(20)}))
    run, terminal = _on_a_terminal("submit", str(archive), "--wait", url=api)
    assert run.returncode == 0
    job_id, summary = run.stdout.splitlines()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id) and summary == "succeeded: 20 succeeded, 0 failed of 20"
    # rich's live bars: cursor control sequences, both labels, and the final counts.
    assert "\x1b[" in terminal and "upload" in terminal and "images" in terminal, terminal
    assert "20/20" in terminal and "100%" in terminal and "#" * 30 not in terminal
    for flag in ("--quiet", "--json"):
        run, terminal = _on_a_terminal("submit", str(archive), "--wait", flag, url=api)
        assert run.returncode == 0 and terminal == "", (flag, terminal)


@pytest.mark.slow
def test_a_large_upload_is_streamed_not_read_into_memory(api, mnist_test, tmp_path):
    """The CLI's peak memory (ru_maxrss, measured by a parent that runs only it) does not grow with the
    upload: a 200 MiB ZIP (three digits and a dotfile the service skips) against a small one."""
    x, _ = mnist_test
    small, large = tmp_path / "small.zip", tmp_path / "large.zip"
    images = {f"{i}.png": digit_png(x[i]) for i in range(3)}
    small.write_bytes(make_zip(images))
    block = os.urandom(1 << 20)
    with zipfile.ZipFile(large, "w", zipfile.ZIP_STORED) as zf:
        for name, data in images.items():
            zf.writestr(name, data)
        with zf.open(".padding", "w", force_zip64=True) as f:
            for _ in range(200):
                f.write(block)
    size = large.stat().st_size
    assert size > 200 << 20

    measure = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    peaks = {}
    for path in (small, large):
        run = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "digitflow.cli", "--json",
                              "submit", str(path)], cwd=ROOT, env=dict(os.environ, DIGITFLOW_URL=api),
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        *doc, peak_kib = run.stdout.splitlines()
        assert json.loads("\n".join(doc))["total"] == 3  # the service read the ZIP to its central directory
        peaks[path.name] = int(peak_kib) * 1024
    grown = peaks["large.zip"] - peaks["small.zip"]
    assert grown < size / 8, f"peak memory grew by {grown >> 20} MiB for a {size >> 20} MiB upload: {peaks}"


def test_submit_sends_an_idempotency_key_so_a_resubmit_with_it_is_the_same_job(api, mnist_test, tmp_path):
    x, _ = mnist_test
    archive = tmp_path / "digits.zip"
    archive.write_bytes(make_zip({f"{i}.png": digit_png(x[i]) for i in range(5)}))
    first = cli("--json", "submit", str(archive), "--idempotency-key", "cli-retry-1", url=api)
    again = cli("--json", "submit", str(archive), "--idempotency-key", "cli-retry-1", url=api)
    assert first.returncode == 0 and again.returncode == 0, (first.stderr, again.stderr)
    assert json.loads(first.stdout)["id"] == json.loads(again.stdout)["id"]
    listed = json.loads(cli("--json", "jobs", url=api).stdout)
    assert [j["id"] for j in listed["items"]] == [json.loads(first.stdout)["id"]]
    # without --idempotency-key each run gets a fresh key: the same file twice is two jobs
    a, b = (json.loads(cli("--json", "submit", str(archive), url=api).stdout)["id"] for _ in range(2))
    assert a != b
    # the same key for another file is the server's clear 409, exit 1
    other = tmp_path / "other.zip"
    other.write_bytes(make_zip({"x.png": digit_png(x[9])}))
    run = cli("submit", str(other), "--idempotency-key", "cli-retry-1", url=api)
    assert run.returncode == 1 and "idempotency_conflict" in run.stderr
