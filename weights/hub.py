"""Download full-size models from the Hugging Face hub (or a mirror) into the store.

Files come from {HF_ENDPOINT}/{repo}/resolve/main/{filename}, like the hub's own
client does it:

1. HEAD the file without following redirects. Large (LFS) files answer with a
   redirect to a CDN and carry their sha256 in X-Linked-Etag and their size in
   X-Linked-Size; small files answer 200 with a git sha1 ETag (not checked).
2. GET it into "<file>.part", sending "Range: bytes=N-" when N bytes are already
   there from an interrupted run; a server that ignores the range (200 instead
   of 206) makes us start over.
3. Check the sha256 when the hub gave one, then rename .part to the final name.

Network errors fail fast (TIMEOUT seconds at most; a DNS failure is immediate)
and say how to point HF_ENDPOINT at a mirror.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from tqdm import tqdm

from weights import store

ENDPOINT_VAR = "HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT = 10.0  # seconds: to connect, and of silence while reading
CHUNK = 1 << 18
HEADERS = {"User-Agent": "alice-edgar-weights/0.1"}

# store name -> (hub repo, tokenizer files: at least one must exist)
REPOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bert-base-uncased": ("google-bert/bert-base-uncased", ("tokenizer.json", "vocab.txt")),
    "gpt-neo-125M": ("EleutherAI/gpt-neo-125M", ("tokenizer.json", "vocab.json", "merges.txt")),
}
EXTRA_FILES = ("tokenizer_config.json", "special_tokens_map.json")  # fetched when present


class DownloadError(store.WeightsError):
    """The server could not be reached, refused a file, or the transfer broke off."""


@dataclass
class Remote:
    """What a HEAD request tells about a file before downloading it."""

    size: int | None  # bytes, when the server says
    sha256: str | None  # hex, when the server gives an LFS sha256


def endpoint() -> str:
    """The hub address: $HF_ENDPOINT (a mirror), else https://huggingface.co. DownloadError unless http(s)://."""
    value = os.environ.get(ENDPOINT_VAR, DEFAULT_ENDPOINT).strip().rstrip("/")
    if urllib.parse.urlsplit(value).scheme not in ("http", "https") or not urllib.parse.urlsplit(value).netloc:
        raise DownloadError(f"{ENDPOINT_VAR}={value!r} is not an http:// or https:// address; "
                            f"set it like {ENDPOINT_VAR}=https://hf-mirror.example.org, or unset it")
    return value


def file_url(repo: str, filename: str, revision: str = "main") -> str:
    """The download address of one file of a hub repository."""
    return f"{endpoint()}/{repo}/resolve/{revision}/{urllib.parse.quote(filename)}"


def fetch(name: str, progress: bool = True) -> Path:
    """Download the hub model `name` (a key of REPOS) into the store; return its folder.

    Does nothing (and needs no network) when the model is there already.
    Files already complete are kept, a .part file is resumed.
    """
    repo, tokenizer_files = REPOS[name]
    folder = store.folder_for(name)
    remove_broken_files(folder)
    if store.is_installed(folder):
        print(f"{name}: already in {folder}")
        return folder
    print(f"{name}: fetching {repo} from {endpoint()} into {folder}")  # endpoint() checks the address first
    folder.mkdir(parents=True, exist_ok=True)

    def get(filename: str, required: bool) -> bool:
        path = download(file_url(repo, filename), folder / filename, progress=progress)
        if path is None and required:
            raise DownloadError(f"{endpoint()} has no {filename} in {repo}")
        return path is not None

    try:
        get("config.json", required=True)
        if not [f for f in tokenizer_files if get(f, required=False)]:
            raise DownloadError(f"{endpoint()} has none of {', '.join(tokenizer_files)} in {repo}")
        for filename in EXTRA_FILES:
            get(filename, required=False)
        get("model.safetensors", required=True)  # last: its presence marks the entry complete
    except store.WeightsError:
        if not any(folder.iterdir()):
            folder.rmdir()  # failed before the first byte: leave no empty entry behind
        raise
    return folder


def remove_broken_files(folder: Path) -> None:
    """A store entry's files that cannot be what their names say are removed (and so fetched again), with a note."""
    for path in sorted(folder.glob("*")) if folder.is_dir() and not folder.is_symlink() else []:
        why = path.is_file() and not path.name.endswith(".part") and store.what_is_wrong(path)
        if why:
            print(f"{path}: {why}; removed, to be fetched again")
            path.unlink()


