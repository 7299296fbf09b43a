"""A models-file variant (the README's `model: toy`) whose bundle is cached and up to date runs without
importing torch; torch is imported only to export, when the bundle is missing or the variant's files
changed (core/export_record.py). Each start is a fresh process, as the node's is: the first exports,
the second must label the same frame the same way with torch absent from sys.modules."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

START = r'''
import json, sys
import numpy as np
from PIL import Image
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier
models_file, engine_dir, image = sys.argv[1:]
c = build_classifier(ModelParams(model='toy', models_file=models_file, backend='onnxruntime', engine_dir=engine_dir))
labels = c.classify(np.asarray(Image.open(image).convert('RGB')))[0].labels
print(json.dumps({'labels': [[l.text, l.score] for l in labels], 'torch': 'torch' in sys.modules}))
'''


def _start(tmp_path, models_file, engine_dir, image) -> dict:
    env = {**os.environ, 'NOVIC_ROS_CACHE': str(tmp_path / 'cache')}
    r = subprocess.run([sys.executable, '-c', START, models_file, engine_dir, image], capture_output=True, text=True,
                       timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_cached_variant_runs_without_torch_and_a_changed_file_exports_again(tmp_path, monkeypatch):
    from novic_ros.core.export_record import cached_bundle, record_path
    from novic_ros.core.variants import get_variant
    shutil.copytree(REPO / 'models' / 'toy', tmp_path / 'toy', ignore=shutil.ignore_patterns('train_log.csv'))
    models_file = tmp_path / 'models.yaml'
    models_file.write_text("toy:\n  clip_model: local-dir:toy/clip\n  pretrained: null\n  decoder: toy/decoder\n")
    engine_dir = tmp_path / 'engines'
    image = tmp_path / 'frame.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(image)

    first = _start(tmp_path, models_file, engine_dir, image)
    assert first['torch']                                  # nothing cached: torch loads and exports
    variant = get_variant('toy', models_file)
    assert record_path(variant, engine_dir).is_file()
    second = _start(tmp_path, models_file, engine_dir, image)
    assert not second['torch'], "the cached, unchanged variant imported torch"
    assert [l for l, _ in second['labels']] == [l for l, _ in first['labels']]
    assert np.allclose([s for _, s in second['labels']], [s for _, s in first['labels']], atol=1e-6)

    bundle = cached_bundle(variant, engine_dir, with_decoder=True, fp16=False, strict=True)
    assert bundle is not None
    umask = os.umask(0o022)
    os.umask(umask)
    # Readable by other users unless the umask says otherwise (mkdtemp alone gives 0700).
    assert Path(bundle.folder).stat().st_mode & 0o777 == 0o777 & ~umask
    # The bundle folder named as a user types it, with or without './'.
    monkeypatch.chdir(Path(bundle.folder).parent)
    for name in (Path(bundle.folder).name, './' + Path(bundle.folder).name):
        assert get_variant(name, models_file).bundle == Path(bundle.folder).resolve()
    weights = tmp_path / 'toy' / 'decoder' / 'model.safetensors'
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))   # retrained: same size, newer
    assert cached_bundle(variant, engine_dir, with_decoder=True, fp16=False, strict=True) is None
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cached_bundle(variant, engine_dir, with_decoder=True, fp16=False, strict=True) is not None
    # What the bundle lacks (TensorRT fp16's image encoder) sends the start to torch's export too.
    assert cached_bundle(variant, engine_dir, with_decoder=True, fp16=True, strict=True) is None
