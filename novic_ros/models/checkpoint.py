"""Decoder checkpoints: a folder with `model.safetensors` (weights and the compact vocabulary)
and `config.json` (decoder hyper-parameters, the CLIP model it was trained for, the embedding
width, the tokenizer and a summary of the training data).

Loading checks the decoder against the encoder it is paired with and says what does not match.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from ..atomic_file import atomic_write, atomic_write_text
from .decoder import DecoderConfig, ObjectDecoder
from ..core.errors import CheckpointMismatchError, DecoderLoadError
from ..core.label_tokens import TOKENIZER_NAME, LabelVocab

log = logging.getLogger(__name__)

FORMAT = 'novic_ros.decoder/1'
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
VOCAB_KEY = 'vocab.clip_token_ids'


@dataclass(frozen=True)
class ClipInfo:
    """The CLIP model a decoder was trained for."""
    model: str                 # open_clip name or 'local-dir:...' as given at training time
    pretrained: str | None
    embed_dim: int
    fingerprint: str           # hash of the CLIP weights (see clip_fingerprint); '' if unknown


@dataclass(frozen=True)
class DecoderMeta:
    decoder: DecoderConfig
    clip: ClipInfo
    tokenizer: str = TOKENIZER_NAME
    training: dict = field(default_factory=dict)   # free-form summary: data, steps, losses, date

    def to_json(self) -> dict:
        return {'format': FORMAT, 'decoder': self.decoder.to_dict(), 'clip': vars(self.clip),
                'tokenizer': self.tokenizer, 'training': self.training}

    @classmethod
    def from_json(cls, d: dict, where: str) -> 'DecoderMeta':
        if d.get('format') != FORMAT:
            raise DecoderLoadError(f"{where}: format {d.get('format')!r} is not {FORMAT!r}; "
                                 "is this a novic_ros decoder checkpoint?")
        if d.get('tokenizer') != TOKENIZER_NAME:
            raise DecoderLoadError(
                f"{where}: tokenizer {d.get('tokenizer')!r} is not supported (only {TOKENIZER_NAME})"
            )
        try:
            return cls(decoder=DecoderConfig.from_dict(d['decoder']), clip=ClipInfo(**d['clip']),
                       tokenizer=d['tokenizer'], training=d.get('training', {}))
        except (KeyError, TypeError, ValueError) as e:
            raise DecoderLoadError(f"{where}: invalid decoder config: {e}") from e


def clip_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a CLIP model's weights that tells apart checkpoints of one architecture.
    Hashed at fp16 so an fp32 and an fp16 copy of the same weights agree."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        if name.endswith(('text_projection', 'visual.proj', 'logit_scale', 'positional_embedding')):
            h.update(name.encode())
            h.update(p.detach().to(torch.float16).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_decoder(path: str | os.PathLike, decoder: ObjectDecoder, vocab: LabelVocab, meta: DecoderMeta) -> Path:
    """Write the checkpoint folder atomically enough for our use: weights first, config last,
    so a folder with a config.json always has complete weights."""
    if meta.decoder != decoder.cfg:
        raise ValueError("meta.decoder does not describe this decoder")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}
    tensors[VOCAB_KEY] = torch.from_numpy(vocab.clip_ids.copy())
    atomic_write(path / WEIGHTS_FILE, save(tensors, metadata={'format': FORMAT}))
    atomic_write_text(path / CONFIG_FILE, json.dumps(meta.to_json(), indent=2) + '\n')
    return path


def read_meta(path: str | os.PathLike) -> DecoderMeta:
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise DecoderLoadError(f"decoder checkpoint not found: {cfg_file} does not exist "
                             f"(expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE}; train one with novic-train)")
    try:
        return DecoderMeta.from_json(json.loads(cfg_file.read_text()), str(cfg_file))
    except json.JSONDecodeError as e:
        raise DecoderLoadError(f"{cfg_file} is not valid JSON: {e}") from e


def load_decoder(path: str | os.PathLike, device='cpu') -> tuple[ObjectDecoder, LabelVocab, DecoderMeta]:
    path = Path(path)
    meta = read_meta(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise DecoderLoadError(f"decoder weights not found: {weights}")
    try:
        tensors = load_file(str(weights))
    except Exception as e:
        raise DecoderLoadError(f"cannot read decoder weights {weights}: {e}") from e
    if VOCAB_KEY not in tensors:
        raise DecoderLoadError(f"{weights} has no vocabulary tensor {VOCAB_KEY!r}")
    vocab = LabelVocab(tensors.pop(VOCAB_KEY).tolist())
    if len(vocab) != meta.decoder.vocab_size:
        raise DecoderLoadError(
            f"{path}: vocabulary has {len(vocab)} tokens but the config says {meta.decoder.vocab_size}"
        )
    decoder = ObjectDecoder(meta.decoder)
    try:
        decoder.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise DecoderLoadError(f"{weights} does not fit its config.json: {e}") from e
    return decoder.to(device).eval(), vocab, meta


def check_pairing(meta: DecoderMeta, embed_dim: int, fingerprint: str, encoder_desc: str, where: str,
                  strict: bool = True) -> None:
    """Raise CheckpointMismatchError when the decoder cannot work with this encoder."""
    if meta.clip.embed_dim != embed_dim or meta.decoder.embed_dim != embed_dim:
        raise CheckpointMismatchError(
            f"decoder {where} reads {meta.decoder.embed_dim}-wide CLIP embeddings (trained for {meta.clip.model}), "
            f"but the encoder {encoder_desc} produces {embed_dim}-wide ones; pair the decoder with the CLIP model "
            "it was trained for, or train a decoder for this encoder with novic-train")
    if meta.clip.fingerprint and fingerprint and meta.clip.fingerprint != fingerprint:
        msg = (f"decoder {where} was trained for CLIP {meta.clip.model} (pretrained={meta.clip.pretrained}, "
               f"weights fingerprint {meta.clip.fingerprint}), but the encoder {encoder_desc} has fingerprint "
               f"{fingerprint}: its labels would be meaningless. Use the matching weights or retrain the decoder")
        if strict:
            raise CheckpointMismatchError(msg)
        log.warning(msg)


def checkpoint_hash(path: str | os.PathLike) -> str:
    """Content hash of a decoder checkpoint folder (config + weights), or of a NOVIC checkpoint file,
    for cache keys."""
    h = hashlib.sha256()
    path = Path(path)
    for name in ((CONFIG_FILE, WEIGHTS_FILE) if path.is_dir() else ('',)):
        with open(path / name if name else path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
    return h.hexdigest()[:16]
