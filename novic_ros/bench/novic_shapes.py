"""Section `novic`: the NOVIC authors' model shapes on this CPU, random weights (speed does not depend
on them): the DFN5B ViT-H-14-378 image tower at 378 px (the ya2/ye2 embedder) and the reference's
PrefixedIterDecoder config (config/train.yaml: width 512, 6 layers, 8 heads, feed-forward 1/4,
4 prefix vectors, no biases, open prefix) over the WordNet dictionary's compact vocabulary, run with
the reference's default generation configuration (beam_k10_vnone_gp_t1_a0, guided by the
dictionary's nouns) and with plain greedy decoding."""
from __future__ import annotations

import torch

from ..core.clip_bpe import EOT_TOKEN_ID
from ..core.label_tokens import LabelVocab
from ..core.novic_generation import DEFAULT_GENCFG, NovicGenConfig, novic_generate, target_matrix
from ..lexicon.nouns import build_dictionary
from ..lexicon.wordnet import WordNet
from ..models.decoder import DecoderConfig, ObjectDecoder
from ..models.torch_runners import TorchCachedRunner
from .timing import interleaved

VIT_H = 'ViT-H-14-378-quickgelu'


def _table(rows: list[list]) -> str:
    lines = ['| stage | ms per frame |', '|---|---|']
    return '\n'.join(lines + [f"| {a} | {b:.1f} |" for a, b in rows])


def novic(repeat: int) -> str:
    import open_clip
    labels = sorted({e.label for e in build_dictionary(WordNet.load())})
    # The reference's compact order: end-of-text first (compact 0 = end = padding), then the rest.
    ids = LabelVocab.from_labels(labels).clip_ids.tolist()
    vocab = LabelVocab([EOT_TOKEN_ID] + [i for i in ids if i != EOT_TOKEN_ID])
    seqs = [vocab.encode(n) for n in labels]
    token_length = min(max(len(s) for s in seqs), 16)
    guide = target_matrix([s for s in seqs if len(s) <= token_length], token_length)
    cfg = DecoderConfig(embed_dim=1024, vocab_size=len(vocab), width=512, layers=6, heads=8, mlp_ratio=0.25,
                        prefix_len=4, max_tokens=token_length - 1, bias=False, prefix_mlp='linear', causal_prefix=False)
    torch.manual_seed(0)
    runner = TorchCachedRunner(ObjectDecoder(cfg).eval(), vocab.eot)
    embeds = torch.nn.functional.normalize(torch.randn(1, 1024), dim=-1).numpy()
    beam = NovicGenConfig.from_name(DEFAULT_GENCFG)
    greedy = NovicGenConfig.from_name('greedy_k1_vnone_gn_t1_a0')
    dec = interleaved({'beam': lambda: novic_generate(runner, embeds, beam, token_length, guide),
                       'greedy': lambda: novic_generate(runner, embeds, greedy, token_length)}, repeat=repeat, warmup=3)
    model = open_clip.create_model(VIT_H, pretrained=None).visual.eval()
    pixels = torch.rand(1, 3, 378, 378)
    with torch.inference_mode():
        enc = interleaved({'enc': lambda: model(pixels)}, repeat=max(1, repeat // 3), warmup=1)
    return _table([
        [f"ViT-H-14-378 image tower, 378 px, fp32 torch ({torch.get_num_threads()} threads)", enc['enc']],
        [f"decoder {DEFAULT_GENCFG}, guided by {len(guide)} nouns ({len(vocab)} tokens, {token_length - 1} steps max)",
         dec['beam']],
        ['decoder greedy_k1_vnone_gn_t1_a0', dec['greedy']],
    ])
