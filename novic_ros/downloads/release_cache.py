"""The local cache of the NOVIC authors' checkpoints: download (or take a hand-carried zip), check,
unpack, and record what the file was, so every later fetch and load can tell it is still the same.

Layout under checkpoints_dir() (NOVIC_CHECKPOINTS, else $NOVIC_ROS_CACHE or ~/.cache/novic_ros, + /checkpoints):
    downloads/ZIP(.part, .part.json)   a zip while it downloads (resumable) or waits to be unpacked
    ZIP_STEM/                          the unpacked zip, with novic_fetch_manifest.json (size and sha256 of
                                       every file); the checkpoint is ZIP_STEM/<run>/<chunk>.train
    recorded_hashes.json               size and sha256 of each zip as first downloaded (trust on first use:
                                       the authors publish none), checked on every later download
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..atomic_file import atomic_write_text
from ..core.errors import NovicError
from ..paths import cache_dir
from .catalog import NovicRelease
from .http_download import DownloadLimits, download, sha256_file
from .safe_unzip import UnpackError, read_manifest, unpack_zip

CACHE_ENV = 'NOVIC_CHECKPOINTS'
RECORDED = 'recorded_hashes.json'


class ChecksumError(NovicError, RuntimeError):
    """A file is not the one recorded when it was first fetched."""


def checkpoints_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(os.path.expanduser(env)) if env else cache_dir() / 'checkpoints'


@dataclass(frozen=True)
class FetchPlan:
    """Where a release comes from and where it goes."""
    release: NovicRelease
    url: str
    root: Path

    @property
    def zip_path(self) -> Path:
        return self.root / 'downloads' / self.release.zip_name

    @property
    def folder(self) -> Path:
        return self.root / self.release.folder_name

    @property
    def checkpoint(self) -> Path:
        return self.folder.joinpath(*self.release.train_file.split('/'))

    def known(self) -> tuple[int | None, str | None, str]:
        """(size, sha256, where they come from) of the zip: the catalogue, else the first download, else unknown."""
        r = self.release
        if r.zip_size is not None or r.zip_sha256 is not None:
            return r.zip_size, r.zip_sha256, 'published'
        rec = recorded_hashes(self.root).get(r.zip_name)
        if rec:
            return rec.get('size'), rec.get('sha256'), f"recorded {rec.get('recorded', '')} ({self.root / RECORDED})"
        return None, None, 'not published; recorded after the first complete download'


def plan(release: NovicRelease, root: str | os.PathLike | None = None, url: str | None = None) -> FetchPlan:
    """`url`: the zip's full URL (default: the release URL, or NOVIC_RELEASE_URL's base)."""
    return FetchPlan(release, url or release.url(), Path(root) if root else checkpoints_dir())


def recorded_hashes(root: Path) -> dict:
    try:
        data = json.loads((root / RECORDED).read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ChecksumError(f"{root / RECORDED} is unreadable ({e}); fix or delete it (its hashes are then "
                            "recorded afresh on the next download)") from e


def _record(root: Path, zip_name: str, size: int, sha256: str, source: str) -> None:
    data = recorded_hashes(root)
    data[zip_name] = {'size': size, 'sha256': sha256, 'source': source,
                      'recorded': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
    atomic_write_text(root / RECORDED, json.dumps(data, indent=1, sort_keys=True) + '\n')


def forget(root: Path, zip_name: str) -> bool:
    """Remove a zip's recorded hash (the authors replaced the file on purpose). True if there was one."""
    data = recorded_hashes(root)
    if data.pop(zip_name, None) is None:
        return False
    atomic_write_text(root / RECORDED, json.dumps(data, indent=1, sort_keys=True) + '\n')
    return True


@contextmanager
def _locked(p: FetchPlan):
    lock_dir = p.root / '.locks'
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / (p.release.folder_name + '.lock'), 'w') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NovicError(f"another novic-fetch is working on {p.release.tag} in {p.root}; wait for it") from None
        yield


