"""One file over HTTP(S), resumable and bounded: a cut download continues where it stopped (HTTP
Range), what the server sends is checked against what it announced (Content-Length,
Content-Range) and against the size and sha256 the caller knows, and nothing reaches the
destination path until all of it has arrived and passed every check.

The bytes arrive in DEST.part (kept when the connection breaks, so the next run resumes; removed
when the data is proven wrong, since resuming cannot repair it); DEST.part.json remembers the URL
and the total the server announced, so a part from another URL or another version of the file is
never continued. A lock file keeps two processes from writing the same part."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import NovicError

CHUNK = 1 << 20
USER_AGENT = 'novic_ros-fetch/0.1 (+https://github.com/pallgeuer/novic)'
# Refused before a byte is read: the released zips are a few hundred MB; a server announcing more than
# this is wrong or hostile. --max-bytes raises it.
DEFAULT_MAX_BYTES = 4 << 30


class DownloadError(NovicError, RuntimeError):
    """A download failed or its data is wrong; the message says whether rerunning resumes it."""


class OfflineError(DownloadError):
    """The server could not be reached at all (no network, name not resolved, refused)."""


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = 60.0      # per socket operation (connect, each read)
    retries: int = 5             # further attempts after a cut connection, each resuming
    backoff_s: float = 1.0       # first pause between attempts, doubled each time (capped at 30 s)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    attempts: int                # requests made (1 = no resume was needed)


_RANGE = re.compile(r'bytes (\d+)-(\d+)/(\d+|\*)$')


def sha256_file(path: Path, on_bytes: Callable[[int], object] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return h.hexdigest()


_UNREACHABLE = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


def _offline(e: BaseException) -> bool:
    """True where the server was never reached: its name did not resolve, or nothing answered."""
    reason = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError) else e
    if isinstance(reason, (socket.gaierror, TimeoutError)):
        return True
    return isinstance(reason, OSError) and reason.errno in _UNREACHABLE


class _Part:
    """DEST.part and its side file: bytes so far, the URL and the total they belong to."""

    def __init__(self, dest: Path):
        self.data = dest.with_name(dest.name + '.part')
        self.meta = dest.with_name(dest.name + '.part.json')

    def size(self) -> int:
        return self.data.stat().st_size if self.data.exists() else 0

    def read_meta(self) -> dict:
        try:
            return json.loads(self.meta.read_text())
        except (OSError, ValueError):
            return {}

    def write_meta(self, url: str, total: int | None) -> None:
        tmp = self.meta.with_name(self.meta.name + '.tmp')
        tmp.write_text(json.dumps({'url': url, 'total': total}))
        os.replace(tmp, self.meta)

    def discard(self) -> None:
        for p in (self.data, self.meta):
            p.unlink(missing_ok=True)


def download(url: str, dest: str | os.PathLike, *, size: int | None = None, sha256: str | None = None,
             limits: DownloadLimits = DownloadLimits(),
             progress: Callable[[int, int | None], object] | None = None) -> Downloaded:
    """Fetch `url` into `dest`. `size`/`sha256`: what the file is known to be (None: unknown; the
    server's announced length is then checked instead). `progress(done, total)` is called as bytes
    arrive. Raises OfflineError when the server cannot be reached, DownloadError otherwise; `dest`
    exists afterwards only if everything passed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if size is not None and size > limits.max_bytes:
        raise DownloadError(f"{dest.name} is known to be {size} bytes, above the limit of {limits.max_bytes}; "
                            "raise the limit (--max-bytes) to fetch it")
    lock_path = dest.with_name(dest.name + '.lock')
    with open(lock_path, 'w') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(f"another process is downloading {dest.name} (lock {lock_path}); wait for it "
                                "to finish, or stop it") from None
        try:
            return _download_locked(url, dest, size, sha256, limits, progress)
        finally:
            lock_path.unlink(missing_ok=True)


def _download_locked(url, dest, size, sha256, limits, progress) -> Downloaded:
    part = _Part(dest)
    meta = part.read_meta()
    if part.size() and (meta.get('url') != url or (size is not None and meta.get('total') not in (None, size))):
        part.discard()       # bytes of another file (another URL, another version): never continue them
    total = meta.get('total') if part.size() else size
    attempts = 0
    while True:
        attempts += 1
        have = part.size()
        if total is not None and have > total:
            part.discard()
            have = 0
        if total is not None and have == total and have > 0:
            break
        try:
            total, finished = _one_request(url, part, have, total, size, limits, progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if isinstance(e, urllib.error.HTTPError):
                raise DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}") from e
            if attempts == 1 and have == 0 and not part.size() and _offline(e):
                raise OfflineError(f"cannot reach {url}: {getattr(e, 'reason', e)}") from e
            if attempts > limits.retries:
                raise DownloadError(
                    f"{url}: the connection broke {attempts} times ({e}); {part.size()} bytes are kept in "
                    f"{part.data} and the next run resumes from there") from e
            time.sleep(min(30.0, limits.backoff_s * 2 ** (attempts - 1)))
            continue
        if finished:
            break
        if attempts > limits.retries:
            raise DownloadError(f"{url}: the server stopped sending after {part.size()} of {total} bytes, "
                                f"{attempts} times; the next run resumes from {part.data}")
        time.sleep(min(30.0, limits.backoff_s * 2 ** (attempts - 1)))
    got = part.size()
    if size is not None and got != size:
        part.discard()
        raise DownloadError(f"{url}: got {got} bytes, the file is known to be {size}; the partial file was removed")
    digest = sha256_file(part.data)
    if sha256 is not None and digest != sha256.lower():
        part.discard()
        raise DownloadError(f"{url}: sha256 {digest} differs from the known {sha256}: the file on the server is "
                            "not the one recorded (changed, truncated or tampered with); nothing was kept. If the "
                            "authors replaced it on purpose, remove its recorded hash (novic-fetch --forget)")
    with open(part.data, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(part.data, dest)
    part.meta.unlink(missing_ok=True)
    return Downloaded(dest, got, digest, attempts)


def _one_request(url, part: _Part, have: int, total: int | None, size: int | None, limits: DownloadLimits,
                 progress) -> tuple[int | None, bool]:
    """One GET from byte `have` on; appends to the part. Returns (total, finished)."""
    headers = {'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity'}
    if have:
        headers['Range'] = f'bytes={have}-'
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=limits.timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # The range starts at or past the end: what we have is all there is, or stale bytes.
            announced = _range_total(e.headers.get('Content-Range', ''))
            if announced is not None and announced == have:
                return have, True
            part.discard()
            return None if size is None else size, False
        raise
    with resp:
        length = resp.headers.get('Content-Length')
        length = int(length) if length is not None and length.strip().isdigit() else None
        if resp.status == 206 and have:
            m = _RANGE.match(resp.headers.get('Content-Range', '').strip())
            if not m or int(m.group(1)) != have:
                raise DownloadError(f"{url}: asked for bytes from {have}, the server answered Content-Range "
                                    f"{resp.headers.get('Content-Range')!r}")
            start, end = int(m.group(1)), int(m.group(2))
            announced = None if m.group(3) == '*' else int(m.group(3))
            if length is not None and length != end - start + 1:
                raise DownloadError(f"{url}: Content-Length {length} disagrees with Content-Range "
                                    f"{resp.headers.get('Content-Range')!r}")
            if announced is not None and total is not None and announced != total:
                part.discard()
                raise DownloadError(f"{url}: the file's size changed from {total} to {announced} bytes between "
                                    "requests; the partial download was removed, run again to start afresh")
            new_total = announced if announced is not None else total
            mode = 'ab'
        else:
            if resp.status != 200:
                raise DownloadError(f"{url}: unexpected HTTP status {resp.status}")
            # A full answer (a server that ignores Range, or a first request): start from byte 0.
            have = 0
            new_total = length
            mode = 'wb'
        if new_total is not None:
            if new_total > limits.max_bytes:
                part.discard()
                raise DownloadError(f"{url}: the server announces {new_total} bytes, above the limit of "
                                    f"{limits.max_bytes}; refused (raise --max-bytes if the file really is that big)")
            if size is not None and new_total != size:
                part.discard()
                raise DownloadError(f"{url}: the server announces {new_total} bytes, the file is known to be {size}; "
                                    "refused")
        part.write_meta(url, new_total)
        bound = new_total if new_total is not None else (size if size is not None else limits.max_bytes)
        with open(part.data, mode) as f:
            done = have
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except http.client.IncompleteRead as e:
                    f.write(e.partial)     # keep what came before the cut: the next request resumes after it
                    raise
                if not chunk:
                    break
                if done + len(chunk) > bound:
                    f.close()
                    part.discard()
                    raise DownloadError(f"{url}: the server sent more than the {bound} bytes it announced "
                                        "(or the limit allows); refused and removed")
                f.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, new_total)
        finished = new_total is None or done == new_total
        return (new_total if new_total is not None else done), finished


def _range_total(content_range: str) -> int | None:
    m = re.match(r'bytes \*/(\d+)$', content_range.strip())
    return int(m.group(1)) if m else None
