"""Backends: ONNX Runtime matches torch, bundles are keyed, complete and atomic, the TensorRT engine
cache is correct without a GPU, and TensorRT itself runs where a GPU is present."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from conftest import make_tiny_decoder
from novic_ros.atomic_file import atomic_write
from novic_ros.backends import onnx_export, resolve_backend_name
from novic_ros.backends.engine_cache import EngineCache, EngineKey
from novic_ros.core import bundle as bundle_format
from novic_ros.models.checkpoint import load_decoder
from novic_ros.models.clip_encoder import ClipSpec
from novic_ros.core.errors import ModelLoadError
from novic_ros.core.export_record import RECORDS
from novic_ros.core.generation import beam_search
from novic_ros.core.variants import ModelVariant
from novic_ros.pipeline import build_classifier
from novic_ros.params import ModelParams
from novic_ros.torch_pipeline import export_for
from novic_ros.training import toy_world

HAS_TRT = torch.cuda.is_available() and importlib.util.find_spec('tensorrt') is not None
TRT_REASON = ("TensorRT tests need an NVIDIA GPU and the tensorrt package "
              f"(cuda available: {torch.cuda.is_available()}, tensorrt installed: "
              f"{importlib.util.find_spec('tensorrt') is not None})")


@pytest.fixture(scope='module')
def engine_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('engines')


@pytest.fixture(scope='module')
def torch_and_ort(engine_dir):
    common = dict(model='toy', device='cpu', engine_dir=str(engine_dir))
    return (build_classifier(ModelParams(backend='torch', **common)),
            build_classifier(ModelParams(backend='onnxruntime', **common)))


@pytest.fixture(scope='module')
def test_images(photos):
    renders = [x.image for x in toy_world.render_set(1, (240, 320), seed=99)][:80]
    return [f for _, f, _ in photos] + renders


def test_onnxruntime_matches_torch_on_every_image(torch_and_ort, test_images):
    ref, ort = torch_and_ort
    assert ort.backend.name == 'onnxruntime'
    pixels = ref.preprocess(test_images)
    e_ref, e_ort = ref.backend.encode_images(pixels), ort.backend.encode_images(pixels)
    cos = (e_ref * e_ort).sum(-1)
    assert float((1 - cos).max()) < 1e-3
    a, b = ref.classify(test_images), ort.classify(test_images)
    assert [r.top.text for r in a] == [r.top.text for r in b]
    for x, y in zip(a, b):
        assert [l.text for l in x.labels] == [l.text for l in y.labels]
        assert np.allclose([l.score for l in x.labels], [l.score for l in y.labels], atol=1e-3)


def test_onnx_decoder_graphs_keep_the_cache_and_match_torch(torch_and_ort):
    ref, ort = torch_and_ort
    embeds = torch.nn.functional.normalize(
        torch.randn(7, 64, generator=torch.Generator().manual_seed(0)), dim=-1
    ).numpy()
    s_ref = beam_search(ref.backend.runner, embeds, 4)
    s_ort = beam_search(ort.backend.runner, embeds, 4)
    assert np.array_equal(s_ref.tokens, s_ort.tokens)
    assert np.allclose(s_ref.log_probs, s_ort.log_probs, atol=1e-4)


def test_onnx_decoder_steps_reuse_their_buffers_and_equal_plain_runs(torch_and_ort, monkeypatch):
    """The IO-bound step session (buffers allocated once per decode) gives the labels of plain run()
    calls (fresh outputs each step), and beam search allocates its cache buffers only when rows change."""
    from novic_ros.backends import ort_backend
    _, ort = torch_and_ort
    embeds = torch.nn.functional.normalize(
        torch.randn(3, 64, generator=torch.Generator().manual_seed(1)), dim=-1
    ).numpy()
    bound = beam_search(ort.backend.runner, embeds, 5)
    grew = []
    cache_for = ort_backend._OrtSession._next_cache

    def counting(self, shape):
        before = [k.size for k, _ in self._cache]
        out = cache_for(self, shape)
        grew.append(before != [k.size for k, _ in self._cache])
        return out
    monkeypatch.setattr(ort_backend._OrtSession, '_next_cache', counting)
    again = beam_search(ort.backend.runner, embeds, 5)
    assert len(grew) >= 3 and sum(grew) == 2     # each of the pair once (reorder, first step), then reused
    monkeypatch.setattr(ort_backend._OrtSession, '__init__',
                        lambda self, step, k, v, vocab, max_tokens: setattr(self, 'binding', None) or
                        setattr(self, 'step_sess', step) or setattr(self, 'k', k) or setattr(self, 'v', v))
    plain = beam_search(ort.backend.runner, embeds, 5)
    for s in (again, plain):
        assert np.array_equal(bound.tokens, s.tokens) and np.allclose(bound.log_probs, s.log_probs, atol=1e-6)


def test_text_graph_and_tokenizer_match_open_clip(torch_and_ort):
    """Prompts of every length, unicode and text longer than the context: the bundle's tokenizer and
    text graph give open_clip's encode_text, unit-normalised."""
    ref, ort = torch_and_ort
    texts = ['a photo of a dog.', 'a photo of a golden retriever next to a red fire truck.', 'naïve café ﬁsh',
             '', 'x ' * 120, 'a photo of a ' + 'very ' * 30 + 'big cat.']
    clip = ref.backend.encoder
    expected = (
        torch.nn.functional.normalize(clip.model.encode_text(clip.tokenize(texts)).float(), dim=-1).detach().numpy()
    )
    got = ort.backend.text_encoder.encode_texts(texts)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_bundle_describes_itself_and_is_reused(torch_and_ort, engine_dir, monkeypatch):
    (folder,) = _bundles(engine_dir / 'onnx')
    meta = json.loads((folder / bundle_format.BUNDLE_FILE).read_text())
    assert meta['format'] == bundle_format.FORMAT and meta['variant'] == 'toy'
    assert meta['clip']['preprocess']['size'] == [64, 64] and meta['clip']['embed_dim'] == 64
    assert meta['clip']['fingerprint'] == torch_and_ort[0].clip.fingerprint != ''
    assert meta['decoder']['vocab_size'] == len(torch_and_ort[0].vocab)
    context = torch_and_ort[0].backend.encoder.tokenizer.context_length          # 32 for the toy CLIP
    assert meta['tokenizer'] == {'name': 'open_clip.SimpleTokenizer', 'context_length': context, 'dynamic_length': True}
    assert set(meta['graphs']) == {'image_encoder', 'decoder_prefill', 'decoder_step', 'text_encoder'}
    assert {'torch', 'open_clip', 'novic_ros', 'onnx_opset'} <= set(meta['versions'])
    # Every file of the folder is recorded (graphs with their external weights, both vocabularies).
    assert set(meta['files']) == {p.name for p in folder.iterdir()} - {bundle_format.BUNDLE_FILE}
    assert torch_and_ort[1].vocab.decode(torch_and_ort[0].vocab.encode('dog')) == 'dog'
    monkeypatch.setattr(onnx_export, 'export_bundle', lambda *a, **k: pytest.fail('a current export was redone'))
    build_classifier(ModelParams(model='toy', backend='onnxruntime', device='cpu', engine_dir=str(engine_dir)))


