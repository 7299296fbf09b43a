"""Greedy and beam generation: the key/value cache changes nothing but speed, beam width 1 is
greedy, batching changes nothing, and the scores are probabilities."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from novic_ros.models.decoder import DecoderConfig, ObjectDecoder
from novic_ros.core.generation import beam_search, greedy
from novic_ros.models.torch_runners import TorchCachedRunner, TorchRecomputeRunner
from novic_ros.models.kv_cache import ConcatKVCache, StaticKVCache


def make_decoder(seed=0, **kw):
    cfg = DecoderConfig(**{'embed_dim': 32, 'vocab_size': 50, 'width': 64, 'layers': 3, 'heads': 4,
                           'prefix_len': 3, 'max_tokens': 10, **kw})
    torch.manual_seed(seed)
    dec = ObjectDecoder(cfg).eval()
    # Random init gives near-uniform outputs; sharpen so generation paths actually diverge.
    with torch.no_grad():
        dec.token_embedding.weight.mul_(40)
    return dec


def embeds(n=6, dim=32, seed=1):
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=-1).numpy()


EOT = 7


def test_cached_greedy_equals_recompute():
    dec, e = make_decoder(), embeds()
    cached = greedy(TorchCachedRunner(dec, EOT), e)
    plain = greedy(TorchRecomputeRunner(dec, EOT), e)
    assert np.array_equal(cached.tokens, plain.tokens)
    assert np.allclose(cached.token_log_probs, plain.token_log_probs, atol=1e-4)
    assert np.allclose(cached.log_probs, plain.log_probs, atol=1e-4)
    # The sequences are not trivial: they differ between frames and run for several tokens.
    assert len({tuple(t[0].tolist()) for t in cached.tokens}) > 1
    assert cached.tokens.shape[2] > 2


def test_cached_beam_equals_recompute():
    dec, e = make_decoder(), embeds()
    a = beam_search(TorchCachedRunner(dec, EOT), e, 4)
    b = beam_search(TorchRecomputeRunner(dec, EOT), e, 4)
    assert np.array_equal(a.tokens, b.tokens)
    assert np.allclose(a.log_probs, b.log_probs, atol=1e-4)


def test_beam_width_one_equals_greedy():
    dec, e = make_decoder(seed=3), embeds(8)
    g = greedy(TorchCachedRunner(dec, EOT), e)
    b = beam_search(TorchCachedRunner(dec, EOT), e, 1)
    assert np.array_equal(g.tokens, b.tokens)
    assert np.allclose(g.log_probs, b.log_probs, atol=1e-5)
    assert np.array_equal(g.finished, b.finished)


def test_beam_finds_at_least_the_greedy_probability_and_is_sorted():
    dec, e = make_decoder(seed=4), embeds(8)
    g = greedy(TorchCachedRunner(dec, EOT), e)
    b = beam_search(TorchCachedRunner(dec, EOT), e, 5)
    assert (b.log_probs[:, 0] >= g.log_probs[:, 0] - 1e-5).all()
    assert (b.log_probs[:, :-1] >= b.log_probs[:, 1:] - 1e-6).all()
    # Sequence log-probabilities are the sums of their token log-probabilities.
    assert np.allclose(b.token_log_probs.sum(-1), b.log_probs, atol=1e-4)


@pytest.mark.parametrize('width', [1, 3])
def test_batch_equals_frames_one_by_one(width):
    dec, e = make_decoder(seed=5), embeds(5)
    run = TorchCachedRunner(dec, EOT)
    batch = beam_search(run, e, width)
    for i in range(len(e)):
        one = beam_search(run, e[i:i + 1], width)
        T = one.tokens.shape[2]
        assert np.array_equal(batch.tokens[i, :, :T], one.tokens[0])
        assert (batch.tokens[i, :, T:] == EOT).all()     # padding after the end only
        assert np.allclose(batch.log_probs[i], one.log_probs[0], atol=1e-5)


class TreeRunner:
    """A mock decoder whose next-token distribution is scripted per frame and prefix:
    tree[frame][prefix] = {token: probability}. Frame ids ride in embeds[:, 0]."""

    def __init__(self, tree, vocab_size=12, eot=0, max_tokens=6):
        self.tree, self.vocab_size, self.eot, self.max_tokens = tree, vocab_size, eot, max_tokens

    def _logits(self, frames, prefixes):
        out = np.full((len(frames), self.vocab_size), -1e9, dtype=np.float32)
        for i, (f, p) in enumerate(zip(frames, prefixes)):
            for tok, prob in self.tree[f].get(tuple(p), {self.eot: 1.0}).items():
                out[i, tok] = np.log(prob)
        return out

    def start(self, embeds):
        runner = self

        class Session:
            frames = [int(x) for x in embeds[:, 0]]
            prefixes = [[] for _ in frames]

            def step(self, tokens):
                for p, t in zip(self.prefixes, tokens.tolist()):
                    p.append(t)
                return runner._logits(self.frames, self.prefixes)

            def reorder(self, index):
                self.frames = [self.frames[i] for i in index.tolist()]
                self.prefixes = [list(self.prefixes[i]) for i in index.tolist()]

        s = Session()
        return self._logits(s.frames, s.prefixes), s


TREE = {
    0: {(): {3: 0.6, 4: 0.4}, (3,): {0: 1.0}, (4,): {5: 0.5, 0: 0.5}, (4, 5): {0: 1.0}},
    1: {(): {6: 0.9, 7: 0.1}, (6,): {8: 1.0}, (6, 8): {9: 1.0}, (6, 8, 9): {0: 1.0}, (7,): {0: 1.0}},
}


def test_end_of_text_stops_and_pads():
    s = greedy(TreeRunner(TREE), np.array([[0.0], [1.0]]))
    assert s.finished.all()
    assert s.tokens[0, 0].tolist() == [3, 0, 0, 0]          # frame 0 ends after one token, padded
    assert s.tokens[1, 0].tolist() == [6, 8, 9, 0]
    assert np.allclose(np.exp(s.log_probs[:, 0]), [0.6, 0.9])
    assert (s.token_log_probs[0, 0, 2:] == 0).all()


def test_beam_search_finds_the_scripted_probabilities():
    s = beam_search(TreeRunner(TREE), np.array([[0.0], [1.0]]), 3)
    # frame 0: [3] 0.6, [4 5] 0.2, [4] 0.2 ; frame 1: [6 8 9] 0.9, [7] 0.1
    assert np.allclose(np.exp(s.log_probs[0]), [0.6, 0.2, 0.2], atol=1e-6)
    assert s.tokens[0, 0, 0] == 3 and s.finished[0].all()
    assert np.allclose(np.exp(s.log_probs[1, :2]), [0.9, 0.1], atol=1e-6)
    assert s.tokens[1, 0, :3].tolist() == [6, 8, 9]


def test_max_tokens_cuts_unfinished_sequences():
    s = greedy(TreeRunner(TREE), np.array([[1.0]]), max_tokens=2)
    assert s.tokens[0, 0].tolist() == [6, 8] and not s.finished[0, 0]


def test_max_tokens_is_validated_and_respected():
    dec, e = make_decoder(seed=7), embeds(2)
    run = TorchCachedRunner(dec, EOT)
    assert greedy(run, e, max_tokens=2).tokens.shape[2] <= 2
    with pytest.raises(ValueError, match='max_tokens'):
        greedy(run, e, max_tokens=11)
    with pytest.raises(ValueError, match='beam width'):
        beam_search(run, e, 0)


def test_static_and_concat_caches_agree():
    dec, e = make_decoder(seed=8), embeds(3)
    static = StaticKVCache(dec.cfg, 3, 'cpu')
    concat = ConcatKVCache(layers=dec.cfg.layers)
    with torch.no_grad():
        e = torch.from_numpy(e)
        a, b = dec.prefill(e, static), dec.prefill(e, concat)
        assert torch.allclose(a, b, atol=1e-5)
        tok = a.argmax(-1)
        assert torch.allclose(dec.step(tok, static), dec.step(tok, concat), atol=1e-5)
    k, v = concat.present()
    assert k.shape == (dec.cfg.layers, 3, dec.cfg.heads, dec.cfg.prefix_len + 1, dec.cfg.width // dec.cfg.heads)
    assert torch.allclose(k, static.k[:, :, :, :static.length], atol=1e-6)


def test_decoder_config_validation():
    with pytest.raises(ValueError, match='divisible'):
        DecoderConfig(embed_dim=8, vocab_size=10, width=30, heads=4)
    with pytest.raises(ValueError, match='vocab_size'):
        DecoderConfig(embed_dim=8, vocab_size=0)
    with pytest.raises(ValueError, match='unknown keys'):
        DecoderConfig.from_dict({'embed_dim': 8, 'vocab_size': 3, 'colour': 'red'})
