"""The NOVIC authors' `.train` checkpoints (github.com/pallgeuer/novic, `torch.save` of a dict) as our
decoder: the checkpoint's own config (`cfg_flat`) decides the architecture and the CLIP embedder,
`target_config` the compact token map, `target_nouns` the vocabulary guided decoding keeps to.

The file is read with `torch.load(weights_only=True)`: a checkpoint cannot run code. What the
reference's PrefixedIterDecoder can be configured to do and our ObjectDecoder cannot is refused
by name at load time (never a silently different model); see REQUIRED and _decoder_config.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from ..core.clip_bpe import EOT_TOKEN_ID
from ..core.embedder_specs import HUB_MODELS, OPENAI_MODELS, parse_embedder_spec
from ..core.errors import ModelLoadError
from ..core.hf_hub_files import cache_root, hub_file, where_to_put
from ..core.label_tokens import HfLabelVocab, LabelVocab
from ..core.novic_decoding import spell_targets
from .decoder import DecoderConfig, ObjectDecoder

log = logging.getLogger(__name__)

# cfg_flat values our decoder reproduces exactly; any other value of these keys is refused.
REQUIRED = {
    'model': 'PrefixedIterDecoder', 'mlp_hidden_layer': 'none', 'weight_tying': True, 'layer_norm_first': True,
    'layer_bias': False, 'logits_bias': False, 'layer_activation': 'gelu', 'init_rezero_mode': 'none',
    'num_end_loss': 1,
}
NEEDED = ('embedder_spec', 'hidden_dim', 'num_layers', 'num_heads', 'feedfwd_scale', 'mlp_seq_len',
          'strictly_causal', 'vocab_quant')
TARGET_NEEDED = ('vocab_size', 'token_length', 'compact_ids', 'compact_unmap', 'pad_token_id', 'end_token_id',
                 'start_token_id')


@dataclass(frozen=True)
class NovicCheckpoint:
    path: Path
    decoder: ObjectDecoder
    vocab: LabelVocab            # compact id -> CLIP BPE token; compact 0 = end
    nouns: tuple[str, ...]       # the trained vocabulary (target_nouns past the invalid ones)
    embedder_spec: str           # e.g. openclip:apple/DFN5B-CLIP-ViT-H-14-378
    token_length: int            # target tokens including the end token
    cfg_flat: dict

    def noun_targets(self, nouns=None) -> tuple[tuple[str, ...], 'object']:
        """(nouns kept, W x token_length compact ids) for guided decoding over `nouns` (default: the
        vocabulary). Nouns the vocabulary cannot spell or that are too long are left out (as the
        reference does), with one warning."""
        nouns = self.nouns if nouns is None else tuple(dict.fromkeys(nouns))
        return spell_targets(self.vocab, nouns, self.token_length)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """torch.load with weights_only=True (tensors, dtypes and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"NOVIC checkpoint not found: {path} (download it with novic-fetch, e.g. novic-fetch ye2)")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        raise ModelLoadError(f"{path}: refused to load: it holds something other than tensors and plain data "
                             f"(weights_only=True): {str(e).splitlines()[0]}") from None
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot read as a torch checkpoint: {e}") from None
    if not isinstance(ckpt, dict):
        raise ModelLoadError(f"{path}: not a NOVIC checkpoint (a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in ('cfg_flat', 'target_config', 'model_state_dict', 'target_nouns', 'num_invalid_target_nouns')
               if k not in ckpt]
    if missing:
        raise ModelLoadError(f"{path}: not a NOVIC checkpoint: it lacks {', '.join(missing)}")
    return ckpt


