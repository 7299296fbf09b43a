"""CLIP image and text encoders from open_clip, loaded the way open_clip users expect.

A model is named by open_clip model name plus pretrained tag ('ViT-B-32', 'openai'), by a
model name plus a local checkpoint file, or by 'local-dir:/path' (a folder holding
open_clip_config.json and weights). Embeddings come back L2-normalised, in float32.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.pretrained import get_pretrained_cfg
from open_clip.transformer import text_global_pool

from .checkpoint import clip_fingerprint
from ..core.clip_properties import ClipFacts
from ..core.errors import ModelLoadError
from ..core.hf_hub_files import require_model_files, where_to_put
from ..core.preprocess import PreprocessConfig
from ..core.variants import HF_HUB, LOCAL_DIR, ClipSpec

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available. Asking for CUDA without it is an error that names the fix."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} was asked for but CUDA is not available; use device 'cpu' or 'auto'")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': fp16 on a GPU, fp32 on the CPU (ClipEncoder refuses fp16 without a GPU)."""
    if precision == 'auto':
        return 'fp16' if device.type == 'cuda' else 'fp32'
    return precision


RANDOM = 'random'     # `pretrained: random[:SEED]`: seeded random weights, for smoke tests (labels are meaningless)


def random_init_seed(pretrained: str | None) -> int | None:
    """The seed of `pretrained: random` (0) or `random:SEED`; None for real weights."""
    if not pretrained or not (pretrained == RANDOM or pretrained.startswith(RANDOM + ':')):
        return None
    try:
        return int(pretrained[len(RANDOM) + 1:] or 0)
    except ValueError:
        raise ModelLoadError(
            f"pretrained {pretrained!r}: expected random or random:SEED with an integer SEED"
        ) from None


MODEL_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'model_configs')


def register_model_configs() -> None:
    """Make our own open_clip architectures (novic-toy-clip) known to open_clip by name."""
    if 'novic-toy-clip' not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIGS)


def _load_open_clip(spec: ClipSpec, device: torch.device, precision: str, load_weights: bool):
    register_model_configs()
    name = spec.model
    if name.startswith(LOCAL_DIR) and not os.path.isdir(name[len(LOCAL_DIR):]):
        raise ModelLoadError(f"CLIP model folder {name[len(LOCAL_DIR):]!r} does not exist "
                             "(it should hold open_clip_config.json and open_clip_model.safetensors)")
    seed = random_init_seed(spec.pretrained)
    pretrained = spec.pretrained if load_weights and seed is None else None
    if name.startswith(HF_HUB):
        # open_clip would build a hub model with random weights (and only log it) where the weights
        # file cannot be had: check every file first, so a missing one is an error naming it.
        require_model_files(name[len(HF_HUB):], weights=load_weights and seed is None)
    try:
        # Random initialisation is seeded, so every process builds the same weights (one fingerprint,
        # one embedding cache); real weights overwrite them. fork_rng leaves the caller's RNG alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed or 0)
            model = open_clip.create_model(name, pretrained=pretrained, precision=precision, device=device,
                                           load_weights=load_weights and seed is None)
        if seed is not None:
            log.warning("CLIP %s has seeded random weights (seed %d): for smoke tests only, its labels mean nothing",
                        name, seed)
        if spec.preprocess_tag:
            model.visual.preprocess_cfg = tag_preprocess_cfg(name, spec.preprocess_tag, model.visual.preprocess_cfg)
    except ModelLoadError:
        raise
    except Exception as e:  # open_clip raises RuntimeError, ValueError, OSError, HF errors...
        hint = ''
        if pretrained and not os.path.exists(pretrained):
            hint = (f"; open_clip looks for tag {pretrained!r} in its Hugging Face cache (HF_HOME) and downloads it "
                    "when online. Offline, download the weights elsewhere and set `pretrained` to the file path")
        raise ModelLoadError(f"cannot load CLIP model {spec.describe()}: {e}{hint}") from e
    try:
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as e:  # transformers raises OSError, ValueError, ImportError...
        raise ModelLoadError(f"cannot load the tokenizer of CLIP {spec.describe()}: {e}{_tokenizer_hint(name)}") from e
    return model, tokenizer


def _tokenizer_hint(name: str) -> str:
    """Where the files of a Hugging Face tokenizer go, for the error that says one is missing."""
    try:
        repo = (open_clip.get_model_config(name) or {}).get('text_cfg', {}).get('hf_tokenizer_name')
    except Exception:  # noqa: BLE001 - the hint is best effort; the error itself is raised regardless
        repo = None
    if not repo:
        return ''
    if name.startswith(LOCAL_DIR):
        return (f"; open_clip reads this model's tokenizer from its folder: put the tokenizer files of {repo} "
                f"(tokenizer.json, tokenizer_config.json, config.json) in {name[len(LOCAL_DIR):]}")
    return "; transformers reads it from the Hugging Face cache: " + where_to_put(
        repo, ['tokenizer.json', 'tokenizer_config.json', 'config.json'])


def tag_preprocess_cfg(model_name: str, tag: str, current: dict) -> dict:
    """`current` preprocessing with what open_clip's pretrained tag `tag` of `model_name` prescribes
    (mean, std, interpolation, resize mode): what open_clip applies when it loads that tag itself."""
    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        raise ModelLoadError(f"open_clip knows no pretrained tag {tag!r} for {model_name} (its tags: "
                             f"{', '.join(t for m, t in open_clip.list_pretrained() if m == model_name) or 'none'})")
    return {**current, **{k: cfg[k] for k in ('mean', 'std', 'interpolation', 'resize_mode') if k in cfg}}


