"""Export a variant to ONNX: the image encoder, and the decoder as two graphs that keep the
key/value cache (prefill: embeddings -> first logits + cache; step: one token + past cache ->
logits + present cache), all with dynamic batch. The graphs are cached under
<engine_dir>/onnx/<key>/ with a metadata JSON; the key changes with the CLIP weights, the decoder
checkpoint, the opset and the exporter version, so a stale export is never reused.
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
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.checkpoint import checkpoint_hash, clip_fingerprint
from ..core.decoder import ObjectDecoder
from ..core.kv_cache import ConcatKVCache
from .base import (ENCODER_INPUT, ENCODER_OUTPUT, LOGITS, PAST_K, PAST_V, PREFILL_INPUT, PRESENT_K, PRESENT_V,
                   STEP_TOKEN_INPUT)

log = logging.getLogger(__name__)
OPSET = 18
ENCODER_FILE, PREFILL_FILE, STEP_FILE, META_FILE = 'image_encoder.onnx', 'decoder_prefill.onnx', 'decoder_step.onnx', 'export.json'
ENCODER_FP16_FILE = 'image_encoder_fp16.onnx'
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


@dataclass(frozen=True)
class ExportInfo:
    variant: str
    clip_model: str
    clip_pretrained: str | None
    clip_fingerprint: str
    decoder_hash: str
    opset: int
    torch_version: str
    image_size: tuple[int, int]
    embed_dim: int
    vocab_size: int
    decoder_layers: int
    decoder_heads: int
    head_dim: int
    prefix_len: int
    max_positions: int
    eot: int
    max_batch: int
    created: str = ''

    @property
    def key(self) -> str:
        blob = f"{self.clip_fingerprint}-{self.decoder_hash}-{self.opset}-{self.torch_version}"
        return f"{self.variant}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def export_info(variant: str, encoder, decoder: ObjectDecoder | None, decoder_dir, eot: int) -> ExportInfo:
    """Describe the export; without a decoder (prompted mode) only the image encoder is exported."""
    c = decoder.cfg if decoder is not None else None
    return ExportInfo(variant=variant, clip_model=encoder.spec.model, clip_pretrained=encoder.spec.pretrained,
                      clip_fingerprint=clip_fingerprint(encoder.model),
                      decoder_hash=checkpoint_hash(decoder_dir) if c else 'none',
                      opset=OPSET, torch_version=torch.__version__, image_size=tuple(encoder.preprocess_cfg.size),
                      embed_dim=encoder.embed_dim, vocab_size=c.vocab_size if c else 0,
                      decoder_layers=c.layers if c else 0, decoder_heads=c.heads if c else 0,
                      head_dim=c.width // c.heads if c else 0, prefix_len=c.prefix_len if c else 0,
                      max_positions=c.max_positions if c else 0, eot=eot, max_batch=MAX_BATCH)


def _export(module, args, path, input_names, output_names, dynamic_shapes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')    # the exporter is chatty about axis renaming
        torch.onnx.export(module.eval(), args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=OPSET, verbose=False)


def export_all(info: ExportInfo, encoder, decoder: ObjectDecoder | None, out_dir: Path) -> Path:
    """Write the graphs (encoder; prefill and step when there is a decoder) and the metadata into out_dir, atomically (a temporary folder renamed
    into place), so a crash never leaves a half-written export that is later loaded."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + '.tmp-', dir=out_dir.parent))
    t0 = time.time()
    try:
        batch = torch.export.Dim('batch', min=1, max=info.max_batch)
        # Export copies: the live models may sit on a GPU in fp16 and must stay there.
        model = copy.deepcopy(encoder.model).float().cpu()
        pixels = torch.zeros(2, 3, *info.image_size)
        _export(ImageEncoderGraph(model), (pixels,), tmp / ENCODER_FILE, [ENCODER_INPUT], [ENCODER_OUTPUT],
                {'pixels': {0: batch}})
        files = [ENCODER_FILE]
        if decoder is not None:
            _export_decoder(info, decoder, tmp, batch)
            files += [PREFILL_FILE, STEP_FILE]
        meta = {**asdict(info), 'created': time.strftime('%Y-%m-%dT%H:%M:%S'), 'key': info.key,
                'files': files, 'export_seconds': round(time.time() - t0, 1)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + '\n')
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to %s in %.1f s", info.variant, out_dir, time.time() - t0)
    return out_dir


def _export_decoder(info: ExportInfo, decoder: ObjectDecoder, folder: Path, batch) -> None:
    past = torch.export.Dim('past', min=1, max=info.max_positions - 1)
    dec = copy.deepcopy(decoder).float().cpu().eval()
    embeds = F.normalize(torch.randn(2, info.embed_dim), dim=-1)
    _export(PrefillGraph(dec), (embeds,), folder / PREFILL_FILE, [PREFILL_INPUT], [LOGITS, PRESENT_K, PRESENT_V],
            {'embeddings': {0: batch}})
    with torch.no_grad():
        logits, k, v = PrefillGraph(dec)(embeds)
    _export(StepGraph(dec), (logits.argmax(-1), k, v), folder / STEP_FILE, [STEP_TOKEN_INPUT, PAST_K, PAST_V],
            [LOGITS, PRESENT_K, PRESENT_V],
            {'tokens': {0: batch}, 'past_k': {1: batch, 3: past}, 'past_v': {1: batch, 3: past}})


def ensure_fp16_encoder(folder: Path, encoder) -> Path:
    """The half-precision image encoder graph of an export (for TensorRT fp16), exported on first use."""
    path = Path(folder) / ENCODER_FP16_FILE
    if path.is_file():
        return path
    meta = read_export(folder)
    batch = torch.export.Dim('batch', min=1, max=meta['max_batch'])
    tmp = path.with_suffix('.tmp.onnx')
    _export(ImageEncoderGraph(copy.deepcopy(encoder.model).float().cpu(), torch.float16),
            (torch.zeros(2, 3, *meta['image_size'], dtype=torch.float16),), tmp, [ENCODER_INPUT], [ENCODER_OUTPUT],
            {'pixels': {0: batch}})
    os.replace(tmp, path)
    return path


def read_export(folder: Path) -> dict | None:
    """The metadata of a complete export in `folder`, or None."""
    meta = Path(folder) / META_FILE
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text())
    if not all((Path(folder) / f).is_file() for f in data.get('files', [])):
        return None
    return data


def ensure_export(info: ExportInfo, encoder, decoder: ObjectDecoder | None, engine_dir: Path) -> Path:
    """The export folder for `info` under engine_dir/onnx, exporting first when missing or stale."""
    folder = Path(engine_dir) / 'onnx' / info.key
    meta = read_export(folder)
    if meta is not None and meta.get('key') == info.key:
        return folder
    log.info("exporting %s to ONNX (once; cached in %s)", info.variant, folder)
    return export_all(info, encoder, decoder, folder)
