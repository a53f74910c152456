"""A local page to see the judge and the sampler at work: `make explore` (or `python -m scripts.explore`).

    python -m scripts.explore                        # http://127.0.0.1:8000/
    python -m scripts.explore --port 0               # any free port (the address is printed)
    python -m scripts.explore --judge runs/judge/<time> --generator neo-small

One self-contained page (plumbing/explore_page.html: no external script, font or image), served by the
standard library's http.server on 127.0.0.1 only, with three tabs: the judge (paste a text: P(author),
every word coloured by its push, E1, and each window's P), the generator (the sampler's settings, B7-B10:
texts with the judge's score, and a step view of the candidates before and after the penalty and the mask)
and the runs under runs/ with their report pages. plumbing/explore.py answers; every bad request gets its
message on the page and a 4xx status. The judge loads in the background at start; a question asked
meanwhile is told so (429). Nothing is written. Ctrl-C stops it (exit 130).
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from plumbing.cli import run_program
from plumbing.config import ConfigError
from plumbing.explore import DEFAULT_GENERATOR, MAX_TEXT_CHARS, BadRequest, Explorer

PAGE = Path(__file__).resolve().parents[1] / "plumbing" / "explore_page.html"
MAX_BODY = 8 * MAX_TEXT_CHARS + 4096  # bytes: the longest text in UTF-8 (up to 4 bytes a character, escaped) and settings
QUESTIONS = {"/api/judge": Explorer.judge, "/api/generate": Explorer.generate}


class Handler(BaseHTTPRequestHandler):
    """GET: the page, /api/runs, a run's report page. POST: /api/judge, /api/generate (JSON in, JSON out)."""

    server_version = "alice-edgar-explorer"

    @property
    def explorer(self) -> Explorer:
        return self.server.explorer  # type: ignore[attr-defined]

    def send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == 429:
            self.send_header("Retry-After", "2")
        self.end_headers()
        self.wfile.write(body)

    def answer(self, status: int, value: dict) -> None:
        self.send(status, json.dumps(value, allow_nan=False).encode("utf-8"), "application/json")

    def answered(self, question) -> None:
        """Run one question; its answer, or its error as {"error": message} with the status it calls for."""
        try:
            self.answer(200, question())
        except BadRequest as err:
            self.answer(err.status, {"error": str(err)})
        except Exception as err:  # a failure of ours: one line on the page and in the log, never a traceback
            print(f"explorer: {type(err).__name__}: {err}", file=sys.stderr)
            self.answer(500, {"error": f"the explorer failed ({type(err).__name__}: {err})"})

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            self.send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif path == "/api/runs":
            self.answered(lambda: {"runs": self.explorer.runs()})
        elif path.startswith("/runs/") and path.count("/") == 4 and path.endswith("/report.html"):
            _, _, kind, name, _ = path.split("/")
            try:
                self.send(200, self.explorer.report_page(kind, name).read_bytes(), "text/html; charset=utf-8")
            except BadRequest as err:
                self.answer(err.status, {"error": str(err)})
        else:
            self.answer(404, {"error": f"nothing at {path}"})

    def do_POST(self) -> None:  # noqa: N802
        question = QUESTIONS.get(self.path)
        if question is None:
            self.answer(404, {"error": f"no question at {self.path}: ask /api/judge or /api/generate"})
            return
        size = int(self.headers.get("Content-Length") or 0)
        if size > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be used again
            self.answer(413, {"error": f"the request is {size:,} bytes; the explorer takes texts of at most "
                                      f"{MAX_TEXT_CHARS:,} characters"})
            return
        try:
            request = json.loads(self.rfile.read(size).decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            self.answer(400, {"error": "the request is not JSON in UTF-8"})
            return
        if not isinstance(request, dict):
            self.answer(400, {"error": "the request must be a JSON object"})
            return
        self.answered(lambda: question(self.explorer, request))

    def log_message(self, format: str, *args) -> None:  # one short line per request
        print(f"explorer: {self.command} {self.path.split('?')[0]} -> {args[1] if len(args) > 1 else ''}",
              file=sys.stderr)


def preload(explorer: Explorer) -> None:
    """Load the judge while the first page is read: a question asked meanwhile is told it is loading (429)."""
    try:
        with explorer.busy("loading the judge"):
            explorer.judge_of(None)
    except BadRequest as err:  # no judge yet: the page says so when asked
        print(f"explorer: {err}", file=sys.stderr)


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.explore", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port; default 8000)")
    p.add_argument("--judge", help="the judge by default (a judge folder or run; default: runs/judge/latest)")
    p.add_argument("--generator", default=DEFAULT_GENERATOR, help=f"the generator by default (default {DEFAULT_GENERATOR})")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    explorer = Explorer(args.runs_dir, args.judge, args.generator)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as err:
        raise OSError(f"cannot listen on 127.0.0.1:{args.port} ({err.strerror}): is another explorer running? "
                      "Give another --port, or --port 0 for any free one") from None
    server.daemon_threads = True
    server.explorer = explorer  # type: ignore[attr-defined]
    threading.Thread(target=preload, args=(explorer,), daemon=True).start()
    print(f"explorer: http://127.0.0.1:{server.server_address[1]}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: a thread may be inside torch (the judge loading, a question being answered) when Ctrl-C comes, and
    # Python's shutdown under it aborts the process. Nothing is left to write: the explorer writes nothing.
    os._exit(code)
