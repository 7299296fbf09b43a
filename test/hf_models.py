"""Tiny random models in the architecture families of the NOVIC authors' embedders, laid out in a
Hugging Face hub cache as open_clip and transformers read it offline (models--ORG--NAME/refs/main,
snapshots/REV/...), under the real repository names. Nothing is downloaded; the weights are seeded
random, so embeddings and labels mean nothing, but every file is read by the real loading code.

- DFN-shaped: open_clip's CLIP with QuickGELU at a non-224 size with 14 px patches, squash resize,
  bicubic, OpenAI mean/std, CLIP BPE tokenizer (as apple/DFN5B-CLIP-ViT-H-14-378).
- SigLIP-shaped: a timm ViT tower with attention-pool (MAP) head, open_clip's non-causal text tower
  pooled at the last token, and a T5-style SentencePiece (Unigram) tokenizer.json whose pad is its
  end token, cleaned with 'canonicalize' (as timm/ViT-B-16-SigLIP).
"""
from __future__ import annotations

import json
from pathlib import Path

REV = '0123456789abcdef0123456789abcdef01234567'
DFN_REPO = 'apple/DFN5B-CLIP-ViT-H-14-378'
SIGLIP_REPO = 'timm/ViT-B-16-SigLIP'
SO400M_REPO = 'timm/ViT-SO400M-14-SigLIP'
TINY_TIMM = 'novic_test_tiny_siglip'
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

DFN_CFG = {
    'embed_dim': 32, 'quick_gelu': True,
    'vision_cfg': {'image_size': 42, 'layers': 1, 'width': 64, 'head_width': 32, 'patch_size': 14},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1},
}
SIGLIP_CFG = {
    'embed_dim': 32, 'init_logit_bias': -10, 'custom_text': True,
    'vision_cfg': {'image_size': 32, 'timm_model_name': TINY_TIMM, 'timm_model_pretrained': False,
                   'timm_pool': 'map', 'timm_proj': 'none'},
    'text_cfg': {'context_length': 16, 'vocab_size': 128, 'hf_tokenizer_name': SIGLIP_REPO,
                 'tokenizer_kwargs': {'clean': 'canonicalize'}, 'width': 32, 'heads': 2, 'layers': 1,
                 'no_causal_mask': True, 'proj_bias': True, 'pool_type': 'last', 'norm_kwargs': {'eps': 1e-6}},
}
WORDS = ('a', 'photo', 'of', 'the', 'dog', 'cat', 'red', 'apple', 'car', 'hot', 'air', 'balloon', 'traffic', 'light',
         'tree', 'coffee', 'mug', 'fire', 'truck', 'bicycle', 'golden', 'retriever', 'very', 'long', 'caption', 'x',
         'ray', 'robot', 'tom', 'jerry', 'and', 'emoji', 'face', 'cafe', 'creme', 'clock')
LETTERS = tuple('abcdefghijklmnopqrstuvwxyz0123456789')


def register_tiny_timm() -> None:
    """A two-layer timm ViT with SigLIP's head (no class token, attention pooling), 32 px."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import _create_vision_transformer
    if timm.is_model(TINY_TIMM):
        return

    def novic_test_tiny_siglip(pretrained=False, **kwargs):
        args = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, class_token=False, global_pool='map')
        return _create_vision_transformer(TINY_TIMM, pretrained=False, **dict(args, **kwargs))
    novic_test_tiny_siglip.__module__ = 'timm.models.vision_transformer'
    register_model(novic_test_tiny_siglip)


def snapshot(cache: Path, repo_id: str) -> Path:
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    (repo / 'refs').mkdir(parents=True, exist_ok=True)
    (repo / 'refs' / 'main').write_text(REV)
    snap = repo / 'snapshots' / REV
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_t5_tokenizer(folder: Path) -> None:
    """A T5-style SentencePiece Unigram tokenizer (Metaspace, '</s>' appended, pad = '</s>' = 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    pieces = [('<pad>', 0.0), ('</s>', 0.0), ('<unk>', 0.0), ('\u2581', -2.0)]
    pieces += [('\u2581' + w, -3.0 - 0.01 * i) for i, w in enumerate(WORDS)]
    pieces += [(c, -8.0 - 0.01 * i) for i, c in enumerate(LETTERS)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='\u2581', prepend_scheme='always')
    tok.decoder = decoders.Metaspace(replacement='\u2581', prepend_scheme='always')
    tok.post_processor = processors.TemplateProcessing(single='$A </s>', pair='$A </s> $B </s>',
                                                       special_tokens=[('</s>', 1)])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / 'tokenizer.json'))
    special = {'eos_token': '</s>', 'pad_token': '</s>', 'unk_token': '<unk>'}
    (folder / 'tokenizer_config.json').write_text(json.dumps({'tokenizer_class': 'T5Tokenizer', 'extra_ids': 0,
                                                              'model_max_length': 64, **special}))
    (folder / 'special_tokens_map.json').write_text(json.dumps(special))
    (folder / 'config.json').write_text(json.dumps({'architecture': TINY_TIMM, 'num_classes': 0}))   # timm's repo file


def _save_weights(model, path: Path) -> None:
    import torch
    if path.suffix == '.bin':
        torch.save(model.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def dfn_cfg(image_size: int | None = None) -> dict:
    """DFN_CFG, at `image_size` pixels when given (378: the real model's input, 27 x 27 patches)."""
    cfg = json.loads(json.dumps(DFN_CFG))
    if image_size:
        cfg['vision_cfg']['image_size'] = image_size
    return cfg


def make_dfn_repo(cache: Path, seed: int = 0, weights: bool = True, image_size: int | None = None) -> Path:
    import open_clip
    import torch
    snap = snapshot(cache, DFN_REPO)
    cfg = dfn_cfg(image_size)
    (snap / 'open_clip_config.json').write_text(
        json.dumps(
            {
                'model_cfg': cfg,
                'preprocess_cfg': {
                    'mean': OPENAI_MEAN,
                    'std': OPENAI_STD,
                    'interpolation': 'bicubic',
                    'resize_mode': 'squash',
                },
            }
        )
    )
    if weights:
        torch.manual_seed(seed)
        _save_weights(open_clip.model.CLIP(**cfg), snap / 'open_clip_pytorch_model.bin')
    return snap


def make_siglip_repo(cache: Path, repo_id: str = SIGLIP_REPO, seed: int = 0, tokenizer: bool = True) -> Path:
    """The SigLIP-shaped model; its tokenizer lives in timm/ViT-B-16-SigLIP (SO400M's config points there too)."""
    import open_clip
    import torch
    register_tiny_timm()
    snap = snapshot(cache, repo_id)
    (snap / 'open_clip_config.json').write_text(json.dumps({
        'model_cfg': SIGLIP_CFG,
        'preprocess_cfg': {'mean': [0.5] * 3, 'std': [0.5] * 3, 'interpolation': 'bicubic', 'resize_mode': 'squash'}}))
    torch.manual_seed(seed)
    _save_weights(open_clip.model.CustomTextCLIP(**{k: v for k, v in SIGLIP_CFG.items() if k != 'custom_text'}),
                  snap / 'open_clip_model.safetensors')
    if tokenizer:
        write_t5_tokenizer(snapshot(cache, SIGLIP_REPO))
    return snap
