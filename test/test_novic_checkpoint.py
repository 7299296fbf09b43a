"""NOVIC-format checkpoints (the authors' `.train` files): our loader against checkpoints written with
known contents (test/novic_format.py) and an independent decoder on torch's own TransformerEncoder,
the reference's generation configurations, and refusal of what we do not run."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from novic_ros.core.errors import ModelLoadError
from novic_ros.core.novic_generation import DEFAULT_GENCFG, NovicGenConfig, novic_generate
from novic_ros.models.novic_checkpoint import load_novic_checkpoint
from novic_ros.models.torch_runners import TorchCachedRunner, TorchRecomputeRunner
from novic_format import ReferenceShapedDecoder, noun_list, write_checkpoint

NOUNS = noun_list()


@pytest.fixture(scope='module')
def ckpt_path(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp('novic') / 'ovod_chunk0001_test.train', NOUNS, seed=3)


@pytest.fixture(scope='module')
def ckpt(ckpt_path):
    return load_novic_checkpoint(ckpt_path)


@pytest.fixture(scope='module')
def ref(ckpt_path):
    return ReferenceShapedDecoder(ckpt_path)


def _embeds(n, dim=32, seed=5):
    e = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(e, dim=-1)


def test_config_vocabulary_and_logits_follow_the_checkpoint(ckpt, ref):
    cfg = ckpt.decoder.cfg
    assert (cfg.width, cfg.layers, cfg.heads, cfg.prefix_len, cfg.embed_dim) == (48, 2, 4, 3, 32)
    assert cfg.mlp_width == 24 and not cfg.bias and not cfg.causal_prefix and cfg.prefix_mlp == 'linear'
    assert ckpt.nouns == tuple(NOUNS) and ckpt.embedder_spec == 'openai:ViT-B/32'
    for noun in NOUNS[:5] + NOUNS[-5:]:
        assert ckpt.vocab.decode(ckpt.vocab.encode(noun)) == noun
    e = _embeds(4)
    tokens = torch.randint(1, cfg.vocab_size, (4, ckpt.token_length - 2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = ckpt.decoder(e, tokens)
    torch.testing.assert_close(ours, ref.logits(e, tokens), atol=2e-5, rtol=1e-5)


def test_default_beam_guided_gives_vocabulary_nouns_with_their_exact_probability(ckpt, ref):
    cfg = NovicGenConfig.from_name(DEFAULT_GENCFG)
    names, guide = ckpt.noun_targets()
    seqs = [ckpt.vocab.encode(n) for n in names]
    e = _embeds(3)
    for runner in (TorchCachedRunner(ckpt.decoder, 0), TorchRecomputeRunner(ckpt.decoder, 0)):
        res = novic_generate(runner, e.numpy(), cfg, ckpt.token_length, guide)
        assert res.tokens.shape[:2] == (3, 10)
        for b in range(3):
            exact = ref.noun_log_prob(e[b:b + 1], seqs, ckpt.token_length)
            labels = [ckpt.vocab.decode(t) for t in res.tokens[b]]
            assert all(label in names for label in labels) and len(set(labels)) == 10
            for label, score in zip(labels, res.scores[b]):
                assert abs(np.exp(score) - np.exp(float(exact[names.index(label)]))) < 1e-5
            assert list(res.scores[b]) == sorted(res.scores[b], reverse=True)
            # Beam search never beats the exhaustive best noun, and finds it here.
            assert res.scores[b][0] == pytest.approx(float(exact.max()), abs=1e-5)


def test_beam_over_a_short_label_list_is_the_exhaustive_ranking(ckpt, ref):
    labels = NOUNS[10:16] + NOUNS[-3:]
    names, guide = ckpt.noun_targets(labels)
    # At most token_length - 1 tokens are generated: the longest nouns end there, without an end term.
    seqs = [ckpt.vocab.encode(n)[:ckpt.token_length - 1] for n in names]
    e = _embeds(2, seed=9)
    for name, alpha in (("beam_k9_vnone_gr_t1_a0", 0.0), ("beam_k9_vnone_gr_t2_a0.5", 0.5)):
        cfg = NovicGenConfig.from_name(name)
        res = novic_generate(TorchCachedRunner(ckpt.decoder, 0), e.numpy(), cfg, ckpt.token_length, guide)
        for b in range(2):
            # Renormalised guiding over 9 nouns with k9 visits every noun: the exact ranking, computed
            # by teacher forcing with the logits restricted to each step's allowed tokens.
            exact = []
            for s in seqs:
                lp, prefix = 0.0, []
                for j, t in enumerate(s):
                    allowed = sorted({q[j] for q in seqs if q[:j] == prefix and len(q) > j})
                    lg = ref.logits(e[b:b + 1], torch.tensor([prefix], dtype=torch.long))[0, -1] / cfg.temperature
                    lp += float(torch.log_softmax(lg[allowed], 0)[allowed.index(t)])
                    prefix = prefix + [t]
                exact.append(lp / len(s) ** alpha)
            order = np.argsort(-np.array(exact), kind='stable')
            assert [ckpt.vocab.decode(t) for t in res.tokens[b]] == [names[i] for i in order]
            np.testing.assert_allclose(res.scores[b], np.array(exact)[order], atol=1e-5)


def test_greedy_unguided_matches_independent_greedy(ckpt, ref):
    cfg = NovicGenConfig.from_name('greedy_k1_vnone_gn_t1_a0')
    e = _embeds(3, seed=2)
    res = novic_generate(TorchCachedRunner(ckpt.decoder, 0), e.numpy(), cfg, ckpt.token_length)
    for b in range(3):
        seq, lp = [], 0.0
        for j in range(ckpt.token_length - 1):
            lg = ref.logits(e[b:b + 1], torch.tensor([seq], dtype=torch.long))[0, -1]
            t = int(lg[1:].argmax()) + 1 if j == 0 else int(lg.argmax())
            lp += float(torch.log_softmax(lg, 0)[t])
            seq.append(t)
            if t == 0:
                break
        assert ckpt.vocab.decode(res.tokens[b, 0]) == ckpt.vocab.decode(seq)
        assert res.scores[b, 0] == pytest.approx(lp, abs=1e-5)


def test_vocabulary_prior_changes_the_ranking_by_the_prior():
    # A prior of scaler 0 is no prior; a non-zero one is accepted and parsed.
    cfg = NovicGenConfig.from_name('beam_k5_vtgt0.5_gp_t1_a0')
    assert (cfg.vocab_prior, cfg.vocab_per_token, cfg.vocab_scaler) == (True, False, 0.5)
    assert NovicGenConfig.from_name('beam_k5_vtok1_gn_t0.5_a1').vocab_per_token


def test_vocab_prior_runs_and_keeps_guided_nouns(ckpt):
    names, guide = ckpt.noun_targets()
    e = _embeds(2, seed=4).numpy()
    plain = novic_generate(TorchCachedRunner(ckpt.decoder, 0), e, NovicGenConfig.from_name('beam_k5_vnone_gp_t1_a0'),
                           ckpt.token_length, guide)
    prior = novic_generate(TorchCachedRunner(ckpt.decoder, 0), e, NovicGenConfig.from_name('beam_k5_vtgt1_gp_t1_a0'),
                           ckpt.token_length, guide, guide)
    for b in range(2):
        assert all(ckpt.vocab.decode(t) in names for t in prior.tokens[b])
    # The per-noun prior favours tokens few nouns share: scores rise by -log(prior) >= 0.
    assert (prior.scores[:, 0] >= plain.scores[:, 0] - 1e-6).all()


@pytest.mark.parametrize('name', ['all_k10_vnone_gp_t1_a0', 'beam_k0_vnone_gp_t1_a0', 'greedy_k3_vnone_gn_t1_a0',
                                  'beam_k10_vxyz_gp_t1_a0', 'beam_k10_vnone_gq_t1_a0', 'beam_k10_t0', 'sample_k1'])
def test_bad_generation_names_are_refused(name):
    with pytest.raises(ValueError, match='generation configuration'):
        NovicGenConfig.from_name(name)


@pytest.mark.parametrize(
    'override,named',
    [
        ({'model': 'DudDecoder'}, 'model'),
        ({'layer_bias': True}, 'layer_bias'),
        ({'mlp_hidden_layer': 'linear'}, 'mlp_hidden_layer'),
        ({'num_end_loss': 2}, 'num_end_loss'),
        ({'embedder_spec': 'openclip:laion/unknown-CLIP'}, 'not supported'),
        ({'embedder_spec': 'transformers:x/y'}, 'transformers'),
    ],
)
def test_unsupported_checkpoints_are_refused_naming_what(tmp_path, override, named):
    path = write_checkpoint(tmp_path / 'x.train', NOUNS[:20], **override)
    with pytest.raises(ModelLoadError, match=named):
        load_novic_checkpoint(path)


def test_vocab_quant_padding_is_dropped(tmp_path):
    ck = load_novic_checkpoint(write_checkpoint(tmp_path / 'q.train', NOUNS[:20], vocab_quant=True))
    assert ck.decoder.cfg.vocab_size == len(ck.vocab) < 64


class Evil:
    def __reduce__(self):
        return (print, ('pwned',))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / 'evil.train'
    torch.save({'cfg_flat': {}, 'x': Evil()}, path)
    with pytest.raises(ModelLoadError, match='refused'):
        load_novic_checkpoint(path)
    assert 'pwned' not in capsys.readouterr().out
    with pytest.raises(ModelLoadError, match='not found'):
        load_novic_checkpoint(tmp_path / 'missing.train')
    (tmp_path / 'junk.train').write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ModelLoadError):
        load_novic_checkpoint(tmp_path / 'junk.train')
