"""The torch side of build_classifier: load a variant's CLIP model and decoder checkpoint (checking
that they belong together), and either run them eagerly (the torch backend) or export them to the
bundle that the runtime backends load. Imported only where torch is installed: a runtime install
runs bundles and never reaches this module."""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch

from .backends.onnx_export import ensure_bundle, ensure_fp16_encoder, export_info
from .backends.torch_backend import TorchBackend
from .core.bundle import Bundle
from .models.checkpoint import check_pairing, load_decoder
from .core.classifier import NovicClassifier
from .models.clip_encoder import ClipEncoder, resolve_device, resolve_precision
from .models.decoder import ObjectDecoder
from .core.label_tokens import LabelVocab
from .core.embedder_specs import clip_spec_for_embedder
from .core.errors import CheckpointMismatchError
from .core.novic_decoding import NovicDecoding
from .core.variants import ModelVariant
from .downloads.release_cache import verify_fetched_file
from .models.novic_checkpoint import load_novic_checkpoint
from .model_loading import load_decoder_or_not, text_cache_for
from .params import ModelParams

log = logging.getLogger(__name__)


class LoadedModels(NamedTuple):
    encoder: ClipEncoder
    decoder: ObjectDecoder | None
    vocab: LabelVocab | None
    novic: NovicDecoding | None       # a NOVIC authors' checkpoint: decoded as its reference does


def load_models(variant: ModelVariant, device, precision: str, with_decoder: bool, strict: bool = True) -> LoadedModels:
    """The CLIP encoder, and (unless `with_decoder` is False: prompted mode) the decoder and its
    vocabulary, paired: a decoder trained for other weights raises (or only warns, strict=False)."""
    if variant.is_novic:
        return _load_novic(variant, device, precision, with_decoder)
    encoder = ClipEncoder(variant.clip, device, precision)
    if not with_decoder:
        return LoadedModels(encoder, None, None, None)
    decoder, vocab, meta = load_decoder(variant.decoder)
    check_pairing(meta, encoder.embed_dim, encoder.facts().fingerprint, variant.clip.describe(), str(variant.decoder),
                  strict=strict)
    return LoadedModels(encoder, decoder, vocab, None)


def _load_novic(variant: ModelVariant, device, precision: str, with_decoder: bool) -> LoadedModels:
    """A NOVIC checkpoint: its embedder spec names the CLIP model (the variant's clip may say where the
    weights are), its config the decoder; read even in prompted mode, since it names the CLIP model. A
    checkpoint novic-fetch unpacked must still be the file it recorded (ChecksumError naming the fix)."""
    verify_fetched_file(variant.decoder)
    ckpt = load_novic_checkpoint(variant.decoder)
    over = variant.clip
    spec = clip_spec_for_embedder(ckpt.embedder_spec, over.model or None if over else None,
                                  over.pretrained if over else None)
    encoder = ClipEncoder(spec, device, precision)
    if not with_decoder:
        return LoadedModels(encoder, None, None, None)
    if encoder.embed_dim != ckpt.decoder.cfg.embed_dim:
        raise CheckpointMismatchError(
            f"NOVIC checkpoint {variant.decoder} reads {ckpt.decoder.cfg.embed_dim}-wide embeddings of "
            f"{ckpt.embedder_spec}, but CLIP {spec.describe()} produces {encoder.embed_dim}-wide ones: set clip_model "
            "and pretrained to that embedder's weights (or leave them out)")
    return LoadedModels(encoder, ckpt.decoder, ckpt.vocab, NovicDecoding(ckpt.token_length, ckpt.noun_targets()[1]))


def torch_classifier(variant: ModelVariant, params: ModelParams, strict: bool = True,
                     decoder_for_all_modes: bool = False) -> NovicClassifier:
    """See pipeline.build_classifier: prompted mode loads a decoder only for `decoder_for_all_modes`,
    and then one that is missing or does not fit leaves a classifier that says so."""
    if params.threads:
        torch.set_num_threads(params.threads)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    (encoder, decoder, vocab, novic), missing_decoder = load_decoder_or_not(
        lambda with_decoder: load_models(variant, device, precision, with_decoder, strict),
        params.mode, params.mode != 'prompted' or decoder_for_all_modes, f"variant {variant.name!r}")
    backend = TorchBackend(encoder, decoder, vocab.eot if vocab is not None else 0)
    log.info("backend torch: %s", backend.describe())
    options = params.to_options()
    return NovicClassifier(backend, vocab, options, encoder.facts(), variant.name, missing_decoder=missing_decoder,
                           text_cache=text_cache_for(backend, options.prompt_template, params.text_cache_dir),
                           source=variant.describe_loaded(vocab is not None), novic=novic)


def export_for(
    variant: ModelVariant, engine_dir, with_decoder: bool, fp16: bool = False, strict: bool = True
) -> Bundle:
    """The variant's bundle in the engine cache (exported once; again when weights or checkpoint
    change), with the fp16 image encoder graph when `fp16` (TensorRT fp16)."""
    encoder, decoder, vocab, novic = load_models(variant, 'cpu', 'fp32', with_decoder, strict)
    info = export_info(variant.name, encoder, variant.decoder if decoder is not None else None)
    bundle = ensure_bundle(info, encoder, decoder, vocab, engine_dir, novic=novic)
    return ensure_fp16_encoder(bundle, encoder) if fp16 else bundle
