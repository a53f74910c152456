"""A tiny stand-in for the Hugging Face hub on 127.0.0.1, for offline tests.

    with HFMirror(tmp_path / "hub") as mirror:   # files in <root>/<org>/<repo>/<file>
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)

It answers /<org>/<repo>/resolve/<revision>/<file> the way the hub does:

- *.safetensors (the hub keeps them in LFS): HEAD and GET get a 302 to
  /cdn/<org>/<repo>/<file>, with the sha256 in X-Linked-Etag and the size in
  X-Linked-Size; the /cdn/ address serves the bytes, with its own unrelated ETag.
- other files: 200 with a git-sha1 style ETag (40 hex, not a sha256).

Byte answers honour "Range: bytes=N-" with a 206. Switches, settable any time:

    drop_after    int | None  the next .safetensors GET sends this many bytes, then hangs up
    wrong_sha     bool        announce a sha256 that is not the file's
    ranges        bool        honour Range headers (False: always 200 with the whole file)
    lfs_redirect  bool        False: serve .safetensors directly, ETag = "<sha256>"
    requests      list        (method, path, Range header) of every request received
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HFMirror:
    """A loopback HTTP server that serves a folder in the hub's URL layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.drop_after: int | None = None
        self.wrong_sha = False
        self.ranges = True
        self.lfs_redirect = True
        self.requests: list[tuple[str, str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.mirror = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> HFMirror:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def announced_sha256(self, data: bytes) -> str:
        """The sha256 the mirror sends for `data` (a wrong one when wrong_sha is set)."""
        return hashlib.sha256(b"not the file" if self.wrong_sha else data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def log_message(self, *args: object) -> None:
        pass  # keep the test output clean

    def _answer(self, send_body: bool) -> None:
        mirror: HFMirror = self.server.mirror  # type: ignore[attr-defined]
        mirror.requests.append((self.command, self.path, self.headers.get("Range")))
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        cdn = re.fullmatch(r"/cdn/(.+)/([^/]+)", path)
        hub = re.fullmatch(r"/(.+)/resolve/[^/]+/([^/]+)", path)
        if not (cdn or hub):
            return self._empty(404)
        repo, name = (cdn or hub).groups()
        file = mirror.root / repo / name
        if not file.is_file():
            return self._empty(404)
        data = file.read_bytes()
        lfs = file.suffix == ".safetensors"
        if hub and lfs and mirror.lfs_redirect:
            return self._empty(302, {
                "Location": f"{mirror.url}/cdn/{repo}/{name}",
                "X-Linked-Etag": f'"{mirror.announced_sha256(data)}"',
                "X-Linked-Size": str(len(data)),
            })
        if cdn:
            etag = hashlib.md5(data).hexdigest()
        elif lfs:
            etag = mirror.announced_sha256(data)
        else:
            etag = hashlib.sha1(data).hexdigest()
        self._bytes(data, etag, send_body, drop=lfs)

    def _bytes(self, data: bytes, etag: str, send_body: bool, drop: bool) -> None:
        mirror: HFMirror = self.server.mirror  # type: ignore[attr-defined]
        start = 0
        asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if asked and mirror.ranges:
            start = int(asked.group(1))
            if start >= len(data):
                return self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not send_body:
            return
        body = data[start:]
        if drop and mirror.drop_after is not None:
            body, mirror.drop_after = body[: mirror.drop_after], None
            self.close_connection = True
        self.wfile.write(body)

    def _empty(self, code: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


def closed_port() -> int:
    """A local port nobody listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """A socket that accepts TCP connections but never answers (a stalled network)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)  # the kernel completes handshakes; nobody ever reads
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