def verify_folder(folder: Path, on_bytes: Callable[[int], object] | None = None) -> dict:
    """Check every file the manifest lists against its recorded size and sha256. Returns the manifest."""
    manifest = read_manifest(folder)
    for name, rec in manifest['files'].items():
        path = folder.joinpath(*name.split('/'))
        if not path.is_file():
            raise ChecksumError(f"{path} is missing from the fetched folder; fetch again with --force")
        if path.stat().st_size != rec['size'] or sha256_file(path, on_bytes) != rec['sha256']:
            raise ChecksumError(f"{path} is not the file unpacked on {manifest.get('fetched', '?')} (size or sha256 "
                                "differs: changed or damaged since); fetch again with --force")
    return manifest


def verify_fetched_file(path: str | os.PathLike) -> bool:
    """For loaders: where `path` lies in a folder novic-fetch unpacked, check it against the manifest
    (ChecksumError if it changed) and return True; False where it is not a fetched file (nothing recorded)."""
    path = Path(path).resolve()
    for folder in path.parents:
        try:
            manifest = read_manifest(folder)
        except UnpackError:
            continue
        rel = path.relative_to(folder).as_posix()
        rec = manifest['files'].get(rel)
        if rec is None:
            return False
        if path.stat().st_size != rec['size'] or sha256_file(path) != rec['sha256']:
            raise ChecksumError(f"{path} is not the file novic-fetch unpacked on {manifest.get('fetched', '?')} "
                                f"(size or sha256 differs: changed or damaged since); run novic-fetch "
                                f"{manifest.get('tag', '')} --force to fetch it again")
        return True
    return False


@dataclass(frozen=True)
class FetchResult:
    plan: FetchPlan
    action: str            # 'present' (already there, verified), 'downloaded', 'unpacked' (from a local zip)
    zip_sha256: str | None
    recorded_now: bool     # the zip's hash was recorded by this fetch (first complete download)


def fetch(p: FetchPlan, *, zip_file: str | os.PathLike | None = None, force: bool = False, keep_zip: bool = False,
          limits: DownloadLimits = DownloadLimits(), max_unpacked: int | None = None,
          progress: Callable[[int, int | None], object] | None = None) -> FetchResult:
    """Make p.checkpoint exist and be the recorded file. Uses, in turn: the unpacked folder (verified),
    `zip_file`, a zip already waiting in downloads/, or a download from p.url."""
    with _locked(p):
        if p.folder.exists() and not force and zip_file is None:
            verify_folder(p.folder)
            return FetchResult(p, 'present', read_manifest(p.folder).get('zip_sha256'), False)
        size, sha, _ = p.known()
        action = 'unpacked'
        ours = False
        if zip_file is not None:
            source = Path(zip_file)
            if not source.is_file():
                raise FileNotFoundError(f"{source} does not exist")
        elif p.zip_path.is_file() and not force:
            source, ours = p.zip_path, True     # a hand-carried zip put where the offline message said
        else:
            got = download(p.url, p.zip_path, size=size, sha256=sha, limits=limits, progress=progress)
            source, ours, action = got.path, True, 'downloaded'
        got_size = source.stat().st_size
        if size is not None and got_size != size:
            raise ChecksumError(f"{source} is {got_size} bytes, {p.release.zip_name} is known to be {size}; "
                                "it is not the released file")
        digest = sha256_file(source)
        if sha is not None and digest != sha:
            raise ChecksumError(f"{source} has sha256 {digest}, {p.release.zip_name} is known as {sha}; "
                                "it is not the released file (or the recorded hash is stale: novic-fetch --forget)")
        info = {'tag': p.release.tag, 'release': p.release.name, 'zip': p.release.zip_name, 'url': p.url,
                'zip_size': got_size, 'zip_sha256': digest, 'embedder': p.release.embedder,
                'fetched': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
        try:
            unpack_zip(source, p.folder, required=[p.release.train_file], info=info,
                       **({'max_bytes': max_unpacked} if max_unpacked else {}))
        except UnpackError:
            if ours:
                source.unlink(missing_ok=True)    # what we downloaded is bad: the next run must fetch it afresh
            raise
        recorded_now = sha is None
        if recorded_now:
            # Only a zip that unpacked with every CRC right is recorded: a damaged download never becomes the reference.
            _record(p.root, p.release.zip_name, got_size, digest, p.url if zip_file is None else f'local file {source}')
        if ours and not keep_zip:
            source.unlink(missing_ok=True)
        return FetchResult(p, action, digest, recorded_now)