def test_a_damaged_bundle_is_named_not_loaded(torch_and_ort, engine_dir, tmp_path):
    import shutil
    (folder,) = _bundles(engine_dir / 'onnx')
    copy = tmp_path / 'copy'
    shutil.copytree(folder, copy)
    params = ModelParams(model=str(copy), backend='onnxruntime')
    assert build_classifier(params).classify(np.zeros((20, 30, 3), np.uint8))[0].labels
    step = copy / 'decoder_step.onnx'
    step.write_bytes(step.read_bytes()[:1000])                    # a copy cut short
    with pytest.raises(ModelLoadError, match='decoder_step.onnx has 1000 bytes.*copy the bundle again'):
        build_classifier(params)
    step.unlink()
    with pytest.raises(ModelLoadError, match='incomplete: decoder_step.onnx is missing'):
        build_classifier(params)
    (copy / bundle_format.BUNDLE_FILE).write_text('{"format": "something else"}')
    with pytest.raises(ModelLoadError, match='export the bundle again'):
        build_classifier(params)
    with pytest.raises(ModelLoadError, match='the torch backend runs'):
        build_classifier(ModelParams(model=str(folder), backend='torch'))


def test_a_changed_checkpoint_gets_a_new_export(tiny_clip_dir, tiny_encoder, tmp_path):
    d1 = make_tiny_decoder(tiny_encoder, tmp_path / 'd1', seed=1)
    d2 = make_tiny_decoder(tiny_encoder, tmp_path / 'd2', seed=2)
    keys = [export_for(ModelVariant('tiny', ClipSpec('local-dir:' + str(tiny_clip_dir)), d), tmp_path / 'e', True).key
            for d in (d1, d2)]
    assert keys[0] != keys[1]
    assert sorted(p.name for p in (tmp_path / 'e' / 'onnx').iterdir()) == sorted(keys)


