"""CLIP text embeddings of prompts, computed once per label and template: in memory for the running
classifier, and on disk so that the next start with the same labels (the whole 27k-noun dictionary
in prompted mode) loads them in a fraction of a second instead of running the text tower again.

On disk: <root>/<encoder key>/<template hash>/, one chunk per batch of newly embedded labels:
`<digest>.npy` (N x E float32, exactly what the text tower returned) and `<digest>.json` (the
labels, in row order; written last, so a chunk with a .json always has complete embeddings).
Both are written atomically, so processes sharing the folder never read half a file; two writing
the same labels at once write the same digest and the later rename wins. The encoder key names the
CLIP weights (their fingerprint) and precision: other weights never read these embeddings.

A thread that embeds labels beside other work (the node's settings thread, while the inference
worker labels frames) paces itself (pacing.paced()): new labels are then tokenised and embedded
PACED_STEP at a time, and the thread pauses between steps as its caller says.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ..atomic_file import atomic_write, atomic_write_text
from .pacing import Steps, pacing

log = logging.getLogger(__name__)

# Fewer new labels than this are not written to disk: hybrid mode meets a few new candidate labels on
# most frames, which cost milliseconds to embed and would otherwise leave a file per frame.
PERSIST_MIN_LABELS = 32

# Labels per step of a paced thread: the tokenizer is Python and holds the interpreter lock, so a
# step must be short (toy model, 2 cores: about 5 ms) for the threads it runs beside to get the
# lock back soon; smaller steps cost the text tower's batching.
PACED_STEP = 32
PACED_LOOKUP = 2048          # labels looked up (memory, disk) or copied between two pauses on a paced thread

def _encode(encoder: 'TextEncoder', prompts: list[str]) -> np.ndarray:
    """encoder.encode_texts(prompts), PACED_STEP at a time on a thread inside pacing.paced()."""
    if not pacing() or len(prompts) <= PACED_STEP:
        return encoder.encode_texts(prompts)
    parts, step = [], Steps()
    for start in range(0, len(prompts), PACED_STEP):
        if parts:
            step()
        parts.append(np.asarray(encoder.encode_texts(prompts[start:start + PACED_STEP]), np.float32))
    return np.concatenate(parts)


class TextEncoder(Protocol):
    """CLIP's text tower as a backend runs it (torch, or an exported graph with its tokenizer)."""
    embed_dim: int
    cache_key: str                   # names its embeddings on disk: CLIP weights fingerprint and precision

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...     # N texts -> N x E unit float32


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode('utf-8'))
        h.update(b'\0')
    return h.hexdigest()[:24]


