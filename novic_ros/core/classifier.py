"""Frames in, ranked free-text labels out: preprocess -> encode -> decode -> labels.

The labels and their scores are EmbeddingLabeller's (embedding_labels.py: every mode, shared with
the multi-object mode). In short: generate ranks the decoder's beam candidates by their sequence
probability renormalised over the beam; prompted by the softmax over the given labels of CLIP's
scaled image-text similarity; hybrid re-scores the decoder's candidates by that same softmax.

A classifier's options never change. New settings make a new classifier (`with_options`) that
shares the loaded models and cached text embeddings; the caller swaps it in between frames.
"""
from __future__ import annotations

import time

import numpy as np

from .clip_properties import ClipFacts
from .errors import ModelLoadError
from .embedding_labels import EmbeddingLabeller
from .generation import Sequences
from .label_tokens import LabelVocab
from .novic_decoding import NovicDecoding
from .options import ClassifierOptions
from .preprocess import Preprocessor
from .frame_labels import FrameLabels, Label, StageTimings
from .text_cache import TextEmbeddingCache

NOT_LOADED = "it was not loaded (prompted mode needs none); start with the new mode"


class NovicClassifier:
    def __init__(self, backend, vocab: LabelVocab | None, options: ClassifierOptions, clip: ClipFacts,
                 model_name: str = '', *, text_cache: TextEmbeddingCache | None = None,
                 missing_decoder: str = NOT_LOADED, source: str = '', novic: NovicDecoding | None = None):
        """`clip` describes the variant's CLIP model (preprocessing, logit scale) whatever the backend;
        the backend's text encoder embeds prompts in prompted and hybrid modes. Arrays are numpy.
        `missing_decoder` says why there is no decoder (`vocab` None), for the refusal of other modes;
        `source` what the models were loaded from, in words (ModelVariant.describe_loaded); `novic`: the
        decoder is a NOVIC authors' checkpoint's, decoded as its reference does (core/novic_decoding.py)."""
        if vocab is None and options.mode != 'prompted':
            raise ValueError(f"mode {options.mode!r} needs the decoder; {missing_decoder}")
        self.backend = backend
        self.vocab = vocab
        self.options = options
        self.clip = clip
        self.model_name = model_name
        self.missing_decoder = missing_decoder
        self.source = source or f"variant {model_name}"
        self.novic = novic
        self.preprocess = Preprocessor(clip.preprocess, options.preprocessing)
        self.logit_scale = clip.logit_scale
        if text_cache is None and options.mode != 'generate':
            text_cache = TextEmbeddingCache(self._text_encoder(options.mode), options.prompt_template)
        elif text_cache is not None and text_cache.template != options.prompt_template:
            text_cache = text_cache.for_template(options.prompt_template)
        self.text_cache = text_cache
        self.labeller = EmbeddingLabeller(backend.runner, vocab, options, clip.logit_scale, text_cache, novic)

    def _text_encoder(self, mode: str):
        encoder = self.backend.text_encoder
        if encoder is None:
            raise ModelLoadError(f"mode {mode!r} embeds label prompts with CLIP's text encoder, which "
                                 f"{self.backend.describe()} does not have for model {self.model_name}; "
                                 "use mode 'generate', or export the model again with novic-export")
        return encoder

    def with_options(self, options: ClassifierOptions) -> 'NovicClassifier':
        """A classifier with other settings over the same models (this one stays as it is)."""
        return NovicClassifier(
            self.backend,
            self.vocab,
            options,
            self.clip,
            self.model_name,
            text_cache=self.text_cache,
            missing_decoder=self.missing_decoder,
            source=self.source,
            novic=self.novic,
        )

    @property
    def prompt_labels(self) -> tuple[str, ...]:
        return self.options.labels if self.options.mode == 'prompted' else ()

    # --- public API ---

    def classify(self, frames) -> list[FrameLabels]:
        """One HxWx3 uint8 RGB frame or a sequence of them (any sizes) -> one FrameLabels per frame."""
        t0 = time.perf_counter()
        pixels = self.preprocess(frames)
        t1 = time.perf_counter()
        embeds = self.encode(pixels)
        t2 = time.perf_counter()
        labels = self.labels_for_embeddings(embeds)
        t3 = time.perf_counter()
        timings = StageTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return [FrameLabels(l, timings, len(labels)) for l in labels]

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """B x 3 x S x S normalised pixels -> B x E unit CLIP image embeddings."""
        return self.backend.encode_images(pixels)

    def labels_for_embeddings(self, embeds: np.ndarray) -> list[tuple[Label, ...]]:
        """B x E unit CLIP embeddings -> labels per row."""
        return self.labeller.frame_labels(embeds)

    def generate(self, embeds: np.ndarray) -> Sequences:
        """The decoder's candidate sequences with this classifier's beam width and max_tokens."""
        return self.labeller.generate(embeds)

    def describe(self) -> str:
        return f"model {self.model_name}, mode {self.options.mode}, backend {self.backend.describe()}"