def _decoder_config(cfg: dict, tc: dict, embed_dim: int, where: str) -> DecoderConfig:
    missing = [k for k in NEEDED if k not in cfg]
    if missing:
        raise ModelLoadError(f"{where}: cfg_flat lacks {', '.join(missing)}")
    for key, want in REQUIRED.items():
        if key in cfg and cfg[key] != want:
            raise ModelLoadError(
                f"{where}: cfg_flat {key}={cfg[key]!r} is not supported (novic_ros runs {key}={want!r})"
            )
        if key not in cfg and key == 'model':
            raise ModelLoadError(f"{where}: cfg_flat has no 'model' (the decoder type)")
    if not tc.get('compact_ids') or tc.get('pad_token_id') != 0 or tc.get('end_token_id') != 0 \
            or tc.get('start_token_id') is not None:
        raise ModelLoadError(
            f"{where}: target_config with compact_ids={tc.get('compact_ids')}, "
            f"pad/end/start={tc.get('pad_token_id')}/{tc.get('end_token_id')}/{tc.get('start_token_id')} "
            "is not supported (PrefixedIterDecoder's: compact, pad = end = 0, no start token)"
        )
    try:
        ratio = float(Fraction(str(cfg['feedfwd_scale'])))
    except (ValueError, ZeroDivisionError):
        raise ModelLoadError(f"{where}: cfg_flat feedfwd_scale={cfg['feedfwd_scale']!r} is not a fraction") from None
    try:
        return DecoderConfig(embed_dim=embed_dim, vocab_size=int(tc['vocab_size']), width=int(cfg['hidden_dim']),
                             layers=int(cfg['num_layers']), heads=int(cfg['num_heads']), mlp_ratio=ratio,
                             prefix_len=int(cfg['mlp_seq_len']), max_tokens=int(tc['token_length']) - 1, dropout=0.0,
                             bias=False, prefix_mlp='linear', causal_prefix=bool(cfg['strictly_causal']))
    except ValueError as e:
        raise ModelLoadError(f"{where}: {e}") from None


def _state_dict(sd: dict, cfg: DecoderConfig, quant: bool, where: str) -> dict:
    V = cfg.vocab_size
    logits = sd.get('logits_linear.weight')
    if logits is None:
        raise ModelLoadError(f"{where}: model_state_dict has no logits_linear.weight")
    if quant:
        if logits[V:].count_nonzero():
            raise ModelLoadError(f"{where}: vocab_quant padding rows of logits_linear.weight are not zero")
        logits = logits[:V]
    out = {
        'prefix.0.weight': sd.get('embed_mlp.mlp.0.weight'),
        'token_embedding.weight': logits,
        'pos_embedding': sd.get('pos_embedding.embedding.weight'),
        'ln_final.weight': sd.get('transformer.norm.weight'),
    }
    names = {'self_attn.in_proj_weight': 'attn.qkv.weight', 'self_attn.out_proj.weight': 'attn.proj.weight',
             'linear1.weight': 'mlp.0.weight', 'linear2.weight': 'mlp.2.weight', 'norm1.weight': 'ln1.weight',
             'norm2.weight': 'ln2.weight'}
    for i in range(cfg.layers):
        for theirs, ours in names.items():
            out[f'blocks.{i}.{ours}'] = sd.get(f'transformer.layers.{i}.{theirs}')
    absent = [k for k, v in out.items() if v is None]
    if absent:
        raise ModelLoadError(f"{where}: model_state_dict lacks the weights for {', '.join(absent[:4])}")
    known = {'causality_mask', 'embed_mlp.mlp.0.weight', 'logits_linear.weight', 'pos_embedding.embedding.weight',
             'transformer.norm.weight'} | {f'transformer.layers.{i}.{t}' for i in range(cfg.layers) for t in names}
    extra = sorted(set(sd) - known)
    if extra:
        raise ModelLoadError(f"{where}: model_state_dict has weights novic_ros does not run: {', '.join(extra[:4])}")
    out['input_shift'] = torch.zeros(cfg.embed_dim)
    return {k: v.float() for k, v in out.items()}


