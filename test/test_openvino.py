"""The openvino backend against ONNX Runtime on the toy model's bundle (the same graphs): fp32 gives
ORT's labels, bf16 (where the CPU has AMX / AVX512_BF16) and the NNCF int8 graphs agree with fp32,
compiled models are cached per precision and reused, and wrong devices or precisions are refused
naming the fix. Skips, saying why, where the openvino package is not installed."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest

from novic_ros.core.errors import ModelLoadError
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier
from novic_ros.training import toy_world

needs_openvino = pytest.mark.skipif(importlib.util.find_spec('openvino') is None,
                                    reason="openvino is not installed (pip install novic_ros[openvino])")


@pytest.fixture(scope='module')
def renders():
    return toy_world.render_set(1, (240, 320), seed=2026)


@pytest.fixture(scope='module')
def ort_fp32(toy_bundle):
    return build_classifier(ModelParams(model=str(toy_bundle), backend='onnxruntime'))


@pytest.fixture(scope='module')
def ort_tops(ort_fp32, renders):
    return [r.top.text for r in ort_fp32.classify([x.image for x in renders])]


def tops(clf, renders) -> list[str]:
    return [r.top.text if r.top else '' for r in clf.classify([x.image for x in renders])]


def blobs(folder) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob('*.blob')}


@needs_openvino
def test_fp32_gives_onnxruntimes_labels_and_is_cached_per_precision(toy_bundle, renders, ort_fp32, ort_tops, tmp_path):
    params = ModelParams(model=str(toy_bundle), backend='openvino', precision='fp32', engine_dir=str(tmp_path))
    clf = build_classifier(params)
    assert clf.backend.name == 'openvino' and 'fp32' in clf.backend.describe()
    got = clf.classify([x.image for x in renders])
    assert [r.top.text for r in got] == ort_tops
    want = ort_fp32.classify([x.image for x in renders[:8]])
    for a, b in zip(got, want):
        assert a.labels[0].score == pytest.approx(b.labels[0].score, abs=1e-4)
    cached = blobs(tmp_path / 'openvino')
    assert len(cached) >= 3, "image encoder, prefill and step graphs are compiled into engine_dir/openvino"
    again = build_classifier(params)                          # a restart: loads the blobs, compiles nothing
    assert blobs(tmp_path / 'openvino') == cached
    assert tops(again, renders[:16]) == ort_tops[:16]


@needs_openvino
def test_bf16_agrees_with_fp32_where_the_cpu_has_it(toy_bundle, renders, ort_tops, tmp_path):
    from novic_ros.backends.devices import cpu_bf16
    if not cpu_bf16():
        pytest.skip("this CPU has neither AMX nor AVX512_BF16 (bf16 is refused here: see the next test)")
    engine_dir = tmp_path / 'engines'
    fp32 = build_classifier(
        ModelParams(model=str(toy_bundle), backend='openvino', precision='fp32', engine_dir=str(engine_dir))
    )
    tops(fp32, renders[:2])
    # Compiled after fp32 into the same engine_dir: OpenVINO's cache must not hand bf16 the fp32 blob.
    bf16 = build_classifier(
        ModelParams(model=str(toy_bundle), backend='openvino', precision='bf16', engine_dir=str(engine_dir))
    )
    assert 'bf16 on' in bf16.backend.describe()
    agree = np.mean([a == b for a, b in zip(tops(bf16, renders), ort_tops)])
    assert agree >= 0.97, f"bf16 top-1 agrees with fp32 on {agree:.1%} of {len(renders)} toy renders"


@needs_openvino
def test_bf16_is_refused_on_a_cpu_without_it(toy_bundle, monkeypatch):
    from novic_ros.backends import ov_backend
    monkeypatch.setattr(ov_backend, 'cpu_bf16', lambda: '')
    with pytest.raises(ModelLoadError, match='amx_bf16, avx512_bf16.*use precision int8 or fp32'):
        build_classifier(ModelParams(model=str(toy_bundle), backend='openvino', precision='bf16'))
    with pytest.raises(ModelLoadError, match="bf16 is the openvino backend's"):
        build_classifier(ModelParams(model=str(toy_bundle), backend='onnxruntime', precision='bf16'))


@needs_openvino
def test_int8_graphs_are_made_once_kept_in_the_bundle_and_agree(toy_bundle, renders, ort_tops, tmp_path):
    bundle_dir = tmp_path / 'bundle'
    shutil.copytree(toy_bundle, bundle_dir)
    assert 'ov_int8' not in json.loads((bundle_dir / 'bundle.json').read_text())
    params = ModelParams(model=str(bundle_dir), backend='openvino', precision='int8', engine_dir=str(tmp_path / 'e'))
    clf = build_classifier(params)
    meta = json.loads((bundle_dir / 'bundle.json').read_text())
    for graph in ('image_encoder', 'decoder_prefill', 'decoder_step'):
        name = meta['graphs'][graph]['ov_int8']
        assert (bundle_dir / name).is_file() and (bundle_dir / name.replace('.xml', '.bin')).is_file()
        assert name in meta['files'] and name.replace('.xml', '.bin') in meta['files']
    assert meta['ov_int8']['encoder_min_cosine'] >= 0.98
    agree = np.mean([a == b for a, b in zip(tops(clf, renders), ort_tops)])
    assert agree >= 0.95, f"OpenVINO int8 top-1 agrees with fp32 on {agree:.1%} of toy renders"
    made = (bundle_dir / meta['graphs']['image_encoder']['ov_int8']).stat().st_mtime_ns
    build_classifier(params)                                  # kept: not quantised again
    assert (bundle_dir / meta['graphs']['image_encoder']['ov_int8']).stat().st_mtime_ns == made


@needs_openvino
def test_prompted_mode_embeds_labels_as_onnxruntime_does(toy_bundle, renders, tmp_path):
    labels = ['dog', 'cat', 'horse', 'car', 'cup']
    common = dict(model=str(toy_bundle), mode='prompted', labels=labels, text_cache_dir=str(tmp_path))
    ov = build_classifier(ModelParams(backend='openvino', engine_dir=str(tmp_path / 'e'), **common))
    ort = build_classifier(ModelParams(backend='onnxruntime', **common))
    a = ov.backend.text_encoder.encode_texts(labels)
    b = ort.backend.text_encoder.encode_texts(labels)
    assert np.abs(a - b).max() < 1e-4
    assert tops(ov, renders[:24]) == tops(ort, renders[:24])


@needs_openvino
def test_devices_openvino_does_not_see_or_run_are_refused_naming_the_fix(toy_bundle):
    import openvino as ov
    seen = [d.lower() for d in ov.Core().available_devices]
    for device in ('gpu', 'npu'):
        if device not in seen:
            with pytest.raises(ModelLoadError, match=f"device '{device}'.*it sees: cpu"):
                build_classifier(ModelParams(model=str(toy_bundle), backend='openvino', device=device))
    with pytest.raises(ModelLoadError, match='CUDA GPU, which OpenVINO does not run'):
        build_classifier(ModelParams(model=str(toy_bundle), backend='openvino', device='cuda'))
    with pytest.raises(ModelLoadError, match='use backend openvino with it'):
        build_classifier(ModelParams(model=str(toy_bundle), backend='onnxruntime', device='gpu'))
    with pytest.raises(ModelLoadError, match='fp16 with openvino is for a GPU or NPU'):
        build_classifier(ModelParams(model=str(toy_bundle), backend='openvino', precision='fp16', device='cpu'))


def test_without_openvino_the_backend_names_the_extra(toy_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, 'openvino', None)          # import openvino -> ImportError
    monkeypatch.delitem(sys.modules, 'novic_ros.backends.ov_backend', raising=False)
    import novic_ros.backends
    monkeypatch.delattr(novic_ros.backends, 'ov_backend', raising=False)   # `from .backends import` looks here first
    with pytest.raises(ModelLoadError, match=r'pip install novic_ros\[openvino\]'):
        build_classifier(ModelParams(model=str(toy_bundle), backend='openvino'))


@needs_openvino
def test_runs_torch_free(toy_bundle, renders, ort_tops, tmp_path):
    """novic-classify on the openvino backend where importing torch fails (a robot's runtime install)."""
    from PIL import Image
    from torch_free import MESSAGE, run_module, torch_free_env
    paths = []
    for i, x in enumerate(renders[:6]):
        paths.append(tmp_path / f'{i}.png')
        Image.fromarray(x.image).save(paths[-1])
    env = torch_free_env(tmp_path / 'hook')
    r = run_module('novic_ros.cli.classify', [*map(str, paths), '--model', str(toy_bundle), '--backend', 'openvino',
                                              '--engine-dir', str(tmp_path / 'e'), '--json'], env)
    assert r.returncode == 0 and MESSAGE not in r.stderr, r.stderr[-2000:]
    assert [g['labels'][0]['label'] for g in json.loads(r.stdout)] == ort_tops[:6]


@needs_openvino
def test_auto_on_the_cpu_keeps_the_runtime_measured_fastest_and_caches_the_measurement(
    toy_bundle, monkeypatch, tmp_path
):
    from novic_ros.backends import auto_select
    params = lambda d: ModelParams(model=str(toy_bundle), backend='auto', device='cpu', engine_dir=str(tmp_path / d))  # noqa: E731
    real = build_classifier(params('real'))                 # measured for real on this machine
    cache = json.loads((tmp_path / 'real' / auto_select.CACHE_FILE).read_text())
    (key, entry), = cache.items()
    assert set(entry['measured_ms']) == {'onnxruntime', 'openvino'} and min(entry['measured_ms'].values()) > 0
    assert real.backend.name == min(entry['measured_ms'], key=entry['measured_ms'].get)
    assert auto_select.cpu_model() in key and 'auto: ' in real.backend.selection
    for fast in ('openvino', 'onnxruntime'):
        monkeypatch.setattr(
            auto_select, 'time_frame', lambda backend, *a, fast=fast: 1.0 if backend.name == fast else 9.0
        )
        assert build_classifier(params(fast)).backend.name == fast
    # A restart reads the cached measurement: nothing is timed again, only the winner is built.
    monkeypatch.setattr(auto_select, 'time_frame', lambda *a: pytest.fail("measured again"))
    again = build_classifier(params('openvino'))
    assert again.backend.name == 'openvino' and 'cached measurement' in again.backend.selection
    from novic_ros.backends.devices import cpu_bf16
    if cpu_bf16():                                           # bf16: the one runtime that has it, nothing to measure
        assert build_classifier(ModelParams(model=str(toy_bundle), backend='auto', precision='bf16',
                                            engine_dir=str(tmp_path / 'e'))).backend.name == 'openvino'
