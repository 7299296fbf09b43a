"""CLIP text embeddings of training prompts, cached on disk and read memory-mapped.

The text tower is the training bottleneck, so embeddings are computed once per (model, data)
pair into one fp16 `.npy` file under a folder keyed by both. The file is written in shards of
SHARD rows, each flushed to disk and then marked done, so an interrupted run resumes at the
missing shards and ranks of a data-parallel run fill disjoint shards of the same file. Nothing
joins the shards in memory: training reads rows through a memory map, and statistics stream
over the file a shard at a time.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from ..atomic_file import atomic_write, atomic_write_text
from ..models.clip_encoder import ClipEncoder, supports_trimmed_text, text_lengths
from .distributed import SINGLE, DistContext
from .prompt_rows import Rows

log = logging.getLogger(__name__)

SHARD = 8192          # rows per shard: small enough to lose little to an interruption
FORMAT = 'novic_ros.text_embeddings/2'
DATA_FILE = 'embeddings.npy'
DONE_DIR = 'done'
INFO_FILE = 'info.json'
DTYPE = np.float16


class TextEmbeddingStore:
    """Embeddings of `rows` by one CLIP text tower, under root/<model key>-<rows fingerprint>/."""

    def __init__(self, root: str | os.PathLike, model_key: str, rows: Rows, embed_dim: int):
        self.rows = rows
        self.count = len(rows)
        self.embed_dim = embed_dim
        self.dir = Path(root) / f"{model_key}-{rows.fingerprint}"
        self.path = self.dir / DATA_FILE
        self.num_shards = (self.count + SHARD - 1) // SHARD

    def shard_range(self, i: int) -> tuple[int, int]:
        return i * SHARD, min(self.count, (i + 1) * SHARD)

    def missing(self) -> list[int]:
        done = set(os.listdir(self.dir / DONE_DIR)) if (self.dir / DONE_DIR).is_dir() else set()
        return [i for i in range(self.num_shards) if f"{i:05d}" not in done or not self.path.is_file()]

    @property
    def nbytes(self) -> int:
        return self.count * self.embed_dim * np.dtype(DTYPE).itemsize

    # --- writing ---------------------------------------------------------------------------

    def compute(self, encoder: ClipEncoder, batch_size: int, progress: bool = True, ctx: DistContext = SINGLE,
                bf16: bool = False) -> None:
        """Embed the missing shards; with several ranks each embeds its share. Every rank returns
        when all shards are done. `bf16` runs the text tower under bfloat16 autocast (GPUs)."""
        todo = ctx.broadcast(self.missing())        # one view of the folder, or ranks could disagree
        if not todo:
            return
        if ctx.is_main:
            self._prepare(encoder, todo)
        ctx.barrier()
        mine = todo[ctx.rank::ctx.world_size]
        total = sum(self.shard_range(i)[1] - self.shard_range(i)[0] for i in mine)
        desc = 'text embeddings' + (f' (rank 0 of {ctx.world_size})' if ctx.active else '')
        # Batches run in random order within a shard (see encode_shard), so the rate is even and
        # smoothing can be low: the ETA is the average pace, not the last few batches'.
        with tqdm(total=total, desc=desc, unit='prompt', disable=not (progress and ctx.is_main), mininterval=2,
                  smoothing=0.05) as bar:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                offset = self._data_offset()
                for i in mine:
                    start, stop = self.shard_range(i)
                    embs = encode_shard(encoder, self.rows.texts(start, stop), batch_size, i, bar.update, bf16)
                    os.pwrite(fd, embs.tobytes(), offset + start * self.embed_dim * embs.itemsize)
                    os.fdatasync(fd)                      # the rows are on disk before the shard is marked done
                    atomic_write(self.dir / DONE_DIR / f"{i:05d}", b'')
            finally:
                os.close(fd)
        ctx.barrier()
        left = self.missing()
        if left:
            raise RuntimeError(f"{len(left)} shards of {self.dir} are still missing after computing them")

    def _prepare(self, encoder: ClipEncoder, todo: list[int]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / DONE_DIR).mkdir(exist_ok=True)
        need = len(todo) * SHARD * self.embed_dim * np.dtype(DTYPE).itemsize
        free = shutil.disk_usage(self.dir).free
        if need > free:
            raise OSError(f"text embeddings need {need / 1e9:.1f} GB in {self.dir} but only {free / 1e9:.1f} GB are "
                          "free; free some space or point --cache-dir at a larger disk")
        if self.path.is_file():
            existing = np.load(self.path, mmap_mode='r')
            if existing.shape == (self.count, self.embed_dim) and existing.dtype == DTYPE:
                return
            raise ValueError(
                f"{self.path} holds {existing.shape} {existing.dtype} embeddings, not "
                f"({self.count}, {self.embed_dim}) {np.dtype(DTYPE)}: the cache is damaged; delete {self.dir}"
            )
        atomic_write_text(self.dir / INFO_FILE, json.dumps({
            'format': FORMAT, 'count': self.count, 'embed_dim': self.embed_dim, 'dtype': np.dtype(DTYPE).name,
            'shard': SHARD, 'model': encoder.spec.describe(), 'rows': self.rows.fingerprint}, indent=1) + '\n')
        tmp = self.path.with_suffix('.npy.tmp')
        # A sparse file of the final size: shards fill it in place, in any order, from any rank.
        np.lib.format.open_memmap(tmp, mode='w+', dtype=DTYPE, shape=(self.count, self.embed_dim)).flush()
        os.replace(tmp, self.path)

    def _data_offset(self) -> int:
        return np.load(self.path, mmap_mode='r').offset

    # --- reading ---------------------------------------------------------------------------

    def open(self) -> np.memmap:
        """All rows, memory-mapped read-only (N x E float16); call compute first."""
        missing = self.missing()
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {self.num_shards} shards missing in {self.dir}; run compute()")
        return np.load(self.path, mmap_mode='r')

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) for the whole file, a shard at a time, read without mapping it: a
        streaming pass does not leave the file resident in this process."""
        offset = self._data_offset()
        row_bytes = self.embed_dim * np.dtype(DTYPE).itemsize
        with open(self.path, 'rb') as f:
            for start in range(0, self.count, SHARD):
                n = min(SHARD, self.count - start)
                f.seek(offset + start * row_bytes)
                yield start, np.fromfile(f, dtype=DTYPE, count=n * self.embed_dim).reshape(n, self.embed_dim)


def encode_shard(encoder: ClipEncoder, texts: list[str], batch_size: int, shard: int, on_batch,
                  bf16: bool) -> np.ndarray:
    """N x E float16 unit embeddings of `texts`.

    Prompts are sorted by length so that each batch runs at its own token length, and the batches
    then run in a random order: in length order every shard would start with its slowest batches
    and a progress bar's rate (and ETA) would swing with it."""
    tokens = encoder.tokenize(texts)
    trim = supports_trimmed_text(encoder.model)
    order = torch.argsort(text_lengths(encoder.model, tokens), descending=True) if trim else torch.arange(len(texts))
    batches = torch.split(order, batch_size)
    out = np.empty((len(texts), encoder.embed_dim), DTYPE)
    for j in np.random.default_rng(shard).permutation(len(batches)):
        idx = batches[j]
        with torch.autocast(encoder.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            embs = encoder.encode_tokens(tokens[idx], batch_size=len(idx), trim=trim)
        out[idx.numpy()] = embs.numpy()
        on_batch(len(idx))
    return out
