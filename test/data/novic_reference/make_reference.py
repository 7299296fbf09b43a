"""Run once, outside the test suite: builds a small NOVIC checkpoint and its expected outputs with the
NOVIC reference implementation's own code (github.com/pallgeuer/novic, see PROVENANCE.md).

    REF=/path/to/novic python test/data/novic_reference/make_reference.py OUT_DIR

Needs the reference's inference dependencies (torch, open_clip, transformers, hydra-core, omegaconf,
unidecode, ...). `wandb` is replaced by an empty stub module (training-only). The embedder is the
tiny DFN-shaped CLIP of test/hf_models.py under the real repository name in a temporary Hugging Face
cache (seeded random weights), with a CLIP tokenizer built from open_clip's own BPE file."""
from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST = HERE.parent.parent
REF = Path(os.environ['REF'])
OUT = Path(sys.argv[1])
GENCFGS = ['beam_k10_vnone_gp_t1_a0', 'greedy_k1_vnone_gn_t1_a0', 'greedy_k1_vnone_gp_t1_a0', 'beam_k5_vnone_gn_t1_a0',
           'beam_k10_vnone_gr_t1_a0', 'beam_k10_vtgt1_gp_t1_a0', 'beam_k10_vtok0.5_gp_t1_a0', 'beam_k6_vnone_gp_t2_a0',
           'beam_k6_vnone_gp_t1_a0.5', 'beam_k8_vnone_gn_t0.5_a1']
GUIDE = ['guided', 'label', 'list']   # replaced below by real nouns of the vocabulary


def clip_tokenizer(folder: Path) -> None:
    """A Hugging Face CLIP tokenizer from open_clip's bundled BPE (same vocabulary and merges)."""
    import open_clip.tokenizer as oct
    from transformers import CLIPTokenizer
    tok = oct.SimpleTokenizer()
    merges = gzip.open(oct.default_bpe()).read().decode('utf-8').split('\n')[1:49152 - 256 - 2 + 1]
    names = {'<start_of_text>': '<|startoftext|>', '<end_of_text>': '<|endoftext|>'}   # open_clip's -> CLIP's
    (folder / 'vocab.json').write_text(json.dumps({names.get(k, k): v for k, v in tok.encoder.items()}))
    (folder / 'merges.txt').write_text('#version: 0.2\n' + '\n'.join(merges) + '\n')
    hf = CLIPTokenizer(str(folder / 'vocab.json'), str(folder / 'merges.txt'))
    assert hf('hot air balloon')['input_ids'] == [49406] + tok.encode('hot air balloon') + [49407]
    assert hf.pad_token_id == 49407
    hf.save_pretrained(str(folder))
    (folder / 'config.json').write_text(json.dumps({'model_type': 'clip'}))


def main():
    sys.path[:0] = [str(TEST), str(REF)]
    sys.modules['wandb'] = types.ModuleType('wandb')
    cache = Path(tempfile.mkdtemp()) / 'hub'
    # Before anything imports huggingface_hub, which reads these once.
    os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent))
    from hf_models import make_dfn_repo
    snap = make_dfn_repo(cache, seed=0)
    clip_tokenizer(snap)
    import numpy as np
    import omegaconf
    import torch
    import PIL.Image
    import embedders, embedding_dataset, infer, train, utils_config   # the reference's modules
    from novic_format import noun_list

    nouns = noun_list()
    cfg = omegaconf.OmegaConf.load(REF / 'config' / 'train.yaml')
    for key in ('hydra', 'defaults'):      # hydra's own keys: not part of a composed run config
        cfg.pop(key, None)
    cfg.embedder_spec = 'openclip:apple/DFN5B-CLIP-ViT-H-14-378'
    cfg.hidden_dim, cfg.num_layers, cfg.num_heads, cfg.mlp_seq_len = 64, 2, 4, 3
    cfg.embedder_amp, cfg.amp = False, False
    embedder = embedders.Embedder.create(spec=cfg.embedder_spec, amp=False, load_model=False, device='cpu', check=False)
    train.gen_target_config(cfg, embedder, nouns, 0)
    data_config = embedding_dataset.DataConfig.create(
        data_config_dict=dict(use_weights=False, multi_target=False), use_targets=True
    )
    torch.manual_seed(0)
    model = infer.load_decoder_model(cfg, embedder, data_config, checkpoint=None)
    # The reference's initialisation is near-uniform; a seeded perturbation gives peaked, distinct outputs.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(
                torch.randn(p.shape, generator=g) * (1.5 if 'logits' in name else 0.5 if 'embed_mlp' in name else 0.15)
            )
    OUT.mkdir(parents=True, exist_ok=True)
    path = Path(train.save_train_checkpoint(cfg_flat=utils_config.flatten_config(cfg), model=model, C=None, S=None,
                                            target_nouns=nouns, num_invalid_target_nouns=0, optimizer=None,
                                            scheduler_warmup=None, scheduler=None, amp_scaler=None, model_only=True,
                                            run_dir=str(OUT), chunk_id=1))
    final = OUT / 'ovod_chunk0001_reference.model'
    path.rename(final)

    embeds = torch.nn.functional.normalize(torch.randn(6, 32, generator=torch.Generator().manual_seed(2)), dim=-1)
    np.save(OUT / 'embeds.npy', embeds.numpy())
    rng = np.random.default_rng(3)
    images = []
    for i, (h, w) in enumerate([(60, 80), (90, 50), (42, 42)]):
        yy, xx = np.mgrid[:h, :w]
        img = np.stack([(xx * (3 + i) + yy * 2) % 256, (yy * (5 - i) + 40 * i) % 256,
                        rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
        PIL.Image.fromarray(img).save(OUT / f'image{i}.png')
        images.append(OUT / f'image{i}.png')
    guide = [
        nouns[5],
        nouns[40],
        nouns[77],
        nouns[200],
        nouns[230],
        nouns[300],
        'zebra',
    ]  # 'zebra': not spelled by the vocabulary's tokens
    runs = [(g, None) for g in GENCFGS] + [('beam_k5_vnone_gp_t1_a0', guide), ('beam_k5_vnone_gr_t1_a0', guide),
                                           ('greedy_k1_vnone_gr_t1_a0', guide)]
    expected = {'checkpoint': final.name, 'runs': []}
    m = infer.NOVICModel(checkpoint=str(final), device='cpu', batch_size=16)
    with m:
        pil = m.load_images([str(p) for p in images])
        image_embeds = m.embed_images(pil).float()
        for gencfg, guide_targets in runs:
            m.set_gencfg(gencfg)
            m.set_guide_targets(guide_targets)
            out_e = m.classify_embeds(embeds)
            out_i = m.classify_embeds(image_embeds)
            expected['runs'].append({'gencfg': gencfg, 'guide_targets': guide_targets,
                                     'embeds': [list(zip(p, q)) for p, q in zip(out_e.preds, out_e.probs)],
                                     'images': [list(zip(p, q)) for p, q in zip(out_i.preds, out_i.probs)]})
    np.save(OUT / 'image_embeds.npy', image_embeds.numpy())
    expected['images'] = [p.name for p in images]
    (OUT / 'expected.json').write_text(json.dumps(expected, indent=1) + '\n')
    print('wrote', OUT)


if __name__ == '__main__':
    main()
