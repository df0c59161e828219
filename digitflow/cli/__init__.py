"""The `digitflow` command: predict one image, submit a ZIP or folder, follow a job, list jobs, export.

It talks to the HTTP API only (requests; requests-toolbelt streams uploads; rich draws progress).
Modules: app (the parser and `main`), commands, client (HTTP and errors), upload (what `submit`
sends), output (stdout text or JSON, progress on stderr). Exit statuses: see app.EPILOG.
"""

from digitflow.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
