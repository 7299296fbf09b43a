"""The composition root: parameters -> model variant -> CLIP encoder + decoder -> backend ->
classifier, and the one loop that feeds it (decode, reject, batch, zip back).

It sits above novic_ros.core (ROS-free inference) and novic_ros.backends, which know nothing of
each other's construction; the node, the CLIs, evaluation and the benchmarks build classifiers
here and nowhere else.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np
import torch

from .backends import create_backend
from .core.checkpoint import check_pairing, clip_fingerprint, load_decoder
from .core.classifier import NOT_LOADED, NovicClassifier
from .core.clip_encoder import ClipEncoder, resolve_device, resolve_precision
from .core.errors import CheckpointMismatchError, FrameError, ModelLoadError
from .core.results import FrameLabels
from .core.text_cache import DiskTextEmbeddings, TextEmbeddingCache
from .core.variants import get_variant
from .params import ModelParams
from .paths import cache_dir

log = logging.getLogger(__name__)
T = TypeVar('T')


def build_classifier(params: ModelParams, strict: bool = True, *, decoder_for_all_modes: bool = False) -> NovicClassifier:
    """Load the variant named by params.model and wrap it in the chosen backend. Raises
    ModelLoadError (or CheckpointMismatchError) saying what was looked for where; with
    strict=False a decoder trained for other CLIP weights only warns.

    Prompted mode needs no decoder and loads none, unless `decoder_for_all_modes` (the node: a live
    switch to generate or hybrid then needs no restart). The decoder is then loaded when the variant
    has one; one that is missing or does not load leaves a classifier that refuses those modes,
    saying why."""
    if params.threads:
        torch.set_num_threads(params.threads)
    variant = get_variant(params.model, params.models_file or None)
    device = resolve_device(params.device)
    encoder = ClipEncoder(variant.clip, device, resolve_precision(params.precision, device))
    fingerprint = clip_fingerprint(encoder.model)
    decoder = vocab = None
    missing_decoder = NOT_LOADED
    if params.mode != 'prompted' or decoder_for_all_modes:
        try:
            decoder, vocab, meta = load_decoder(variant.decoder)
            check_pairing(meta, encoder.embed_dim, fingerprint, variant.clip.describe(), str(variant.decoder),
                          strict=strict)
        except (ModelLoadError, CheckpointMismatchError) as e:
            if params.mode != 'prompted':
                raise
            decoder = vocab = None
            missing_decoder = f"variant {variant.name!r} has no usable decoder ({e})"
            log.warning("prompted mode without a decoder: %s", missing_decoder)
    backend = create_backend(params.backend, encoder, decoder, vocab, variant=variant.name, decoder_dir=variant.decoder,
                             engine_dir=params.engine_dir, threads=params.threads, max_batch=params.batch_size,
                             beam_width=params.beam_width)
    options = params.to_options()
    # Label embeddings persist across runs, keyed by the CLIP weights and precision (and, inside, by template).
    disk = DiskTextEmbeddings(params.text_cache_dir or cache_dir() / 'text_embeddings', f"{fingerprint}-{encoder.precision}")
    text_cache = TextEmbeddingCache(encoder, options.prompt_template, disk=disk)
    return NovicClassifier(backend, vocab, options, encoder, variant.name, text_cache=text_cache,
                           missing_decoder=missing_decoder)


@dataclass(frozen=True)
class Classified(Generic[T]):
    """One input and what became of it: labels, or the error that rejected it."""
    item: T
    frame: np.ndarray | None = None        # the decoded RGB frame (None when rejected)
    labels: FrameLabels | None = None
    error: FrameError | None = None


def classify_in_batches(classifier, items: Iterable[T], to_frame: Callable[[T], np.ndarray],
                        batch_size: int) -> Iterator[Classified[T]]:
    """Every item, in input order, with its labels or with the FrameError that kept it from being
    classified. `to_frame` turns an item (a message, a bag record, a path) into an HxWx3 uint8 RGB
    frame and raises FrameError for one that cannot be used: that item alone is rejected. Frames are
    classified `batch_size` at a time; a result's timings are its batch's (FrameLabels.per_frame_ms)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[Classified[T]] = []
    frames = 0
    for item in items:
        try:
            pending.append(Classified(item, frame=to_frame(item)))
            frames += 1
        except FrameError as e:
            pending.append(Classified(item, error=e))
        if frames == batch_size:
            yield from _classify(classifier, pending)
            pending, frames = [], 0
    if pending:
        yield from _classify(classifier, pending)


def _classify(classifier, pending: list[Classified[T]]) -> Iterator[Classified[T]]:
    frames = [c.frame for c in pending if c.error is None]
    labels = iter(classifier.classify(frames) if frames else ())
    for c in pending:
        yield c if c.error is not None else Classified(c.item, c.frame, next(labels))