class ClipEncoder:
    """An open_clip model in eval mode, with its preprocessing config, tokenizer and logit scale."""

    def __init__(self, spec: ClipSpec, device: str | torch.device = 'cpu', precision: str = 'fp32',
                 load_weights: bool = True):
        self.spec = spec
        self.device = resolve_device(device) if isinstance(device, str) else device
        if precision == 'fp16' and self.device.type != 'cuda':
            raise ModelLoadError("precision fp16 needs a CUDA device; use precision fp32 on the CPU")
        self.precision = precision
        self.model, self.tokenizer = _load_open_clip(spec, self.device, precision, load_weights)
        self.model.eval()
        self.preprocess_cfg = PreprocessConfig.from_open_clip(self.model.visual.preprocess_cfg)
        self.embed_dim = int(self._probe_embed_dim())
        self.model.requires_grad_(False)
        self.logit_scale = float(self.model.logit_scale.detach().exp()) if hasattr(self.model, 'logit_scale') else 100.0
        self.input_dtype = torch.float16 if precision == 'fp16' else torch.float32

    def facts(self) -> ClipFacts:
        return ClipFacts(self.preprocess_cfg, self.logit_scale, self.embed_dim, clip_fingerprint(self.model))

    def _probe_embed_dim(self) -> int:
        proj = getattr(self.model.visual, 'proj', None)
        if isinstance(proj, torch.Tensor):
            return proj.shape[1]
        cfg = getattr(self.model, 'embed_dim', None)
        if cfg:
            return cfg
        with torch.inference_mode():
            dummy = torch.zeros(1, 3, *self.preprocess_cfg.size, device=self.device,
                                dtype=torch.float16 if self.precision == 'fp16' else torch.float32)
            return self.model.encode_image(dummy).shape[-1]

    @torch.inference_mode()
    def encode_images(self, pixels) -> torch.Tensor:
        """B x 3 x H x W normalised pixels (tensor or numpy, as Preprocessor makes them) -> B x E unit vectors
        (float32)."""
        if isinstance(pixels, np.ndarray):
            pixels = torch.from_numpy(pixels)
        feats = self.model.encode_image(pixels.to(self.device, self.input_dtype))
        return F.normalize(feats.float(), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, trim: bool = True,
                     on_batch: Callable[[int], object] | None = None) -> torch.Tensor:
        """N texts -> N x E unit vectors (float32). With `trim`, batches of similar length are encoded at
        their real token length instead of the full context (same result, see encode_tokens_trimmed).
        `on_batch(n)` is called after each batch of n texts (progress bars)."""
        tokens = self.tokenize(texts)
        return self.encode_tokens(tokens, batch_size=batch_size, trim=trim, on_batch=on_batch)

    @torch.inference_mode()
    def encode_tokens(self, tokens: torch.Tensor, batch_size: int = 256, trim: bool = True,
                      on_batch: Callable[[int], object] | None = None) -> torch.Tensor:
        out = torch.empty((tokens.shape[0], self.embed_dim), dtype=torch.float32)
        trim = trim and supports_trimmed_text(self.model)
        # Sorting by length lets each batch be cut to its own longest prompt.
        order = torch.argsort(text_lengths(self.model, tokens), descending=True) if trim else torch.arange(len(tokens))
        for start in range(0, len(tokens), batch_size):
            idx = order[start:start + batch_size]
            batch = tokens[idx].to(self.device)
            feats = encode_tokens_trimmed(self.model, batch) if trim else self.model.encode_text(batch)
            out[idx] = F.normalize(feats.float(), dim=-1).cpu()
            if on_batch is not None:
                on_batch(len(idx))
        return out


# --- Text encoding at the real token length ---------------------------------------------------
# CLIP's text tower is causal and pools at end-of-text, so the positions after the last
# end-of-text in a batch cannot change the pooled feature. Running the tower on tokens[:, :L]
# (L = 1 + last end-of-text position) with the causal mask and positional embedding cut to L
# gives the same embedding as the full context (77), at a fraction of the cost for short prompts.

def _text_parts(model):
    """(tower, pool_type, eos_id) for open_clip CLIP (text tower inline) or CustomTextCLIP (model.text)."""
    tower = getattr(model, 'text', None)
    if tower is not None and hasattr(tower, 'token_embedding'):
        return tower, getattr(tower, 'pool_type', 'argmax'), getattr(tower, 'eos_id', None)
    if hasattr(model, 'token_embedding') and hasattr(model, 'transformer'):
        return model, getattr(model, 'text_pool_type', 'argmax'), getattr(model, 'text_eos_id', None)
    return None, None, None


def supports_trimmed_text(model) -> bool:
    tower, pool, _ = _text_parts(model)
    return (tower is not None and getattr(tower, 'attn_mask', None) is not None
            and getattr(tower, 'cls_emb', None) is None and pool in ('argmax', 'eos'))


def text_lengths(model, tokens: torch.Tensor) -> torch.Tensor:
    """Per-row length up to and including the pooled (end-of-text) token."""
    _, pool, eos = _text_parts(model)
    pos = (tokens == eos).int().argmax(dim=-1) if pool == 'eos' else tokens.argmax(dim=-1)
    return pos + 1


def encode_tokens_trimmed(model, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text(tokens) (unnormalised), computed on the first L positions only."""
    return encode_tokens_at_length(model, tokens[:, :int(text_lengths(model, tokens).max())])


def encode_tokens_at_length(model, t: torch.Tensor) -> torch.Tensor:
    """The text tower on B x L tokens already cut after the last end-of-text (the exported text graph)."""
    tower, pool, eos = _text_parts(model)
    length = t.shape[1]
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(t).to(cast) + tower.positional_embedding[:length].to(cast)   # B x L x D
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = tower.ln_final(x)
    x = text_global_pool(x, t, pool, eos_token_id=eos)               # B x D
    proj = tower.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