def _hf_label_vocab(repo_id: str, unmap: list[int], where: str) -> HfLabelVocab:
    """The targets of a checkpoint whose embedder has a Hugging Face tokenizer (SigLIP): that tokenizer
    (tokenizer.json of the repository its open_clip config names) with the config's text cleaning."""
    config_file = hub_file(repo_id, 'open_clip_config.json')
    if config_file is None:
        raise ModelLoadError(f"{where}: its embedder {repo_id} spells labels with its own tokenizer, and "
                             f"{repo_id}'s open_clip_config.json is not in the Hugging Face cache ({cache_root()}); "
                             + where_to_put(repo_id, ['open_clip_config.json', 'tokenizer.json']))
    text_cfg = json.loads(Path(config_file).read_text()).get('model_cfg', {}).get('text_cfg', {})
    tok_repo = text_cfg.get('hf_tokenizer_name') or repo_id
    clean = (text_cfg.get('tokenizer_kwargs') or {}).get('clean', 'whitespace')
    tok_file = hub_file(tok_repo, 'tokenizer.json')
    if tok_file is None:
        raise ModelLoadError(f"{where}: the tokenizer of {repo_id} ({tok_repo}'s tokenizer.json) is not in the "
                             f"Hugging Face cache ({cache_root()}); " + where_to_put(tok_repo, ['tokenizer.json']))
    try:
        return HfLabelVocab(unmap, tok_file, clean)
    except ValueError as e:
        raise ModelLoadError(f"{where}: compact_unmap is not a token map of {tok_repo}: {e}") from None


def load_novic_checkpoint(path: str | os.PathLike) -> NovicCheckpoint:
    """Load a NOVIC `.train`/`.model` checkpoint as an ObjectDecoder (fp32, eval, CPU). Raises
    ModelLoadError naming the unsupported decoder type, embedder or config value."""
    path = Path(path)
    where = str(path)
    ckpt = read_checkpoint(path)
    cfg, tc = dict(ckpt['cfg_flat']), dict(ckpt['target_config'])
    spec = cfg.get('embedder_spec')
    if not isinstance(spec, str):
        raise ModelLoadError(f"{where}: cfg_flat has no embedder_spec")
    try:
        kind, name = parse_embedder_spec(spec)
    except ModelLoadError as e:
        raise ModelLoadError(f"{where}: {e}") from None
    hub = HUB_MODELS.get(name) if kind == 'openclip' else None
    if (
        kind == 'openai'
        and name not in OPENAI_MODELS
        or kind == 'openclip'
        and hub is None
        or kind not in ('openai', 'openclip')
    ):
        raise ModelLoadError(
            f"{where}: embedder {spec!r} is not supported (supported: "
            f"{', '.join('openclip:' + r for r in HUB_MODELS)}, openai:{'/openai:'.join(OPENAI_MODELS)})"
        )
    missing = [k for k in TARGET_NEEDED if k not in tc]
    if missing:
        raise ModelLoadError(f"{where}: target_config lacks {', '.join(missing)}")
    sd = ckpt['model_state_dict']
    w = sd.get('embed_mlp.mlp.0.weight')
    if w is None:
        raise ModelLoadError(f"{where}: model_state_dict has no embed_mlp.mlp.0.weight (the prefix projection)")
    dcfg = _decoder_config(cfg, tc, int(w.shape[1]), where)
    unmap = [int(t) for t in torch.as_tensor(tc['compact_unmap']).tolist()]
    if len(unmap) != dcfg.vocab_size:
        raise ModelLoadError(f"{where}: compact_unmap has {len(unmap)} tokens, vocab_size says {dcfg.vocab_size}")
    if hub is not None and hub.tokenizer != 'clip_bpe':
        vocab = _hf_label_vocab(name, unmap, where)
    else:
        # Compact 0 is pad = end whatever the tokenizer's pad id: it decodes as CLIP's end-of-text.
        try:
            vocab = LabelVocab([EOT_TOKEN_ID] + unmap[1:])
        except ValueError as e:
            raise ModelLoadError(f"{where}: compact_unmap is not a CLIP token map: {e}") from None
    decoder = ObjectDecoder(dcfg)
    try:
        decoder.load_state_dict(_state_dict(sd, dcfg, bool(cfg['vocab_quant']), where), strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{where}: weights do not fit the checkpoint's own config: {e}") from None
    n_bad = int(ckpt['num_invalid_target_nouns'])
    nouns = tuple(str(n) for n in list(ckpt['target_nouns'])[n_bad:])
    return NovicCheckpoint(path, decoder.eval(), vocab, nouns, spec, int(tc['token_length']), cfg)
