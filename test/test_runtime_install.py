"""A runtime install: a fresh virtual environment with requirements-runtime.txt and novic_ros
(without its dependencies), no torch, labels an image from a bundle exported here, answers every
console script's --help, and with requirements-eval.txt added runs `novic-eval offline` on a small
bag from the bundle. The slowest test of the runtime (pip builds novic_ros and installs onnxruntime,
numpy, Pillow, PyYAML, ftfy, regex, then rosbags, mcap, zstandard, apsw and matplotlib; about 45 s
with pip's cache warm)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from novic_ros.eval.make_bag import make_bag
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier
from novic_ros.training import toy_world

REPO = Path(__file__).resolve().parent.parent


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
    return r


def test_runtime_install_without_torch_labels_an_image(toy_bundle, tmp_path):
    files = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip('not a git checkout')
    src = tmp_path / 'src'                              # exactly what a clone holds, built outside the checkout
    for rel in files.stdout.split():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    venv = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv])
    pip = [
        sys.executable,
        '-m',
        'pip',
        '--python',
        venv / 'bin' / 'python',
        'install',
        '-q',
        '--disable-pip-version-check',
    ]
    _run(pip + ['-r', src / 'requirements-runtime.txt', '-c', src / 'requirements-lock.txt'])   # CI's versions
    _run(pip + ['--no-deps', src])
    python = venv / 'bin' / 'python'
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'NOVIC_ROS_SHARE')}
    env['NOVIC_ROS_CACHE'] = str(tmp_path / 'cache')
    probe = _run([python, '-c', 'import importlib.util as u; print([m for m in ("torch", "open_clip", "onnx") '
                  'if u.find_spec(m)])'], env=env, cwd=tmp_path)
    assert probe.stdout.strip() == '[]'                # nothing of the export side is installed
    img = tmp_path / 'dog.png'
    frame = toy_world.render(toy_world.NOUNS.index('dog'), (120, 160), np.random.default_rng(3))
    Image.fromarray(frame).save(img)
    r = _run([venv / 'bin' / 'novic-classify', img, '--model', toy_bundle, '--backend', 'onnxruntime', '--json'],
             env=env, cwd=tmp_path)
    (got,) = json.loads(r.stdout)
    classifier = build_classifier(ModelParams(model=str(toy_bundle), backend='onnxruntime'))
    expected = classifier.classify(frame)[0]
    assert [x['label'] for x in got['labels']] == [l.text for l in expected.labels]
    assert np.allclose([x['score'] for x in got['labels']], [l.score for l in expected.labels], atol=1e-5)
    # Every tool answers --help here without a traceback: the torch-free ones with their flags.
    scripts = re.findall(r"'([\w-]+) = novic_ros[\w.]*:\w+'", (src / 'setup.py').read_text())
    assert 'novic_node' in scripts and 'novic-export' in scripts
    for name in scripts:
        r = subprocess.run([venv / 'bin' / name, '--help'], capture_output=True, text=True, timeout=120,
                           env=env, cwd=tmp_path)
        assert r.returncode == 0 and 'Traceback' not in r.stdout + r.stderr, f"{name} --help\n{r.stdout}\n{r.stderr}"
        # A tool that needs torch answers with the one line that says what to install.
        assert r.stdout.lower().startswith('usage') or 'pip install' in r.stdout, f"{name} --help\n{r.stdout}"

    # novic-eval offline on a small bag, from the bundle, with requirements-eval.txt added (still no torch):
    # the labels of every frame are the bundle's, and the report scores them against the bag's annotations.
    _run(pip + ['-r', src / 'requirements-eval.txt', '-c', src / 'requirements-lock.txt'])
    assert _run(probe.args, env=env, cwd=tmp_path).stdout.strip() == '[]'
    images = tmp_path / 'images'
    images.mkdir()
    nouns = ('dog', 'apple', 'car')
    frames = [toy_world.render(toy_world.NOUNS.index(n), (120, 160), np.random.default_rng(i))
              for i, n in enumerate(nouns)]
    for i, f in enumerate(frames):
        Image.fromarray(f).save(images / f'{i:02d}.png')
    (images / 'labels.json').write_text(json.dumps({f'{i:02d}.png': n for i, n in enumerate(nouns)}))
    bag = make_bag(images, tmp_path / 'bag', progress=False)
    report = tmp_path / 'report'
    _run([venv / 'bin' / 'novic-eval', 'offline', bag.bag, '--model', toy_bundle, '--backend', 'onnxruntime',
          '--out', report, '--no-progress'], env=env, cwd=tmp_path)
    rows = [json.loads(line) for line in (report / 'labels.jsonl').read_text().splitlines()]
    assert [r['index'] for r in rows] == list(range(len(nouns)))
    for row, want in zip(rows, classifier.classify(frames)):
        assert [x['label'] for x in row['labels']] == [l.text for l in want.labels]
        assert np.allclose([x['score'] for x in row['labels']], [l.score for l in want.labels], atol=1e-4)
    summary = json.loads((report / 'summary.json').read_text())
    assert summary['labelled'] == len(nouns) and summary['score']['n'] == len(nouns)
    assert set(summary['score']['per_class']) == set(nouns)