class DiskTextEmbeddings:
    """Label embeddings of one text encoder on disk, per prompt template. `root` is created on the first
    write; a folder that cannot be written (a read-only robot image) costs a warning, not a failure."""

    def __init__(self, root: str | os.PathLike, encoder_key: str):
        self.dir = Path(root) / encoder_key
        self._index: dict[str, dict[str, tuple[Path, int]]] = {}     # template -> label -> (chunk .npy, row)
        self._lock = threading.Lock()
        self._write_failed = False

    def _template_dir(self, template: str) -> Path:
        return self.dir / _digest([template])[:16]

    def _load_index(self, template: str) -> dict[str, tuple[Path, int]]:
        index = self._index.get(template)
        if index is not None:
            return index
        index = {}
        folder = self._template_dir(template)
        for meta_path in sorted(folder.glob('*.json')) if folder.is_dir() else ():
            if meta_path.name == 'template.json':
                continue
            try:
                meta = json.loads(meta_path.read_text())
                labels, npy = meta['labels'], meta_path.with_suffix('.npy')
                if not npy.is_file():
                    raise ValueError(f"{npy.name} is missing")
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring text-embedding cache chunk %s (%s); it will be recomputed", meta_path, e)
                continue
            for row, label in enumerate(labels):
                index.setdefault(label, (npy, row))
        self._index[template] = index
        return index

    @staticmethod
    def _array(npy: Path) -> np.ndarray | None:
        # Mapped, not read: only the rows asked for are copied out, and nothing stays mapped afterwards.
        try:
            return np.load(npy, mmap_mode='r', allow_pickle=False)
        except (OSError, ValueError) as e:
            log.warning("ignoring text-embedding cache file %s (%s)", npy, e)
            return None

    def lookup(self, template: str, labels: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """The stored embeddings of those `labels` that are on disk (E-dim float32 rows)."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            index = self._load_index(template)
            by_chunk: dict[Path, list[tuple[str, int]]] = {}
            for label in labels:
                if label in index:
                    npy, row = index[label]
                    by_chunk.setdefault(npy, []).append((label, row))
            for npy, wanted in by_chunk.items():
                arr = self._array(npy)
                if arr is None or arr.ndim != 2 or arr.shape[1] != dim or arr.dtype != np.float32 \
                        or max(r for _, r in wanted) >= arr.shape[0]:
                    continue
                rows = np.ascontiguousarray(arr[[r for _, r in wanted]])        # one copy per chunk
                found.update(zip((label for label, _ in wanted), rows))
        return found

    def add(self, template: str, labels: Sequence[str], embeddings: np.ndarray) -> None:
        """Store len(labels) x E float32 embeddings (one new chunk)."""
        if self._write_failed or len(labels) == 0:
            return
        folder = self._template_dir(template)
        digest = _digest(labels)
        arr = np.ascontiguousarray(embeddings, dtype=np.float32)
        try:
            if not (folder / 'template.json').is_file():     # for people looking into the folder
                atomic_write_text(folder / 'template.json', json.dumps({'template': template}))
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            atomic_write(folder / f"{digest}.npy", buf.getvalue())
            atomic_write_text(folder / f"{digest}.json", json.dumps({'labels': list(labels), 'dim': arr.shape[1]}))
        except OSError as e:
            self._write_failed = True
            log.warning("cannot write the label-embedding cache in %s (%s); label embeddings will be computed "
                        "at every start. Set the text_cache_dir parameter to a writable folder.", self.dir, e)
            return
        with self._lock:
            npy = folder / f"{digest}.npy"
            index = self._load_index(template)
            for row, label in enumerate(labels):
                index[label] = (npy, row)


class TextEmbeddingCache:
    """Unit text embeddings of `template.format(label)`. Bounded (LRU) in memory for hybrid mode, where
    new candidate labels keep arriving; backed by `disk` when given. Thread-safe: a classifier being
    built for new settings fills it while the current one reads it; the text tower runs outside the
    lock, so a long label list being embedded never blocks the frames being classified."""

    def __init__(self, encoder: TextEncoder, template: str, capacity: int = 20000,
                 disk: DiskTextEmbeddings | None = None):
        self.encoder, self.template, self.capacity, self.disk = encoder, template, capacity, disk
        # numpy rows, not tensors: tens of thousands of row objects are made cheaply (a cached 27k-label start)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0          # labels run through the text tower (the rest came from memory or disk)

    def for_template(self, template: str) -> 'TextEmbeddingCache':
        """A cache for another template over the same encoder and disk store."""
        return TextEmbeddingCache(self.encoder, template, self.capacity, self.disk)

    def __call__(self, labels: Sequence[str]) -> np.ndarray:
        """len(labels) x E embeddings, in the order of `labels`. On a paced thread (pacing.paced()) the
        look-ups in memory and on disk and the final copy go PACED_LOOKUP labels at a time with a pause
        between (27k labels in memory: some 70 ms of Python holding the interpreter lock the worker needs)."""
        steps = Steps() if pacing() else None
        found: dict[str, np.ndarray] = {}
        for chunk in _chunks(labels, steps):
            with self._lock:
                found.update((l, self._cache[l]) for l in chunk if l in self._cache)
        missing = list(dict.fromkeys(l for l in labels if l not in found))
        if missing and self.disk is not None:
            for chunk in _chunks(missing, steps):
                found.update(self.disk.lookup(self.template, chunk, self.encoder.embed_dim))
            missing = [l for l in missing if l not in found]
        if missing:
            embs = _encode(self.encoder, [self.template.format(l) for l in missing])
            self.computed += len(missing)
            found.update(zip(missing, embs))
            if self.disk is not None and len(missing) >= PERSIST_MIN_LABELS:
                self.disk.add(self.template, missing, embs)
        for chunk in _chunks(labels, steps):
            with self._lock:
                for label in chunk:
                    self._cache[label] = found[label]
                    self._cache.move_to_end(label)
        with self._lock:
            while len(self._cache) > max(self.capacity, len(labels)):
                self._cache.popitem(last=False)
        if steps is None:
            return np.stack([found[l] for l in labels])
        out = np.empty((len(labels), self.encoder.embed_dim), np.float32)
        for i, chunk in enumerate(_chunks(labels, steps)):
            out[i * PACED_LOOKUP:i * PACED_LOOKUP + len(chunk)] = np.stack([found[l] for l in chunk])
        return out


def _chunks(items: Sequence, steps: Steps | None):
    """`items` whole (steps None), or PACED_LOOKUP at a time with a pause after each."""
    if steps is None:
        yield items
        return
    for i in range(0, len(items), PACED_LOOKUP):
        yield items[i:i + PACED_LOOKUP]
        steps()
