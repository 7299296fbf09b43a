"""Which files a recording is made of, in which order, and what its metadata says about them,
before any message is read: a rosbag2 folder (metadata.yaml, or only its storage files when the
recorder crashed before writing it), one storage file (.mcap, .db3, either + .zstd), a ROS 1
.bag file, or a folder of ROS 1 split files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .bag_parts import STORAGE_SUFFIXES, ZSTD_SUFFIX, BagError, file_kind, natural_key

METADATA = 'metadata.yaml'
ROSBAG2_STORAGES = ('mcap', 'sqlite3')
COMPRESSION_FORMATS = ('zstd',)     # the only compressor rosbag2 ships (rosbag2_compression_zstd)
FORMS_READ = ("ROS 2 bag folders (mcap or sqlite3 storage, split into several files or not, uncompressed or "
              "compressed per message or per file with zstd), single .mcap/.db3 files (also .mcap.zstd/.db3.zstd), "
              "ROS 1 .bag files (uncompressed, bz2 or lz4) and folders of ROS 1 split .bag files")


@dataclass(frozen=True)
class PartRef:
    path: Path
    kind: str                       # 'mcap', 'sqlite3' or 'ros1'
    present: bool = True
    message_count: int | None = None    # messages metadata.yaml lists for this file (None: not listed)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Layout:
    path: Path
    parts: tuple[PartRef, ...]
    totals: dict[str, int] | None   # messages per topic according to metadata.yaml
    compression: str                # '', 'message' or 'file' (zstd), from metadata.yaml
    warnings: tuple[str, ...] = ()

    @property
    def generation(self) -> int:
        return 1 if self.parts[0].kind == 'ros1' else 2

    def describe(self) -> str:
        kinds = sorted({p.kind for p in self.parts})
        what = 'ROS 1 bag' if self.generation == 1 else f"ROS 2 bag ({', '.join(kinds)})"
        present = sum(p.present for p in self.parts)
        if len(self.parts) > 1:
            what += f", {present} of {len(self.parts)} files" if present < len(self.parts) else f", {present} files"
        if self.compression:
            what += f", zstd compression per {self.compression}"
        return what


def resolve(path: str | Path) -> Layout:
    """The layout of the bag at `path`; BagError when it is none of the forms read."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    if path.is_file():
        kind = file_kind(path)
        if kind is None:
            raise BagError(f"{path} is not a bag file novic-eval reads. It reads {FORMS_READ}. {_OTHERS}")
        return Layout(path, (PartRef(path, kind),), None, '')
    if (path / METADATA).is_file():
        try:
            return _from_metadata(path)
        except _UnreadableMetadata as e:
            return _from_files(path, f"{METADATA} of {path} cannot be read ({e}); reading the storage files found "
                                     "in the folder instead")
    return _from_files(path, None)


_OTHERS = ("For other forms: convert with `rosbags-convert --src IN --dst OUT.mcap` (ROS 1 <-> ROS 2, merging, "
           "other compression), or `ros2 bag convert` for other storage plugins.")


class _UnreadableMetadata(Exception):
    pass


def _from_files(folder: Path, warning: str | None) -> Layout:
    """A folder without (usable) metadata.yaml: its storage files, in natural name order."""
    files = sorted((p for p in folder.iterdir() if p.is_file() and file_kind(p)), key=natural_key)
    kinds = {file_kind(p) for p in files}
    if not files:
        raise BagError(f"{folder} holds no bag files (no {METADATA}, no "
                       f"{', '.join(s + '[' + ZSTD_SUFFIX + ']' for s in STORAGE_SUFFIXES)} or .bag files). "
                       f"novic-eval reads {FORMS_READ}.")
    if 'ros1' in kinds and len(kinds) > 1:
        raise BagError(f"{folder} mixes ROS 1 .bag files with ROS 2 storage files; pass one bag at a time")
    warnings = [warning] if warning else []
    if 'ros1' not in kinds and warning is None:
        warnings.append(f"{folder} has no {METADATA} (a recorder that crashed before writing it?); reading its "
                        f"storage files {', '.join(p.name for p in files)} in name order")
    return Layout(folder, tuple(PartRef(p, file_kind(p)) for p in files), None, '', tuple(warnings))


def _from_metadata(folder: Path) -> Layout:
    try:
        meta = yaml.safe_load((folder / METADATA).read_text())['rosbag2_bagfile_information']
        storage = meta['storage_identifier']
        listed = [str(p) for p in meta['relative_file_paths']]
        mode = str(meta.get('compression_mode') or '').lower()
        fmt = str(meta.get('compression_format') or '').lower()
        per_file = {Path(f['path']).name: int(f['message_count']) for f in meta.get('files') or []}
        totals: dict[str, int] = {}
        for t in meta.get('topics_with_message_count') or []:
            name = t['topic_metadata']['name']
            totals[name] = totals.get(name, 0) + int(t['message_count'])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise _UnreadableMetadata(f"{type(e).__name__}: {e}") from e
    if storage not in ROSBAG2_STORAGES:
        raise BagError(f"cannot open bag {folder}: storage {storage!r} ({METADATA}) is not one novic-eval reads "
                       f"({', '.join(ROSBAG2_STORAGES)}); convert it with `ros2 bag convert` to mcap")
    if mode in ('none', 'storage'):     # 'storage': compressed inside mcap chunks, which any reader undoes
        mode = ''
    if mode not in ('', 'message', 'file'):
        raise BagError(f"cannot open bag {folder}: compression mode {mode!r} ({METADATA}) is unknown")
    if mode and fmt not in COMPRESSION_FORMATS:
        raise BagError(
            f"cannot open bag {folder}: compression format {fmt!r} ({METADATA}) is not one novic-eval "
            f"reads ({', '.join(COMPRESSION_FORMATS)}, the only compressor rosbag2 ships); decompress it with "
            "the tool that wrote it, e.g. `ros2 bag convert` with an uncompressed output"
        )
    if not listed:
        raise BagError(f"{METADATA} of {folder} lists no storage files")
    parts = []
    for rel in listed:
        p = folder / Path(rel).name        # rosbag2 once wrote paths with the folder name in front
        kind = file_kind(p) or ('mcap' if storage == 'mcap' else 'sqlite3')
        parts.append(PartRef(p, kind, p.is_file(), per_file.get(p.name)))
    missing = [p.name for p in parts if not p.present]
    warnings = []
    if len(missing) == len(parts):
        raise BagError(f"none of the files {METADATA} of {folder} lists is there ({', '.join(missing)}); "
                       "copy the bag folder again")
    if missing:
        warnings.append(f"{folder} is a split bag of {len(parts)} files and {', '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} missing (copied in part?); evaluating the "
                        f"{len(parts) - len(missing)} that are there")
    return Layout(folder, tuple(parts), totals or None, mode, tuple(warnings))
