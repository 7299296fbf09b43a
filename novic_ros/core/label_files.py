"""Label lists from files, read as a peer on the robot's network may name them: a path that any
process on the DDS domain can set (the node's live `labels_file`) must not become a way to read
/etc/shadow, block on a FIFO or device, or fill memory with a 2 GB file.

The rules, each refused with a ValueError that names the rule and the fix:
- with `allowed_dirs` (the node's `labels_dirs`), the path, symlinks resolved, lies under one of them;
- it is a regular file (opened with O_NONBLOCK, checked with fstat on the open descriptor, so a FIFO
  or a character device is refused without a read that could block);
- it is at most MAX_LABELS_FILE_BYTES long, and no more than the size fstat reported is ever read
  (a /proc or /sys pseudo-file reports 0 bytes and so yields nothing, and a file that grows while
  read is cut where it was);
- it is UTF-8 text of at most MAX_LABELS labels of at most MAX_LABEL_CHARS characters each; a .jsonl
  file (a novic-nouns dictionary) has one JSON object with a string `label` per line.

Error messages name the file and the line, never its content. ROS-free.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Iterable, Sequence

from .pacing import Steps

MAX_LABELS = 100_000                  # the whole WordNet noun dictionary (novic-nouns) is ~28k
MAX_LABEL_CHARS = 200                 # CLIP reads 77 tokens; a longer label is a mistake or an attack
MAX_LABELS_FILE_BYTES = 32 << 20      # the novic-nouns dictionary is ~4 MB
SHOWN_LABELS = 3                      # how many labels a summary names ...
SHOWN_CHARS = 24                      # ... each cut to this many characters
LINES_PER_STEP = 1000                 # .jsonl lines parsed between two pauses of a paced thread (~5 ms)


def resolve_under(path: str, allowed_dirs: Sequence[str] | None, what: str = 'labels file') -> Path:
    """`path` with symlinks resolved; ValueError unless it lies under one of `allowed_dirs`
    (None: anywhere; relative paths resolve against the working directory)."""
    real = Path(os.path.realpath(path))
    if allowed_dirs is None:
        return real
    for d in allowed_dirs:
        base = Path(os.path.realpath(d))
        if real == base or base in real.parents:
            return real
    dirs = ', '.join(str(d) for d in allowed_dirs) or '(none)'
    raise ValueError(f"{what} {path} is outside the allowed folders (labels_dirs: {dirs}): put the file in one "
                     "of them, or start the node with labels_dirs naming its folder")


def open_regular(path: str, allowed_dirs: Sequence[str] | None = None, max_bytes: int = MAX_LABELS_FILE_BYTES,
                 what: str = 'labels file') -> tuple[int, int]:
    """An open descriptor of `path` and its size once it passes the folder, file-type and size rules
    (the caller closes it). Never blocks: O_NONBLOCK makes opening a FIFO without a writer return at once, and
    fstat on the descriptor refuses anything but a regular file before a byte is read."""
    real = resolve_under(path, allowed_dirs, what)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOCTTY', 0) | getattr(os, 'O_CLOEXEC', 0))
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise ValueError(f"cannot open {what} {path} ({e.strerror}); make it readable by the node's user") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what} {path} is not a regular file (a FIFO, device or folder cannot be read as "
                             "labels): give a plain text or .jsonl file")
        if st.st_size > max_bytes:
            raise ValueError(f"{what} {path} has {st.st_size} bytes, more than the {max_bytes} allowed: "
                             f"split the list, or keep at most {MAX_LABELS} labels")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def check_labels_path(path: str, allowed_dirs: Sequence[str] | None = None) -> None:
    """The quick check (no read): the folder, type and size rules of read_labels_file."""
    if path:
        os.close(open_regular(path, allowed_dirs)[0])


def _read_capped(fd: int, max_bytes: int) -> bytes:
    """At most max_bytes bytes of the open file, then it is closed."""
    chunks, left = [], max_bytes
    with os.fdopen(fd, 'rb', closefd=True) as f:
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    return b''.join(chunks)


def check_labels(labels: Sequence[str], where: str = 'labels') -> None:
    """ValueError when the list breaks the count or length cap (names the position, not the text)."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{where}: {len(labels)} labels, more than the {MAX_LABELS} allowed")
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise ValueError(f"{where}: label {i + 1} is a {type(label).__name__}, not text")
        if len(label) > MAX_LABEL_CHARS:
            raise ValueError(f"{where}: label {i + 1} has {len(label)} characters, more than the "
                             f"{MAX_LABEL_CHARS} allowed")


def read_labels_file(path: str, allowed_dirs: Sequence[str] | None = None) -> tuple[str, ...]:
    """Labels from a text file (one per line, '#' comments) or a novic-nouns dictionary (.jsonl),
    under the rules of this module. ValueError names the file, the line and what is wrong."""
    if not path:
        return ()
    data = _read_capped(*open_regular(path, allowed_dirs))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(f"labels file {path} is not UTF-8 text (byte {e.start}); give one label per line, "
                         "or a novic-nouns .jsonl dictionary") from None
    lines = text.splitlines()
    step = Steps()          # the node's settings thread gives way to inference (core/pacing.py)
    if path.endswith('.jsonl'):
        labels = []
        for number, line in enumerate(lines, 1):
            if number % LINES_PER_STEP == 0:
                step()
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                obj = None
            label = obj.get('label') if isinstance(obj, dict) else None
            if not isinstance(label, str):
                raise ValueError(f"labels file {path}, line {number}: not a JSON object with a text 'label' "
                                 "(a novic-nouns .jsonl dictionary has one per line; a plain list has one "
                                 "label per line in a file not named .jsonl)")
            labels.append(label.strip())
            if len(labels) > MAX_LABELS:
                break
    else:
        labels = [l.strip() for l in lines if l.strip() and not l.lstrip().startswith('#')]
    check_labels(labels, f"labels file {path}")
    return tuple(l for l in labels if l)


def summary(labels: Iterable[str]) -> str:
    """A label list as logs and VisionInfo may show it: its count, a hash of the whole list and the
    first few labels cut short (never the whole text of a file a peer named)."""
    labels = tuple(labels)
    digest = hashlib.sha256('\n'.join(labels).encode('utf-8', 'replace')).hexdigest()[:12]
    shown = ', '.join(repr(l if len(l) <= SHOWN_CHARS else l[:SHOWN_CHARS] + '…') for l in labels[:SHOWN_LABELS])
    more = ', …' if len(labels) > SHOWN_LABELS else ''
    return f"{len(labels)} labels (sha256 {digest}) [{shown}{more}]"