def test_a_failed_export_leaves_nothing_behind(tiny_encoder, tiny_decoder_dir, tmp_path, monkeypatch):
    dec, vocab, _ = load_decoder(tiny_decoder_dir)
    info = onnx_export.export_info('tiny', tiny_encoder, tiny_decoder_dir)
    real, calls = onnx_export._export, []

    def crash_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError('simulated crash during export')
        return real(*a, **k)
    monkeypatch.setattr(onnx_export, '_export', crash_on_second)
    with pytest.raises(RuntimeError, match='simulated'):
        onnx_export.ensure_bundle(info, tiny_encoder, dec, vocab, tmp_path)
    assert list((tmp_path / 'onnx').iterdir()) == []           # no half-written export, no temp folder
    monkeypatch.setattr(onnx_export, '_export', real)
    assert onnx_export.ensure_bundle(info, tiny_encoder, dec, vocab, tmp_path).key == info.key


def test_prompted_mode_on_onnxruntime_loads_no_decoder(tmp_path):
    clf = build_classifier(ModelParams(model='toy', backend='onnxruntime', mode='prompted', labels=['dog', 'cat'],
                                       engine_dir=str(tmp_path)))
    (folder,) = _bundles(tmp_path / 'onnx')
    assert set(json.loads((folder / bundle_format.BUNDLE_FILE).read_text())['graphs']) == {
        'image_encoder',
        'text_encoder',
    }
    assert clf.backend.runner is None
    assert clf.classify(np.zeros((32, 32, 3), np.uint8))[0].top.text in ('dog', 'cat')
    with pytest.raises(ModelLoadError, match='no decoder'):
        build_classifier(ModelParams(model=str(folder), backend='onnxruntime'))


def test_auto_picks_onnxruntime_on_this_cpu_and_tensorrt_fails_naming_the_fallback():
    assert resolve_backend_name('auto', 'cpu') == 'onnxruntime'
    assert resolve_backend_name('torch', 'cpu') == 'torch'
    if not HAS_TRT:
        with pytest.raises(Exception, match="use backend 'onnxruntime'"):
            build_classifier(ModelParams(model='toy', backend='tensorrt'))


# --- engine cache, without a GPU -----------------------------------------------------------

KEY = EngineKey('toy', 'image_encoder', 'abc123', 'NVIDIA H100', '10.16.1', 'fp16', 1, 8)


@pytest.mark.parametrize('field, value', [('model', 'b32'), ('graph', 'decoder_step'), ('onnx_hash', 'def'),
                                          ('gpu', 'Jetson Orin'), ('trt_version', '11.4.0'), ('precision', 'fp32'),
                                          ('min_batch', 2), ('max_batch', 16)])
def test_every_key_field_changes_the_engine_file(field, value):
    other = EngineKey(**{**KEY.__dict__, field: value})
    assert other.digest != KEY.digest and other.stem != KEY.stem


def test_engine_is_built_once_then_reused(tmp_path):
    cache, builds = EngineCache(tmp_path), []
    build = lambda: builds.append(1) or b'ENGINE-v1'  # noqa: E731
    assert cache.get_or_build(KEY, build) == (b'ENGINE-v1', True)
    assert cache.get_or_build(KEY, build) == (b'ENGINE-v1', False)
    assert len(builds) == 1
    assert EngineCache(tmp_path).lookup(KEY) == cache.engine_path(KEY)      # a new process finds it too


def test_a_changed_key_rebuilds_and_prunes_the_stale_engine(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, lambda: b'old')
    new = EngineKey(**{**KEY.__dict__, 'onnx_hash': 'changed'})
    assert cache.get_or_build(new, lambda: b'new') == (b'new', True)
    assert not cache.engine_path(KEY).exists() and not cache.meta_path(KEY).exists()
    other_graph = EngineKey(**{**KEY.__dict__, 'graph': 'decoder_step'})
    cache.get_or_build(other_graph, lambda: b'step')
    assert cache.lookup(new) is not None                                  # other graphs are kept


@pytest.mark.parametrize('damage', ['truncate', 'no_meta', 'bad_meta', 'other_key'])
def test_a_damaged_or_half_written_engine_is_never_loaded(tmp_path, damage):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, lambda: b'0123456789' * 100)
    engine, meta = cache.engine_path(KEY), cache.meta_path(KEY)
    if damage == 'truncate':          # a crash while writing without atomic rename would leave this
        engine.write_bytes(engine.read_bytes()[:500])
    elif damage == 'no_meta':         # crash between the engine and its metadata
        meta.unlink()
    elif damage == 'bad_meta':
        meta.write_text('{not json')
    else:
        info = json.loads(meta.read_text())
        info['key']['gpu'] = 'another GPU'
        meta.write_text(json.dumps(info))
    assert cache.lookup(KEY) is None
    assert cache.get_or_build(KEY, lambda: b'rebuilt') == (b'rebuilt', True)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / 'x.engine'
    atomic_write(target, b'old engine')

    def fail_fsync(fd):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'fsync', fail_fsync)
    with pytest.raises(OSError, match='disk full'):
        atomic_write(target, b'new engine that never lands')
    assert target.read_bytes() == b'old engine'
    assert [p.name for p in tmp_path.iterdir()] == ['x.engine']          # no temp file left


def test_timing_cache_is_per_gpu_and_tensorrt_version(tmp_path):
    c = EngineCache(tmp_path)
    assert c.timing_cache_path('A', '10') != c.timing_cache_path('B', '10') != c.timing_cache_path('A', '11')


# --- TensorRT on a GPU -----------------------------------------------------------------------

@pytest.mark.skipif(not HAS_TRT, reason=TRT_REASON)
@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_tensorrt_matches_torch_and_reuses_its_engines(precision, tmp_path, test_images):
    common = dict(model='toy', device='cuda', engine_dir=str(tmp_path), precision=precision)
    ref = build_classifier(ModelParams(backend='torch', **{**common, 'precision': 'fp32'}))
    trt = build_classifier(ModelParams(backend='tensorrt', **common))
    assert trt.backend.name == 'tensorrt' and len(trt.backend.built) == 3
    a, b = ref.classify(test_images), trt.classify(test_images)
    agree = np.mean([x.top.text == y.top.text for x, y in zip(a, b)])
    assert agree == 1.0 if precision == 'fp32' else agree >= 0.95
    again = build_classifier(ModelParams(backend='tensorrt', **common))
    assert again.backend.built == []


def _bundles(onnx_dir):
    """The bundle folders of an engine dir's onnx/ (beside them: the export records, export_record.RECORDS)."""
    return [p for p in onnx_dir.iterdir() if p.name != RECORDS]
