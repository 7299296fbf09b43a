"""Unpack a zip into a folder that appears whole or not at all.

Members are checked before a byte is written (no absolute paths, no '..', no links, no duplicates,
a bounded count and total size, the files the caller needs present), extracted into a hidden
temporary folder beside the destination with every CRC checked and no member allowed to grow past
its declared size, hashed, listed in a manifest, synced, and only then renamed into place. Any
failure removes the temporary folder; a crash leaves only a hidden `.NAME.tmp-*` folder, which the
next unpack into NAME removes (the caller serialises unpacks into one NAME)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..core.errors import NovicError

MANIFEST = 'novic_fetch_manifest.json'
DEFAULT_MAX_UNPACKED = 8 << 30
MAX_MEMBERS = 10_000
CHUNK = 1 << 20


class UnpackError(NovicError, RuntimeError):
    """A zip is damaged, unsafe or not the expected one; nothing was written."""


@dataclass(frozen=True)
class UnpackedFile:
    name: str        # path inside the folder, '/'-separated
    size: int
    sha256: str


def _check_members(
    zf: zipfile.ZipFile, zip_path: Path, required: Sequence[str], max_bytes: int
) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnpackError(f"{zip_path}: {len(infos)} members, more than {MAX_MEMBERS}; refused")
    files, seen = [], set()
    for info in infos:
        name = info.filename
        p = PurePosixPath(name)
        if '\\' in name or p.is_absolute() or '..' in p.parts or (p.parts and p.parts[0].endswith(':')) or '\0' in name:
            raise UnpackError(f"{zip_path}: member {name!r} would be written outside the folder; refused")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnpackError(f"{zip_path}: member {name!r} is a symbolic link; refused")
        if info.is_dir():
            continue
        key = str(p)
        if key in seen or key == MANIFEST:
            raise UnpackError(f"{zip_path}: member {name!r} appears twice (or takes the manifest's name); refused")
        seen.add(key)
        files.append(info)
    total = sum(i.file_size for i in files)
    if total > max_bytes:
        raise UnpackError(f"{zip_path}: unpacks to {total} bytes, above the limit of {max_bytes}; refused")
    missing = [r for r in required if r not in seen]
    if missing:
        raise UnpackError(f"{zip_path}: does not contain {', '.join(missing)} (it holds {', '.join(sorted(seen)[:5])}"
                          f"{'...' if len(seen) > 5 else ''}); is it the right file?")
    return files


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> UnpackedFile:
    target = root.joinpath(*PurePosixPath(info.filename).parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    # ZipExtFile checks the CRC at the end and raises BadZipFile on a mismatch; the count below stops a
    # member whose data runs past its declared size before it fills the disk.
    with zf.open(info) as src, open(target, 'wb') as dst:
        while chunk := src.read(CHUNK):
            n += len(chunk)
            if n > info.file_size:
                raise UnpackError(f"member {info.filename!r} holds more than the {info.file_size} bytes it declares")
            h.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    if n != info.file_size:
        raise UnpackError(f"member {info.filename!r} holds {n} bytes, it declares {info.file_size}")
    return UnpackedFile(str(PurePosixPath(info.filename)), n, h.hexdigest())


def remove_stale_temporaries(dest: Path) -> None:
    """Hidden folders left beside `dest` by an unpack into it that was killed (never a finished folder).
    The caller holds the lock of `dest`, so none of them belongs to a running unpack."""
    if dest.parent.is_dir():
        for p in dest.parent.glob(f'.{dest.name}.tmp-*'):
            shutil.rmtree(p, ignore_errors=True)


def unpack_zip(zip_path: str | os.PathLike, dest: str | os.PathLike, *, required: Sequence[str] = (),
               max_bytes: int = DEFAULT_MAX_UNPACKED, info: dict | None = None) -> list[UnpackedFile]:
    """Unpack `zip_path` into folder `dest` (replacing an existing one only once the new one is complete).
    `required`: member paths that must be there. `info`: extra fields for the manifest. Returns the files."""
    zip_path, dest = Path(zip_path), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{dest.name}.tmp-', dir=dest.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                members = _check_members(zf, zip_path, required, max_bytes)
                files = [_extract(zf, m, tmp) for m in members]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as e:
            raise UnpackError(f"{zip_path} is not a valid zip ({e}); delete it and fetch it again") from e
        except UnpackError as e:
            if str(zip_path) in str(e):
                raise
            raise UnpackError(f"{zip_path}: {e}") from e
        manifest = {**(info or {}), 'files': {f.name: {'size': f.size, 'sha256': f.sha256} for f in files}}
        with open(tmp / MANIFEST, 'w') as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755)     # mkdtemp makes it private; the cache is meant to be read by the user's tools
        _sync_dir(tmp)
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f'.{dest.name}.tmp-old-', dir=dest.parent))
            os.replace(dest, old / dest.name)
        try:
            os.replace(tmp, dest)
        except BaseException:
            if old is not None:
                os.replace(old / dest.name, dest)     # the previous folder back, whole
            raise
        _sync_dir(dest.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return files
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest unpack_zip wrote, or UnpackError where it is missing or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
        data['files']
        return data
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UnpackError(f"{folder} has no readable {MANIFEST} ({e}): it was not unpacked by novic-fetch, "
                          "or was changed since; fetch it again with --force") from e
