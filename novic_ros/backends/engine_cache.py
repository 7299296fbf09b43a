"""Cache of built TensorRT engines in engines/: built once, reused on the next start, rebuilt when
any part of the key changes (model, ONNX graph content, GPU, TensorRT version, precision, batch
range). Writes are atomic and verified: an engine is written to a temporary file and renamed into
place, then its metadata (with a hash of the engine bytes) is written the same way; a file whose
metadata is missing or does not match is never loaded, so a crash mid-write costs a rebuild, not
a broken robot. ROS-free and GPU-free, so it is tested everywhere."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..atomic_file import atomic_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineKey:
    model: str           # variant name
    graph: str           # image_encoder | decoder_prefill | decoder_step
    onnx_hash: str       # content hash of the ONNX graph (covers CLIP weights and decoder checkpoint)
    gpu: str             # GPU name, e.g. "NVIDIA H100 80GB HBM3"
    trt_version: str
    precision: str       # fp16 | fp32
    min_batch: int
    max_batch: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def stem(self) -> str:
        return f"{self.model}-{self.graph}-{self.precision}-b{self.min_batch}-{self.max_batch}-{self.digest}"


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


class EngineCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.engine"

    def meta_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.json"

    def timing_cache_path(self, gpu: str, trt_version: str) -> Path:
        tag = hashlib.sha256(f"{gpu}-{trt_version}".encode()).hexdigest()[:12]
        return self.root / f"timing-{tag}.cache"

    def lookup(self, key: EngineKey) -> Path | None:
        """The engine file for `key` if a complete, verified one exists."""
        engine, meta = self.engine_path(key), self.meta_path(key)
        if not engine.is_file() or not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if info.get('key') != asdict(key) or info.get('sha256') != file_hash(engine):
            log.warning("engine %s does not match its metadata; rebuilding", engine)
            return None
        return engine

    def store(self, key: EngineKey, data: bytes) -> Path:
        engine = self.engine_path(key)
        atomic_write(engine, data)
        meta = {'key': asdict(key), 'sha256': hashlib.sha256(data).hexdigest(), 'bytes': len(data)}
        atomic_write(self.meta_path(key), (json.dumps(meta, indent=2) + '\n').encode())
        self.prune_stale(key)
        return engine

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes]) -> tuple[bytes, bool]:
        """(engine bytes, whether they were built now)."""
        found = self.lookup(key)
        if found is not None:
            return found.read_bytes(), False
        log.info("building TensorRT engine %s (once; cached in %s)", key.stem, self.root)
        data = build()
        self.store(key, data)
        return data, True

    def prune_stale(self, key: EngineKey) -> list[Path]:
        """Remove engines of the same model, graph, precision and batch range built under another key."""
        prefix = f"{key.model}-{key.graph}-{key.precision}-b{key.min_batch}-{key.max_batch}-"
        removed = []
        for p in self.root.glob(prefix + '*'):
            if p.suffix in ('.engine', '.json') and not p.name.startswith(key.stem + '.'):
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed
