"""Our runtime against outputs the NOVIC reference implementation itself produced (test/data/
novic_reference: a small checkpoint written by its own training code, its infer.NOVICModel outputs
for raw embeddings and for images through the tiny DFN-shaped CLIP; PROVENANCE.md says how).
Same label strings in the same order, probabilities within 1e-4 (and log-probabilities within 1e-4,
so the small probabilities of guided-plain runs are held to it too), on torch and ONNX Runtime
fp32; int8 within the bounds measured below."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_models import DFN_REPO, make_dfn_repo
from novic_ros.core.embedder_specs import clip_spec_for_embedder
from novic_ros.core.novic_generation import NovicGenConfig, novic_generate
from novic_ros.core.preprocess import Preprocessor
from novic_ros.models.novic_checkpoint import load_novic_checkpoint
from novic_ros.models.torch_runners import TorchCachedRunner

DATA = Path(__file__).parent / 'data' / 'novic_reference'
EXPECTED = json.loads((DATA / 'expected.json').read_text())
TOL = 1e-4
# int8 (dynamically quantised weights), measured 2026-12-03 over the 13 runs x 6 embeddings of this
# random checkpoint: the best label is the reference's in 70 of 78 rows (at least 4 of 6 per run),
# at most 2 of a row's labels differ, and labels both return differ by at most 0.33 in
# log-probability. The bounds below leave a margin over those figures.
INT8_TOL = 0.45
INT8_MISSING = 2


@pytest.fixture(scope='module')
def ckpt():
    return load_novic_checkpoint(DATA / EXPECTED['checkpoint'])


@pytest.fixture(scope='module')
def encoder(tmp_path_factory):
    import huggingface_hub.constants as hf
    from novic_ros.models.clip_encoder import ClipEncoder
    cache = tmp_path_factory.mktemp('hf_hub_ref')
    make_dfn_repo(cache, seed=0)           # the same seeded weights make_reference.py gave the reference
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf, 'HF_HUB_OFFLINE', True)
        mp.setattr(hf, 'HF_HUB_CACHE', str(cache))
        yield ClipEncoder(clip_spec_for_embedder('openclip:' + DFN_REPO))


@pytest.fixture(scope='module')
def ort_runners(ckpt, encoder, tmp_path_factory):
    from novic_ros.backends.onnx_export import export_bundle, export_info
    from novic_ros.backends.ort_backend import OrtBackend
    from novic_ros.backends.quantize import ensure_int8
    bundle = export_bundle(export_info('novic-ref', encoder), encoder, ckpt.decoder, ckpt.vocab,
                           tmp_path_factory.mktemp('bundle') / 'novic-ref', text_encoder=False)
    bundle = ensure_int8(bundle)
    return {p: OrtBackend(bundle, precision=p).runner for p in ('fp32', 'int8')}


def _ours(ckpt, runner, run, embeds):
    cfg = NovicGenConfig.from_name(run['gencfg'])
    names, guide = ckpt.noun_targets(run['guide_targets'])
    _, vocab = ckpt.noun_targets()
    res = novic_generate(runner, np.asarray(embeds, np.float32), cfg, ckpt.token_length, guide, vocab)
    return [
        [(ckpt.vocab.decode(t), math.exp(s)) for t, s in zip(toks, scores)]
        for toks, scores in zip(res.tokens, res.scores)
    ]


def _same(ours, theirs, tol):
    """Labels in order, probabilities and log-probabilities within tol; neighbours the reference
    scores within 1e-6 of each other may come in either order (torch.topk leaves ties unordered)."""
    assert len(ours) == len(theirs)
    for row_o, row_t in zip(ours, theirs):
        assert len(row_o) == len(row_t)
        probs_t = dict((l, p) for l, p in row_t)
        for i, ((lo, po), (lt, pt)) in enumerate(zip(row_o, row_t)):
            if lo != lt:
                assert lo in probs_t and abs(probs_t[lo] - pt) <= 1e-6 * max(pt, 1e-30), (i, row_o, row_t)
            pt = probs_t[lo]
            assert abs(po - pt) <= tol, (lo, po, pt)
            if pt > 0:
                assert abs(math.log(po) - math.log(pt)) <= tol, (lo, po, pt)


@pytest.mark.parametrize('run', EXPECTED['runs'], ids=lambda r: r['gencfg'] + ('+list' if r['guide_targets'] else ''))
def test_torch_equals_reference_on_raw_embeddings(ckpt, run):
    _same(_ours(ckpt, TorchCachedRunner(ckpt.decoder, 0), run, np.load(DATA / 'embeds.npy')), run['embeds'], TOL)


def test_images_through_clip_equal_reference(ckpt, encoder):
    frames = [np.asarray(Image.open(DATA / name).convert('RGB')) for name in EXPECTED['images']]
    pixels = Preprocessor(encoder.facts().preprocess, 'exact')(frames)
    embeds = encoder.encode_images(pixels)
    embeds = np.asarray(embeds.detach().cpu() if hasattr(embeds, 'detach') else embeds, np.float32)
    np.testing.assert_allclose(embeds, np.load(DATA / 'image_embeds.npy'), atol=1e-5)
    for run in EXPECTED['runs']:
        _same(_ours(ckpt, TorchCachedRunner(ckpt.decoder, 0), run, embeds), run['images'], TOL)


def test_onnxruntime_equals_reference(ckpt, ort_runners):
    embeds = np.load(DATA / 'embeds.npy')
    for run in EXPECTED['runs']:
        _same(_ours(ckpt, ort_runners['fp32'], run, embeds), run['embeds'], TOL)


def test_onnxruntime_int8_within_tolerance(ckpt, ort_runners):
    embeds = np.load(DATA / 'embeds.npy')
    total = rows = 0
    for run in EXPECTED['runs']:
        ours = _ours(ckpt, ort_runners['int8'], run, embeds)
        top1 = 0
        for row_o, row_t in zip(ours, run['embeds']):
            theirs = dict(row_t)
            shared = [(p, theirs[l]) for l, p in row_o if l in theirs]
            assert len(shared) >= len(row_o) - INT8_MISSING, (run['gencfg'], row_o, row_t)
            assert max([0.0] + [abs(math.log(a) - math.log(b)) for a, b in shared]) <= INT8_TOL, run["gencfg"]
            top1 += row_o[0][0] == row_t[0][0]
        assert top1 >= len(ours) - 2, run['gencfg']
        total, rows = total + top1, rows + len(ours)
    assert total >= 0.85 * rows
