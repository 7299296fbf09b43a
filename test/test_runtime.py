"""The torch-free runtime: a bundle exported here runs in processes where importing torch fails
(novic-classify, novic-eval offline, novic_node) and gives the labels that torch gives; int8
graphs are made on demand, kept in the bundle, and agree with fp32."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from novic_ros.core.bundle import read_bundle
from novic_ros.frames.image_files import read_image
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier
from novic_ros.training import toy_world
from torch_free import MESSAGE, run_module, torch_free_env

PROMPT_LABELS = ['dog', 'cat', 'pizza', 'bicycle', 'guitar']


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    return torch_free_env(tmp_path_factory.mktemp('torch_free'))


@pytest.fixture(scope='module')
def pictures(tmp_path_factory):
    """Toy renders as PNG files with a labels.json (what novic-eval make-bag turns into annotations)."""
    folder = tmp_path_factory.mktemp('pictures')
    items = toy_world.render_set(1, (120, 160), seed=11, classes=list(range(0, 162, 27)))
    labels = {}
    for i, x in enumerate(items):
        Image.fromarray(x.image).save(folder / f'{i:02d}.png')
        labels[f'{i:02d}.png'] = [x.label]
    (folder / 'labels.json').write_text(json.dumps(labels))
    return folder


@pytest.fixture(scope='module')
def reference():
    """The toy variant on eager torch, in this process: what the torch-free processes must match."""
    common = dict(model='toy', backend='torch', device='cpu')
    return (build_classifier(ModelParams(**common)),
            build_classifier(ModelParams(mode='prompted', labels=PROMPT_LABELS, top_k=3, **common)))


def test_the_hook_makes_importing_torch_fail(env):
    for module in ('torch', 'open_clip', 'torch.nn'):
        r = subprocess.run([sys.executable, '-c', f'import {module}'], env=env, capture_output=True, text=True)
        assert r.returncode != 0 and MESSAGE in r.stderr, (module, r.stderr)


def _assert_same_labels(got: list[dict], expected, paths):
    assert [g['image'] for g in got] == [str(p) for p in paths]
    for g, e in zip(got, expected):
        assert [x['label'] for x in g['labels']] == [l.text for l in e.labels]
        assert np.allclose([x['score'] for x in g['labels']], [l.score for l in e.labels], atol=1e-3)


def test_classify_without_torch_gives_the_labels_of_torch(toy_bundle, env, pictures, reference):
    paths = sorted(pictures.glob('*.png'))
    frames = [read_image(p) for p in paths]
    gen, prompted = reference
    r = run_module('novic_ros.cli.classify', [*map(str, paths), '--model', str(toy_bundle), '--backend', 'onnxruntime',
                                              '--json'], env)
    assert r.returncode == 0, r.stderr
    _assert_same_labels(json.loads(r.stdout), gen.classify(frames), paths)
    # Prompted mode: the bundle's tokenizer and text graph embed the labels, still without torch.
    r = run_module('novic_ros.cli.classify', [*map(str, paths), '--model', str(toy_bundle), '--backend', 'onnxruntime',
                                              '--json', '--mode', 'prompted', '--labels', *PROMPT_LABELS], env)
    assert r.returncode == 0, r.stderr
    _assert_same_labels(json.loads(r.stdout), prompted.classify(frames), paths)


def test_a_models_file_variant_without_torch_says_how_to_deploy(env, pictures, tmp_path):
    # An empty engine cache: with the variant's export cached, the start would run it without torch.
    r = run_module('novic_ros.cli.classify', [str(next(pictures.glob('*.png'))), '--model', 'toy',
                                              '--backend', 'onnxruntime', '--engine-dir', str(tmp_path)], env)
    assert r.returncode == 1
    assert 'needs torch' in r.stderr and 'novic-export --model toy --out FOLDER' in r.stderr


def test_eval_offline_without_torch(toy_bundle, env, pictures, reference, tmp_path):
    from novic_ros.cli.eval import main as eval_main
    bag = tmp_path / 'bag'
    assert eval_main(['make-bag', str(pictures), str(bag), '--no-progress']) == 0
    out = tmp_path / 'report'
    r = run_module('novic_ros.cli.eval', ['offline', str(bag), '--out', str(out), '--model', str(toy_bundle),
                                          '--backend', 'onnxruntime', '--no-progress'], env)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / 'labels.jsonl').read_text().splitlines()]
    expected = reference[0].classify([read_image(p) for p in sorted(pictures.glob('*.png'))])
    assert len(rows) == len(expected)
    assert [row['labels'][0]['label'] for row in rows] == [e.top.text for e in expected]
    summary = json.loads((out / 'summary.json').read_text())
    assert 'onnxruntime' in summary['backend'] and summary['score'] is not None


def test_int8_is_made_on_demand_kept_in_the_bundle_and_agrees_with_fp32(toy_bundle):
    fp32 = build_classifier(ModelParams(model=str(toy_bundle), backend='onnxruntime'))
    int8 = build_classifier(ModelParams(model=str(toy_bundle), backend='onnxruntime', precision='int8'))
    bundle = read_bundle(toy_bundle)
    assert all(bundle.has_graph(g, 'int8') for g in ('image_encoder', 'decoder_prefill', 'decoder_step'))
    assert int8.backend.precision == 'int8' and 'int8' in int8.backend.describe()
    frames = [x.image for x in toy_world.render_set(1, (120, 160), seed=5)]          # one of each of 162 nouns
    e32 = fp32.backend.encode_images(fp32.preprocess(frames))
    e8 = int8.backend.encode_images(int8.preprocess(frames))
    assert 0 < np.abs(e8 - e32).max() < 0.2             # quantised graphs did run, and stay close
    agree = np.mean([a.top.text == b.top.text for a, b in zip(fp32.classify(frames), int8.classify(frames))])
    assert agree >= 0.95, f"int8 top-1 agrees with fp32 on {agree:.1%} of toy renders"
    with pytest.raises(Exception, match='int8 runs on the CPU'):
        build_classifier(ModelParams(model=str(toy_bundle), backend='tensorrt', precision='int8'))


def test_node_labels_frames_without_torch(toy_bundle, env, reference, tmp_path):
    """novic_node on ONNX Runtime from the bundle, in a process where importing torch fails."""
    rclpy = pytest.importorskip('rclpy')
    from sensor_msgs.msg import Image as ImageMsg
    from vision_msgs.msg import Classification
    from ros_helpers import NodeProcess, RosClient
    frames = [x.image for x in toy_world.render_set(1, (120, 160), seed=2, classes=[0, 40, 80, 120])]
    rclpy.init()
    ros = RosClient('novic_torch_free_client')
    node = NodeProcess(tmp_path, 'qos:=reliable', f'model:={toy_bundle}', 'backend:=onnxruntime', 'top_k:=3',
                       namespace='/novic_rt', env=env)
    try:
        out = ros.subscribe(Classification, '/novic_rt/labels')
        pub = ros.publisher(ImageMsg, '/novic_rt/image')
        ros.wait_matched(pub, node)
        for i, f in enumerate(frames):
            msg = ImageMsg(height=f.shape[0], width=f.shape[1], encoding='rgb8', step=f.shape[1] * 3, data=f.tobytes())
            msg.header.frame_id = f'f{i}'
            pub.publish(msg)
            assert out.wait_for(lambda m: len(m) > i, 60), node.log()      # one at a time: none is dropped
        got = {m.header.frame_id: m for m in out.items}
        for i, e in enumerate(reference[0].classify(frames)):
            assert [r.class_id for r in got[f'f{i}'].results] == [l.text for l in e.labels]
            assert np.allclose([r.score for r in got[f'f{i}'].results], [l.score for l in e.labels], atol=1e-3)
        assert 'onnxruntime' in node.log() and MESSAGE not in node.log()
    finally:
        node.stop()
        ros.close()
        rclpy.try_shutdown()


def test_torch_tools_say_what_they_need_in_one_line(env):
    """novic-toy, -train, -export, -bench where torch cannot be imported, as console scripts and by module
    (`python -m novic_ros.cli.toy`): one line naming the install command (no traceback); --help exits 0,
    a run exits 1."""
    for tool in ('toy', 'train', 'export', 'bench'):
        code = f"import sys; from novic_ros.cli.torch_tools import {tool}; sys.exit({tool}(sys.argv[1:]))"
        for command in ([sys.executable, '-c', code], [sys.executable, '-m', f'novic_ros.cli.{tool}']):
            for args, rc in ((['--help'], 0), ([], 1)):
                r = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120)
                out = (r.stdout + r.stderr).strip()
                assert r.returncode == rc and 'Traceback' not in out, (command, args, out)
                assert len(out.splitlines()) == 1 and 'needs torch' in out and 'requirements-core.txt' in out, out


def test_novic_node_help_prints_the_parameters_and_exits(env):
    """novic_node --help lists every parameter of the one table and exits 0 without starting a node
    (torch blocked: the help needs none)."""
    from novic_ros.params import PARAMS
    code = "import sys; from novic_ros.ros.node_main import main; sys.exit(main(['--help']))"
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('usage: novic_node')
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.startswith('  ')}
    assert listed == {p.name for p in PARAMS}
