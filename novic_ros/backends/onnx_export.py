"""Export a variant to a bundle (core/bundle.py): the image encoder, the decoder as two graphs that
keep the key/value cache (prefill: embeddings -> first logits + cache; step: one token + past
cache -> logits + present cache), CLIP's text encoder for prompts, all with dynamic batch, plus
the label vocabulary, the tokenizer's vocabulary and bundle.json. This is the torch side: a
runtime loads the bundle without torch.

Bundles are cached under <engine_dir>/onnx/<key>/; the key changes with the CLIP weights, the
decoder checkpoint, the opset, the bundle format and the exporter version, so a stale export is
never reused. A bundle is written into a temporary folder renamed into place: a crash never leaves
a half-written one that is later loaded.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from ..core.bundle import (
    BUNDLE_FILE,
    DECODER_PREFILL,
    DECODER_STEP,
    FORMAT,
    GRAPH_REVISION,
    IMAGE_ENCODER,
    LABEL_VOCAB_FILE,
    LABEL_TOKENIZER_FILE,
    NOVIC_TARGETS_FILE,
    PRECISIONS,
    TEXT_ENCODER,
    Bundle,
    add_graphs,
    file_record,
    graph_file,
    read_bundle,
)
from ..models.checkpoint import checkpoint_hash
from ..core.clip_bpe import VOCAB_FILE, open_clip_vocab_file
from ..models.clip_encoder import ClipEncoder, encode_tokens_at_length, supports_trimmed_text
from ..models.decoder import ObjectDecoder
from ..core.errors import ModelLoadError
from ..models.kv_cache import ConcatKVCache
from ..core.label_tokens import HfLabelVocab, LabelVocab
from ..core.novic_decoding import NovicDecoding
from .export_attention import with_export_attention
from .quantize import quantize_bundle
from .tokenizer_export import bundle_tokenizer
from .ov_quantize import CalibrationFrames, quantize_bundle_ov     # nncf and openvino: imported when used
from .base import (ENCODER_INPUT, ENCODER_OUTPUT, LOGITS, PAST_K, PAST_V, PREFILL_INPUT, PRESENT_K, PRESENT_V,
                   STEP_TOKEN_INPUT, TEXT_INPUT, TEXT_OUTPUT)

log = logging.getLogger(__name__)
OPSET = 18
MAX_BATCH = 256


class ImageEncoderGraph(torch.nn.Module):
    """pixels (B x 3 x H x W) -> unit embeddings (B x E, float32), normalisation inside the graph.
    With dtype float16 the tower computes in half precision (pixels are fp16 too)."""

    def __init__(self, clip_model, dtype=torch.float32):
        super().__init__()
        self.visual = clip_model.visual.to(dtype)
        self.dtype = dtype

    def forward(self, pixels):
        return F.normalize(self.visual(pixels.to(self.dtype)).float(), dim=-1)


class TextEncoderGraph(torch.nn.Module):
    """CLIP token ids (B x L, cut after the batch's last end-of-text, or the full context for towers
    that cannot be cut) -> unit text embeddings (B x E): open_clip's encode_text, normalised."""

    def __init__(self, clip_model, trimmed: bool):
        super().__init__()
        self.model, self.trimmed = clip_model, trimmed

    def forward(self, tokens):
        feats = encode_tokens_at_length(self.model, tokens) if self.trimmed else self.model.encode_text(tokens)
        return F.normalize(feats.float(), dim=-1)


class PrefillGraph(torch.nn.Module):
    def __init__(self, decoder: ObjectDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, embeddings):
        cache = ConcatKVCache(layers=self.decoder.cfg.layers)
        logits = self.decoder.prefill(embeddings, cache)
        return (logits, *cache.present())          # present: layers x B x H x P x Dh


class StepGraph(torch.nn.Module):
    def __init__(self, decoder: ObjectDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, tokens, past_k, past_v):
        cache = ConcatKVCache(past_k, past_v)
        logits = self.decoder.step(tokens, cache)
        return (logits, *cache.present())          # present: layers x B x H x (T+1) x Dh


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return 'unknown'


@dataclass(frozen=True)
class ExportInfo:
    """What identifies an export: the same info gives the same bundle (and cache folder)."""
    variant: str
    clip_model: str
    clip_pretrained: str | None
    clip_fingerprint: str
    decoder_hash: str             # content hash of the decoder checkpoint; 'none' without a decoder
    opset: int
    torch_version: str

    @property
    def key(self) -> str:
        blob = (f"{FORMAT}-{self.clip_fingerprint}-{self.decoder_hash}-{self.opset}-{self.torch_version}"
                f"-r{GRAPH_REVISION}")
        return f"{self.variant}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def export_info(variant: str, encoder: ClipEncoder, decoder_dir=None) -> ExportInfo:
    """Describe the export; without a decoder (prompted mode) the bundle has no decoder graphs."""
    return ExportInfo(variant=variant, clip_model=encoder.spec.model, clip_pretrained=encoder.spec.pretrained,
                      clip_fingerprint=encoder.facts().fingerprint,
                      decoder_hash=checkpoint_hash(decoder_dir) if decoder_dir is not None else 'none',
                      opset=OPSET, torch_version=torch.__version__)