def download(url: str, dest: Path, progress: bool = True) -> Path | None:
    """Download `url` to `dest` through `dest.part`; None if the server has no such file.

    Keeps an existing `dest` as is. Resumes a leftover .part with a Range request.
    Raises DownloadError (network, HTTP error, transfer cut short; the .part is
    kept for the next try) or store.ChecksumError (the .part is deleted).
    """
    if dest.exists():
        return dest
    remote = remote_info(url)
    if remote is None:
        return None
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have > remote.size:
        part.unlink()  # longer than the file: not ours
        have = 0
    if remote.size is None or have < remote.size:
        _get(url, part, have, progress)
    if remote.sha256:
        digest = store.sha256_file(part, progress=progress)
        if digest != remote.sha256:
            part.unlink()
            raise store.ChecksumError(
                f"{url} arrived with sha256 {digest}, but the server announced "
                f"{remote.sha256}. Deleted it; run the command again."
            )
    why = store.what_is_wrong(part, dest.name)
    if why:
        part.unlink()
        raise DownloadError(f"{url}: {why}. Nothing was kept; check {ENDPOINT_VAR} ({endpoint()}) and run the "
                            "command again.")
    os.replace(part, dest)
    return dest


def remote_info(url: str) -> Remote | None:
    """HEAD `url`: its size and sha256 when known, None for a 404.

    Redirects are not followed to the CDN (the sha256 sits on the hub's own
    redirect answer); other redirects, such as a renamed repository, are.
    """
    for _ in range(5):
        try:
            with _NO_REDIRECT.open(_request(url, method="HEAD"), timeout=TIMEOUT) as resp:
                length = resp.headers.get("Content-Length")
                return Remote(int(length) if length else None, _sha256_of(resp.headers))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            if 300 <= e.code < 400 and "X-Linked-Size" in e.headers:  # LFS file on a CDN
                return Remote(int(e.headers["X-Linked-Size"]), _sha256_of(e.headers))
            if 300 <= e.code < 400 and e.headers.get("Location"):
                url = urllib.parse.urljoin(url, e.headers["Location"])
                continue
            raise DownloadError(_http_message(url, e)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise _unreachable(url, e) from None
    raise DownloadError(f"{url}: too many redirects")


def _get(url: str, part: Path, have: int, progress: bool) -> None:
    """Append the bytes of `url` from offset `have` on to `part` (or rewrite it)."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = urllib.request.urlopen(_request(url, headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range past the end: start over
            part.unlink()
            return _get(url, part, 0, progress)
        raise DownloadError(_http_message(url, e)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _unreachable(url, e) from None
    with resp:
        if have and resp.status != 206:
            have = 0  # the server ignored the range: it sends the whole file
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length else None
        got = have
        try:
            with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), disable=None if progress else True,
            ) as bar:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise _broke_off(url, part, got, e) from None
    if total is not None and got < total:
        raise _broke_off(url, part, got, "connection closed early")


def _request(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> urllib.request.Request:
    return urllib.request.Request(url, headers={**HEADERS, **(headers or {})}, method=method)


class _NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None  # urllib then raises HTTPError with the 3xx answer


_NO_REDIRECT = urllib.request.build_opener(_NoRedirectHandler)


def _sha256_of(headers: Message) -> str | None:
    """The LFS sha256 from X-Linked-Etag or ETag, if it is one (64 hex digits)."""
    for key in ("X-Linked-Etag", "ETag"):
        value = (headers.get(key) or "").removeprefix("W/").strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    return None


def _http_message(url: str, e: urllib.error.HTTPError) -> str:
    hint = " (the repository does not exist, or needs a login)" if e.code in (401, 403) else ""
    return f"{url}: HTTP {e.code} {e.reason}{hint}"


def _unreachable(url: str, e: Exception) -> DownloadError:
    reason = getattr(e, "reason", None) or e
    return DownloadError(
        f"cannot reach {url}: {reason}. Offline? Set {ENDPOINT_VAR} to a Hugging Face mirror "
        f"you can reach (now {endpoint()}), or copy a fetched model folder into {store.root()}."
    )


def _broke_off(url: str, part: Path, got: int, why: object) -> DownloadError:
    return DownloadError(
        f"download of {url} broke off after {got} bytes ({why}); {part} is kept: "
        f"run the same command again to resume."
    )
