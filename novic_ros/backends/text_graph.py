"""CLIP's text tower as a bundle's graph, whichever runtime runs it (ONNX Runtime, OpenVINO): the
tokenizer that needs no torch, length-sorted batches cut after their longest prompt. Needs no
runtime itself: a subclass opens the graph."""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from ..core.bundle import Bundle

TEXT_BATCH = 256


class GraphTextEncoder:
    """The graph and the BPE vocabulary are loaded on first use (a generating robot never holds them).
    Prompts are sorted by length and each batch is cut after its longest prompt when the graph allows
    it (same embeddings as the full context, a fraction of the cost). Embeddings are computed in fp32
    whatever the image precision, so label caches are shared (cache_key)."""

    def __init__(self, bundle: Bundle):
        t = bundle.tokenizer
        self.bundle = bundle
        self.context_length, self.dynamic_length = t.context_length, t.dynamic_length
        self.embed_dim = bundle.clip.embed_dim
        self.cache_key = f"{bundle.clip.fingerprint}-fp32"
        self._run: Callable[[np.ndarray], np.ndarray] | None = None
        self._lock = threading.Lock()

    def open_graph(self) -> Callable[[np.ndarray], np.ndarray]:
        """N x L int64 token ids -> N x E unit embeddings (the runtime's graph, loaded)."""
        raise NotImplementedError

    def _load(self):
        with self._lock:
            if self._run is None:
                self.tokenizer = self.bundle.text_tokenizer()      # CLIP BPE, or a Hugging Face tokenizer.json
                self._run = self.open_graph()
        return self._run

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        run = self._load()
        tokens = self.tokenizer.tokenize(list(texts), self.context_length)
        # A graph of dynamic length is CLIP's causal tower pooled at end-of-text (ClipBPE): cut after it.
        lengths = ((tokens == self.tokenizer.eot_token_id).argmax(axis=1) + 1 if self.dynamic_length
                   else np.full(len(tokens), tokens.shape[1]))
        order = np.argsort(-lengths, kind='stable')
        out = None
        for start in range(0, len(tokens), TEXT_BATCH):
            idx = order[start:start + TEXT_BATCH]
            batch = tokens[idx, :int(lengths[idx].max())] if self.dynamic_length else tokens[idx]
            embs = run(np.ascontiguousarray(batch))
            if out is None:
                out = np.empty((len(tokens), embs.shape[1]), np.float32)
            out[idx] = embs
        return out if out is not None else np.zeros((0, self.embed_dim), np.float32)
