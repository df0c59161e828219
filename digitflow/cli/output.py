"""What the CLI writes: results on stdout (text, or one JSON document with --json), progress on stderr.

Progress bars are drawn by rich on stderr. On a terminal they are live; when stderr is not a terminal
(a log, a pipe) nothing is redrawn and each bar prints one final line when it ends, the record a log
wants; with --quiet or --json there are none at all.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

LIVE, FINAL_LINE, OFF = "live", "final-line", "off"


def _size(n: float) -> str:
    """Bytes in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class PlainLineColumn(ProgressColumn):
    """`label [#####     ]  42%  n/total`: the whole bar as plain text, for a stderr that is not a terminal."""

    def render(self, task: Task) -> Text:
        total = int(task.total or 0)
        done = min(int(task.completed), total) if total else int(task.completed)
        frac = done / total if total else 1.0
        fmt = _size if task.fields.get("as_bytes") else str
        return Text(f"{task.description} [{'#' * int(frac * 30):<30}] {frac:4.0%}  {fmt(done)}/{fmt(total)}")


class Bar:
    """One progress bar on stderr (see the module docstring for when it is drawn); a context manager."""

    def __init__(self, console: Console, mode: str, label: str, total: int, as_bytes: bool = False):
        self.progress: Progress | None = None
        if mode == OFF:
            return
        if mode == LIVE:
            count = (DownloadColumn(binary_units=True), TransferSpeedColumn()) if as_bytes else (MofNCompleteColumn(),)
            columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), *count, TimeRemainingColumn())
            self.progress = Progress(*columns, console=console)
        else:  # not a terminal: rich prints the final state once, when the bar stops
            self.progress = Progress(PlainLineColumn(), console=console, auto_refresh=False)
        self.task = self.progress.add_task(label, total=total, as_bytes=as_bytes)

    def update(self, completed: int, total: int | None = None) -> None:
        """Set the count (and the total when it is known only now)."""
        if self.progress is not None:
            self.progress.update(self.task, completed=completed, total=total)

    def __enter__(self) -> Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


class Output:
    """Where a command's results and progress go, set by the global --json and --quiet flags."""

    def __init__(self, as_json: bool = False, quiet: bool = False):
        self.json = as_json
        interactive = sys.stderr.isatty()
        # The decision is made here, not by rich's environment checks (FORCE_COLOR, TTY_COMPATIBLE), so
        # that a captured stderr always gets the plain final lines.
        self.stderr = Console(stderr=True, force_terminal=interactive, highlight=False)
        self.mode = OFF if as_json or quiet else LIVE if interactive else FINAL_LINE

    def bar(self, label: str, total: int, as_bytes: bool = False) -> Bar:
        """A progress bar on stderr (nothing when progress is off)."""
        return Bar(self.stderr, self.mode, label, total, as_bytes)

    def line(self, text: str) -> None:
        """A line of text output on stdout (not written with --json)."""
        if not self.json:
            print(text, flush=True)

    def document(self, doc: Any) -> None:
        """The command's one JSON document on stdout (only with --json)."""
        if self.json:
            print(json.dumps(doc, indent=2), flush=True)

    def error(self, code: str, message: str) -> None:
        """`error: <code>: <message>` on stderr; with --json also {"error": {code, message}} on stdout."""
        print(f"error: {code}: {message}", file=sys.stderr, flush=True)
        self.document({"error": {"code": code, "message": message}})
