"""Profiling (optional, --profile): py-spy the web and the workers during a bulk and a drawings run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchkit.bulk import bulk_run
from benchkit.common import log
from benchkit.http import http_load
from benchkit.service import Service


def py_spy_exe() -> str | None:
    """The py-spy executable (PATH or beside this Python), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def py_spy(pids: dict[str, int], out_dir: Path, seconds: float, gil: tuple[str, ...] = ()) -> list[subprocess.Popen]:
    """py-spy record each pid (and its children); names in `gil` sample only threads holding the GIL, which
    leaves out threads blocked on sockets (py-spy counts some of those as busy otherwise)."""
    exe = py_spy_exe()
    procs = []
    for name, pid in pids.items():
        procs.append(subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--rate", "200",
                                       "--duration", str(int(seconds)), "--format", "raw", "--nonblocking",
                                       *(["--gil"] if name in gil else []),
                                       "--output", str(out_dir / f"{name}.txt")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


PROJECT_FRAMES = ("(web/", "(worker/", "(digitflow/", "Celery.send_task", "Session.run", "ZipFile.__init__")


def summarise_profile(path: Path, top: int = 10) -> dict:
    """From py-spy's collapsed stacks: the project's own frames (and a few library entry points) by inclusive
    share of the samples, and the leaf frames by self share."""
    self_c, incl_c, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        frames = stack.split(";")
        total += c
        self_c[frames[-1]] += c
        for f in set(frames):
            incl_c[f] += c
    if not total:
        return {"samples": 0, "inclusive": [], "self": []}
    ours = [(f, 100 * c / total) for f, c in incl_c.most_common() if any(k in f for k in PROJECT_FRAMES)]
    return {"samples": total, "inclusive": ours[:top],
            "self": [(f, 100 * c / total) for f, c in self_c.most_common(6)]}


def profile_run(svc: Service, zip_path: Path, bodies: list[bytes], out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    pids = {name: p.pid for name, p in svc.stack.procs.items()}
    spies = py_spy({"bulk": pids["bulk"], "web_bulk": pids["web"]}, out_dir, 12, gil=("web_bulk",))
    time.sleep(1.0)
    bulk_run(svc, zip_path, None)
    for s in spies:
        s.wait()
    spies = py_spy({"interactive": pids["interactive"], "web_drawings": pids["web"]}, out_dir, 6,
                   gil=("interactive", "web_drawings"))
    time.sleep(1.0)
    http_load(svc.url, "/api/v1/predict", bodies, 1500, 8)
    for s in spies:
        s.wait()
    return {name: summarise_profile(out_dir / f"{name}.txt")
            for name in ("bulk", "web_bulk", "interactive", "web_drawings") if (out_dir / f"{name}.txt").exists()}


def profile_section(svc: Service, zip_path: Path, bodies: list[bytes], out_dir: Path) -> dict:
    """py-spy during a bulk run and a drawings run, logged by the project's frames."""
    prof = profile_run(svc, zip_path, bodies, out_dir)
    for name, p in prof.items():
        log(f"  {name}: " + "; ".join(f"{f} {v:.0f}%" for f, v in p["inclusive"][:6]))
    return prof