def _export(module, args, path, input_names, output_names, dynamic_shapes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')    # the exporter is chatty about axis renaming
        torch.onnx.export(module.eval(), args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=OPSET, verbose=False)


def _batch_dim():
    return torch.export.Dim('batch', min=1, max=MAX_BATCH)


def _export_decoder(decoder: ObjectDecoder, folder: Path) -> None:
    cfg = decoder.cfg
    past = torch.export.Dim('past', min=1, max=cfg.max_positions - 1)
    dec = copy.deepcopy(decoder).float().cpu().eval()
    embeds = F.normalize(torch.randn(2, cfg.embed_dim), dim=-1)
    batch = _batch_dim()
    _export(PrefillGraph(dec), (embeds,), folder / graph_file(DECODER_PREFILL, 'fp32'), [PREFILL_INPUT],
            [LOGITS, PRESENT_K, PRESENT_V], {'embeddings': {0: batch}})
    with torch.no_grad():
        logits, k, v = PrefillGraph(dec)(embeds)
    _export(StepGraph(dec), (logits.argmax(-1), k, v), folder / graph_file(DECODER_STEP, 'fp32'),
            [STEP_TOKEN_INPUT, PAST_K, PAST_V], [LOGITS, PRESENT_K, PRESENT_V],
            {'tokens': {0: batch}, 'past_k': {1: batch, 3: past}, 'past_v': {1: batch, 3: past}})


def _export_text(model, folder: Path, context_length: int, trimmed: bool, tokens: torch.Tensor) -> None:
    """The text graph, traced on `tokens` (2 rows of the model's own tokenizer; cut to 8 positions when
    the graph takes any length up to the context, else the full context)."""
    shapes = {
        'tokens': {0: _batch_dim(), **({1: torch.export.Dim('length', min=2, max=context_length)} if trimmed else {})}
    }
    _export(TextEncoderGraph(model, trimmed), (tokens,), folder / graph_file(TEXT_ENCODER, 'fp32'), [TEXT_INPUT],
            [TEXT_OUTPUT], shapes)


def export_fp16_encoder(folder: Path, encoder: ClipEncoder) -> None:
    """The half-precision image encoder graph (for TensorRT fp16: TensorRT 11 builds strongly typed
    networks only, so precision lives in the graph, not in a builder flag)."""
    size = read_bundle(folder, check=False).clip.preprocess.size
    name = graph_file(IMAGE_ENCODER, 'fp16')
    _export(ImageEncoderGraph(with_export_attention(copy.deepcopy(encoder.model).float().cpu()), torch.float16),
            (torch.zeros(2, 3, *size, dtype=torch.float16),), folder / name, [ENCODER_INPUT], [ENCODER_OUTPUT],
            {'pixels': {0: _batch_dim()}})
    add_graphs(folder, {IMAGE_ENCODER: {'fp16': name}})


def export_bundle(info: ExportInfo, encoder: ClipEncoder, decoder: ObjectDecoder | None, vocab: LabelVocab | None,
                  out_dir: str | os.PathLike, precisions: Sequence[str] = ('fp32',), text_encoder: bool = True,
                  novic: NovicDecoding | None = None, calibration_frames: CalibrationFrames | None = None) -> Bundle:
    """Write the bundle for `info` into out_dir (replacing what is there), atomically. Without
    `text_encoder` the bundle serves generate mode only (no CLIP text tower: ViT-H-14's is 1.4 GB).
    With `novic` (a NOVIC checkpoint's decoder) its nouns' targets and default generation go along, so
    the runtime decodes as the reference does. ov_int8 graphs are calibrated on `calibration_frames`
    (novic_ros.int8_calibration's)."""
    unknown = set(precisions) - set(PRECISIONS)
    if unknown:
        raise ValueError(f"unknown precisions {sorted(unknown)}; choose from {', '.join(PRECISIONS)}")
    if 'ov_int8' in precisions and calibration_frames is None:
        raise ValueError("precision ov_int8 needs calibration_frames (novic_ros.int8_calibration.calibration_frames)")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + '.tmp-', dir=out_dir.parent))
    # mkdtemp makes the folder private (0700): an rsync -a copy would be unreadable by another service user.
    os.chmod(tmp, 0o777 & ~_umask())
    t0 = time.time()
    try:
        # Export copies: the live models may sit on a GPU in fp16 and must stay there.
        model = with_export_attention(copy.deepcopy(encoder.model).float().cpu().eval())
        facts = encoder.facts()
        pre = facts.preprocess
        _export(ImageEncoderGraph(model), (torch.zeros(2, 3, *pre.size),), tmp / graph_file(IMAGE_ENCODER, 'fp32'),
                [ENCODER_INPUT], [ENCODER_OUTPUT], {'pixels': {0: _batch_dim()}})
        graphs = {IMAGE_ENCODER: {'fp32': graph_file(IMAGE_ENCODER, 'fp32')}}
        trimmed = supports_trimmed_text(model)
        tokenizer, runtime, problem = (bundle_tokenizer(encoder.tokenizer, tmp, trimmed) if text_encoder
                                       else (None, None, 'left out on request (generate mode only)'))
        if problem is None:
            context = tokenizer['context_length']
            example = torch.from_numpy(runtime.tokenize(['a photo of a dog', 'x'], context))
            _export_text(model, tmp, context, trimmed, example[:, :8] if trimmed else example)
            graphs[TEXT_ENCODER] = {'fp32': graph_file(TEXT_ENCODER, 'fp32')}
        else:
            log.warning("the bundle gets no text encoder (prompted and hybrid modes need one): %s", problem)
        shutil.copyfile(open_clip_vocab_file(), tmp / VOCAB_FILE)
        dec_meta = None
        if decoder is not None:
            _export_decoder(decoder, tmp)
            for g in (DECODER_PREFILL, DECODER_STEP):
                graphs[g] = {'fp32': graph_file(g, 'fp32')}
            if isinstance(vocab, HfLabelVocab):     # a SigLIP checkpoint's labels: its tokenizer goes along
                shutil.copyfile(vocab.tokenizer_file, tmp / LABEL_TOKENIZER_FILE)
                (tmp / LABEL_VOCAB_FILE).write_text(json.dumps(vocab.to_json(LABEL_TOKENIZER_FILE)) + '\n')
            else:
                (tmp / LABEL_VOCAB_FILE).write_text(json.dumps({'clip_token_ids': vocab.clip_ids.tolist(),
                                                                 'token_texts': vocab.token_texts()}) + '\n')
            c = decoder.cfg
            dec_meta = {
                'vocab_size': c.vocab_size,
                'layers': c.layers,
                'heads': c.heads,
                'head_dim': c.width // c.heads,
                'prefix_len': c.prefix_len,
                'max_positions': c.max_positions,
                'eot': vocab.eot,
                'checkpoint_hash': info.decoder_hash,
                'config': c.to_dict(),
            }
            if novic is not None:
                np.save(tmp / NOVIC_TARGETS_FILE, novic.targets.astype(np.int32))
                dec_meta['novic'] = {'token_length': novic.token_length, 'targets_file': NOVIC_TARGETS_FILE,
                                     'default_generation': novic.default_generation}
        files = sorted(p.name for p in tmp.iterdir())          # graphs with their external data, vocabularies
        meta = {
            'format': FORMAT, 'variant': info.variant, 'key': info.key, 'created': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'clip': {'model': info.clip_model, 'pretrained': info.clip_pretrained, 'fingerprint': info.clip_fingerprint,
                     'embed_dim': facts.embed_dim, 'logit_scale': facts.logit_scale,
                     'preprocess': {**asdict(pre), 'size': list(pre.size)}},
            'decoder': dec_meta, 'tokenizer': tokenizer, 'bpe_file': VOCAB_FILE, 'max_batch': MAX_BATCH,
            'text_encoder_left_out': not text_encoder,
            'graphs': graphs, 'files': {f: file_record(tmp / f) for f in files},
            'versions': {'novic_ros': _version('novic_ros'), 'torch': torch.__version__,
                         'open_clip': open_clip.__version__, 'onnx_opset': OPSET,
                         'graph_revision': GRAPH_REVISION},
            'export_seconds': round(time.time() - t0, 1),
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + '\n')
        if 'fp16' in precisions:
            export_fp16_encoder(tmp, encoder)
        if 'int8' in precisions:
            quantize_bundle(tmp)
        if 'ov_int8' in precisions:
            quantize_bundle_ov(tmp, calibration_frames)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to %s in %.1f s", info.variant, out_dir, time.time() - t0)
    return read_bundle(out_dir)


def ensure_bundle(info: ExportInfo, encoder: ClipEncoder, decoder: ObjectDecoder | None, vocab: LabelVocab | None,
                  engine_dir: str | os.PathLike, novic: NovicDecoding | None = None) -> Bundle:
    """The cached bundle for `info` under engine_dir/onnx, exporting first when missing or stale."""
    folder = Path(engine_dir) / 'onnx' / info.key
    try:
        bundle = read_bundle(folder)
        if bundle.key == info.key:
            return bundle
    except ModelLoadError:
        pass
    log.info("exporting %s to ONNX (once; cached in %s)", info.variant, folder)
    return export_bundle(info, encoder, decoder, vocab, folder, novic=novic)


def ensure_fp16_encoder(bundle: Bundle, encoder: ClipEncoder) -> Bundle:
    """The bundle with its half-precision image encoder graph, exported on first use."""
    if not bundle.has_graph(IMAGE_ENCODER, 'fp16'):
        export_fp16_encoder(bundle.folder, encoder)
    return read_bundle(bundle.folder)
