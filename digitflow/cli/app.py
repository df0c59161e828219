"""The argument parser and the entry point."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from digitflow.cli import commands
from digitflow.cli.client import EXIT_ERROR, EXIT_INTERRUPTED, Client, CliError
from digitflow.cli.output import Output

DEFAULT_URL = "http://127.0.0.1:5000"

EPILOG = """\
output:
  Results go to stdout; progress bars and errors to stderr. Progress bars are live on a terminal,
  one final line each when stderr is not a terminal, and absent with --quiet or --json.
  --json prints one JSON document on stdout instead of text: the prediction (predict), the job
  (submit, at the end with --wait; status), {"items", "total", "next"} (jobs), {"job_id", "path",
  "bytes"} (export, labelled: they then need -o FILE), or {"error": {"code", "message"}} on failure.

exit status:
  0    success
  1    an error answered by the server (printed as `error: CODE: MESSAGE`), a local file that cannot
       be read or written, or a job that ended failed or cancelled (submit --wait / --csv)
  2    the server could not be reached or did not answer in time, or bad usage
  130  interrupted
"""


def add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """The options accepted before or after the command."""
    parser.add_argument("--url", default=default,
                        help=f"base URL of the service (env DIGITFLOW_URL; default {DEFAULT_URL})")
    parser.add_argument("--token", default=default,
                        help="API key, sent as `Authorization: Bearer` (env DIGITFLOW_TOKEN or API_TOKEN)")
    parser.add_argument("--timeout", type=float, default=default, help="seconds to wait for each answer (default 60)")
    parser.add_argument("--json", action="store_true", default=default,
                        help="print one JSON document on stdout, and no progress bars")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; global options are accepted before or after the command."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="digitflow", description="Handwritten-digit recognition from the command line.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_global_options(parser, None)
    parser.set_defaults(url=env.get("DIGITFLOW_URL") or DEFAULT_URL,
                        token=env.get("DIGITFLOW_TOKEN") or env.get("API_TOKEN") or None, timeout=60.0,
                        json=False, quiet=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The same options after the command; SUPPRESS keeps them from overwriting values given before it.
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, argparse.SUPPRESS)

    def command(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("predict", commands.cmd_predict, "predict the digit in one image")
    p.add_argument("image", help="an image file (PNG, JPEG, ...)")
    p.add_argument("--server-wait", type=float, metavar="S",
                   help="seconds the server holds the request before answering 202 (then the job is polled)")

    p = command("submit", commands.cmd_submit, "submit a ZIP, an image or a folder of images as a job")
    p.add_argument("path", help="a ZIP file, an image, or a folder (its images are zipped on the fly)")
    p.add_argument("--wait", action="store_true", help="wait until the job finishes and print a summary")
    p.add_argument("--csv", metavar="OUT", help="write the results CSV to OUT when finished (implies --wait)")
    p.add_argument("--callback-url", metavar="URL",
                   help="the service POSTs a signed event to URL when the job ends (see the README's Webhooks)")
    p.add_argument("--idempotency-key", metavar="KEY",
                   help="sent as Idempotency-Key (default: a fresh one per run); a submit that timed out is "
                        "retried with it, and the server answers with the job it already made")

    p = command("status", commands.cmd_status, "show a job's status and progress")
    p.add_argument("job_id")

    p = command("jobs", commands.cmd_jobs, "list your jobs, newest first")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="jobs per page (1-100, default 20)")
    p.add_argument("--offset", type=int, default=0, metavar="N", help="skip the N newest jobs")
    p.add_argument("--all", action="store_true", help="follow the pages to the last job")

    p = command("export", commands.cmd_export, "write a job's results as CSV")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", metavar="OUT", help="file to write (default: stdout)")

    p = command("labelled", commands.cmd_labelled, "write a job's reviewed digits as a labelled set (ZIP)")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="ZIP file to write ('-': stdout)")
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="also include unreviewed predictions at or above this confidence")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    out = Output(as_json=args.json, quiet=args.quiet)
    try:
        return args.func(Client(args.url, args.token, args.timeout), args, out)
    except CliError as exc:
        out.error(exc.code, exc.message)
        return exc.status
    except OSError as exc:  # a local file, or a request failure other than a refused connection
        out.error(type(exc).__name__, str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
