"""A NOVIC authors' checkpoint as a model everywhere a model is named: `model` set to the checkpoint
file (build_classifier: the torch and onnxruntime backends), a models-file entry
`{novic_checkpoint: PATH}`, `novic-classify --model PATH`, `novic-export` to a bundle that runs
torch-free, `novic-eval offline --model PATH` and the node's `model:=PATH`. Each is checked against
the outputs the NOVIC reference implementation itself produced for the same images
(test/data/novic_reference, see test_novic_reference.py): labels in order, probabilities within 1e-4
(the CLIs print scores rounded to 6 decimals)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_models import make_dfn_repo
from novic_ros.core.errors import ModelLoadError
from novic_ros.core.variants import get_variant
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier
from test_novic_reference import DATA, EXPECTED, TOL, _same
from torch_free import torch_free_env

CKPT = DATA / EXPECTED['checkpoint']
IMAGES = [DATA / name for name in EXPECTED['images']]
DEFAULT = next(r for r in EXPECTED['runs'] if r['gencfg'] == 'beam_k10_vnone_gp_t1_a0' and not r['guide_targets'])


@pytest.fixture(scope='module')
def hf_cache(tmp_path_factory):
    """The tiny DFN-shaped CLIP the reference ran with, in an offline Hugging Face cache: in this
    process (huggingface_hub reads its settings at import) and for child processes (env)."""
    import huggingface_hub.constants as hf
    cache = tmp_path_factory.mktemp('hf_hub_surfaces')
    make_dfn_repo(cache, seed=0)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'HF_HUB_CACHE': str(cache)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf, 'HF_HUB_OFFLINE', True)
        mp.setattr(hf, 'HF_HUB_CACHE', str(cache))
        yield env


@pytest.fixture(scope='module')
def frames():
    return [np.asarray(Image.open(p).convert('RGB')) for p in IMAGES]


def _labels(results):
    return [[(l.text, l.score) for l in r.labels] for r in results]


def _params(tmp, **kw) -> ModelParams:
    base = dict(model=str(CKPT), device='cpu', engine_dir=str(tmp / 'engines'), text_cache_dir=str(tmp / 'text'),
                top_k=10, beam_width=10, preprocessing='exact')    # the reference's own (open_clip's) pixels
    return ModelParams(**{**base, **kw})


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_every_reference_configuration_through_the_pipeline(hf_cache, frames, tmp_path, backend):
    """`model` = the checkpoint file: the default generation is the reference's, and each of its
    configurations named in `generation` (a guided one with a label list in `labels`) gives the
    reference's labels for the images, through the CLIP encoder."""
    clf = build_classifier(_params(tmp_path, backend=backend))
    assert clf.novic is not None and 'NOVIC checkpoint' in clf.source
    _same(_labels(clf.classify(frames)), DEFAULT['images'], TOL)
    for run in EXPECTED['runs']:
        k = int(run['gencfg'].split('_k')[1].split('_')[0])
        named = _params(tmp_path, backend=backend, generation=run['gencfg'], top_k=k,
                        labels=tuple(run['guide_targets'] or ()))
        _same(_labels(clf.with_options(named.to_options()).classify(frames)), run['images'], TOL)


def test_a_models_file_entry_and_its_refusals(hf_cache, frames, tmp_path):
    models = tmp_path / 'models.yaml'
    models.write_text(f"mybot: {{novic_checkpoint: {CKPT}}}\n"
                      f"wrong_clip: {{novic_checkpoint: {CKPT}, clip_model: ViT-B-32, pretrained: 'random:0'}}\n")
    assert get_variant('mybot', models).is_novic
    clf = build_classifier(_params(tmp_path, model='mybot', models_file=str(models), backend='torch'))
    _same(_labels(clf.classify(frames)), DEFAULT['images'], TOL)
    # A CLIP override whose embeddings the decoder cannot read is refused naming both widths.
    with pytest.raises(ModelLoadError, match='32-wide.*512-wide'):
        build_classifier(_params(tmp_path, model='wrong_clip', models_file=str(models), backend='torch'))
    with pytest.raises(ModelLoadError, match='not found.*novic-fetch'):
        get_variant(str(tmp_path / 'absent.train'))
    # A reference configuration on novic_ros's own decoder: refused when the settings are built.
    with pytest.raises(ValueError, match='NOVIC reference configuration'):
        build_classifier(ModelParams(model='toy', backend='torch', device='cpu', generation='greedy_k1_vnone_gp_t1_a0',
                                     top_k=1, engine_dir=str(tmp_path / 'engines')))
    with pytest.raises(ValueError, match="cannot read part 'q3'"):
        ModelParams(generation='beam_k10_q3')


def _cli(tool: str, args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', f'import sys; from novic_ros.cli.{tool} import main; '
                           'sys.exit(main(sys.argv[1:]))', *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _printed(stdout: str):
    return [[(l['label'], l['score']) for l in item['labels']] for item in json.loads(stdout)]


def _same_rounded(ours, theirs):
    """As _same, for scores printed to 6 decimals: the same labels in order, each score the reference's
    probability rounded (within 1e-6)."""
    assert [[l for l, _ in row] for row in ours] == [[l for l, _ in row] for row in theirs]
    for row_o, row_t in zip(ours, theirs):
        assert all(abs(po - pt) <= 1e-6 for (_, po), (_, pt) in zip(row_o, row_t)), (row_o, row_t)


def test_classify_cli_export_and_the_torch_free_bundle(hf_cache, tmp_path):
    """novic-classify --model PATH.train equals the reference; novic-export of the checkpoint gives a
    bundle that novic-classify runs with torch absent, with the same labels."""
    images = [str(p) for p in IMAGES]
    top = ['--top-k', '10', '--beam-width', '10', '--json', '--preprocessing', 'exact']
    engines = ['--engine-dir', str(tmp_path / 'engines')]
    ran = _cli('classify', ['--model', str(CKPT), '--backend', 'onnxruntime', *engines, *top, *images], hf_cache)
    assert ran.returncode == 0, ran.stderr
    _same_rounded(_printed(ran.stdout), DEFAULT['images'])
    bundle = tmp_path / 'ref-bundle'
    exported = _cli('export', ['--model', str(CKPT), '--out', str(bundle), '--precisions', 'fp32', *engines], hf_cache)
    assert exported.returncode == 0, exported.stderr
    assert (
        json.loads((bundle / 'bundle.json').read_text())['decoder']['novic']['default_generation'] == DEFAULT['gencfg']
    )
    free = torch_free_env(tmp_path / 'no_torch', hf_cache)
    ran = _cli('classify', ['--model', str(bundle), '--backend', 'onnxruntime', *top, *images], free)
    assert ran.returncode == 0, ran.stderr
    _same_rounded(_printed(ran.stdout), DEFAULT['images'])
    check = subprocess.run([sys.executable, '-c', 'import torch'], env=free, capture_output=True, text=True)
    assert check.returncode != 0 and 'torch-free' in check.stderr      # the hook was in force


def test_eval_offline_runs_the_checkpoint(hf_cache, tmp_path):
    from novic_ros.eval.make_bag import make_bag
    folder = tmp_path / 'images'
    folder.mkdir()
    for p in IMAGES:
        (folder / p.name).write_bytes(p.read_bytes())
    bag = make_bag(folder, tmp_path / 'bag', transport='compressed', fmt='png', progress=False).bag
    out = tmp_path / 'report'
    ran = _cli('eval', ['offline', str(bag), '--model', str(CKPT), '--backend', 'onnxruntime', '--out', str(out),
                        '--engine-dir', str(tmp_path / 'engines'), '--top-k', '10', '--beam-width', '10',
                        '--preprocessing', 'exact', '--no-progress'], hf_cache)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    rows = [json.loads(line) for line in (out / 'labels.jsonl').read_text().splitlines()]
    assert len(rows) == len(IMAGES)
    _same_rounded([[(l['label'], l['score']) for l in r['labels']] for r in rows], DEFAULT['images'])


def test_the_node_runs_the_checkpoint(hf_cache, frames, tmp_path):
    """model:=PATH.train on the node: /novic labels are the reference's top 3 for the frame."""
    rclpy = pytest.importorskip('rclpy')
    from sensor_msgs.msg import Image as ImageMsg
    from vision_msgs.msg import Classification
    from novic_ros.frames.conversion import rgb_to_raw
    from ros_helpers import NodeProcess, RosClient
    node = NodeProcess(tmp_path, f'model:={CKPT}', 'backend:=onnxruntime', 'qos:=reliable', 'preprocessing:=exact',
                       f'engine_dir:={tmp_path / "engines"}', namespace='/novicref', env=hf_cache)
    rclpy.init()
    ros = RosClient('novic_ref_client')
    try:
        out = ros.subscribe(Classification, '/novicref/labels')
        pub = ros.publisher(ImageMsg, '/novicref/image')
        ros.wait_matched(pub, node)
        data, step = rgb_to_raw(frames[0], 'rgb8')
        msg = ImageMsg(height=frames[0].shape[0], width=frames[0].shape[1], encoding='rgb8', step=step, data=data)
        end = time.monotonic() + 60
        while not len(out) and time.monotonic() < end:
            pub.publish(msg)
            out.wait_for(lambda m: len(m) > 0, 2)
        assert len(out), node.log()
        got = [(r.class_id, r.score) for r in out.items[0].results]
        _same([got], [DEFAULT['images'][0][:3]], TOL)
    finally:
        ros.close()
        rclpy.try_shutdown()
        node.stop()


def test_objects_mode_names_windows_with_the_checkpoints_guided_greedy(hf_cache, frames, tmp_path):
    """Multi-object windows get one label each from the reference's greedy search with the default's
    guiding: every label is one of the checkpoint's nouns (the unguided search would spell others)."""
    from novic_ros.models.novic_checkpoint import load_novic_checkpoint
    from novic_ros.pipeline import build_object_finder
    params = _params(tmp_path, backend='onnxruntime', object_min_score=0.0, object_min_similarity=0.0)
    finder = build_object_finder(build_classifier(params), params)
    seen, _ = finder.look(frames)
    labels = [l for w in seen for l in w.labels if l]
    assert labels and set(labels) <= set(load_novic_checkpoint(CKPT).nouns)
    assert all(f.objects for f in finder.classify(frames))


SIGLIP_NOUNS = ['dog', 'cat', 'red apple', 'hot air balloon', 'traffic light', 'coffee mug', 'fire truck', 'bicycle',
                'golden retriever', 'tree', 'robot', 'clock', 'car', 'x ray', 'cafe']


@pytest.fixture(scope='module')
def siglip_ckpt(hf_cache, tmp_path_factory):
    """A SigLIP-embedder checkpoint in the reference's format (test/novic_format.py), its targets spelled
    by transformers' AutoTokenizer of the tiny SigLIP repo, cleaned as open_clip cleans SigLIP text:
    what the reference's tokenize_target gives. Returns (checkpoint, that tokenizer)."""
    from transformers import AutoTokenizer
    from hf_models import SIGLIP_REPO, make_siglip_repo, snapshot
    from novic_format import write_checkpoint
    make_siglip_repo(Path(hf_cache['HF_HUB_CACHE']))
    tok = AutoTokenizer.from_pretrained(str(snapshot(Path(hf_cache['HF_HUB_CACHE']), SIGLIP_REPO)))
    end = tok.eos_token_id
    assert tok.pad_token_id == end

    def encode(noun):
        ids = tok(noun)['input_ids']
        assert ids[-1] == end
        return ids[:-1]
    path = write_checkpoint(tmp_path_factory.mktemp('siglip_ckpt') / 'ovod_chunk0001_siglip.train', SIGLIP_NOUNS,
                            encode=encode, end_id=end, tokenizer_size=len(tok), seed=3,
                            embedder_spec='openclip:' + SIGLIP_REPO)
    return path, tok


def test_a_siglip_checkpoint_spells_and_runs_torch_free(hf_cache, siglip_ckpt, tmp_path):
    """The SigLIP checkpoints' targets are their tokenizer's ids: our vocabulary encodes each noun as the
    reference does and decodes as transformers does; the pipeline's labels (torch, onnxruntime) are
    transformers' decoding of the reference search's tokens; the exported bundle gives them torch-free."""
    from novic_ros.core.novic_generation import NovicGenConfig, novic_generate
    from novic_ros.models.novic_checkpoint import load_novic_checkpoint
    from novic_ros.models.torch_runners import TorchCachedRunner
    path, tok = siglip_ckpt
    ck = load_novic_checkpoint(path)
    unmap = ck.vocab.token_ids
    for noun in SIGLIP_NOUNS:
        ids = ck.vocab.encode(noun)
        assert unmap[ids].tolist() == tok(noun)['input_ids']
        assert ck.vocab.decode(ids) == tok.decode(unmap[ids].tolist(), skip_special_tokens=True) == noun
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (40, 52, 3), dtype=np.uint8) for _ in range(3)]
    clf = build_classifier(_params(tmp_path, model=str(path), backend='torch'))
    embeds = np.asarray(clf.encode(clf.preprocess(frames)), np.float32)
    _, guide = ck.noun_targets()
    res = novic_generate(TorchCachedRunner(ck.decoder, 0), embeds, NovicGenConfig.from_name(DEFAULT['gencfg']),
                         ck.token_length, guide, guide)
    expected = [[(tok.decode(unmap[t].tolist(), skip_special_tokens=True), float(np.exp(s))) for t, s in zip(ts, ss)]
                for ts, ss in zip(res.tokens, res.scores)]
    assert all(label in SIGLIP_NOUNS for row in expected for label, _ in row)      # guided to the nouns
    _same(_labels(clf.classify(frames)), expected, TOL)
    ort = build_classifier(_params(tmp_path, model=str(path), backend='onnxruntime'))
    _same(_labels(ort.classify(frames)), expected, TOL)
    bundle = tmp_path / 'siglip-bundle'
    from novic_ros.cli.export import main as export_main       # in this process: the tiny timm tower is registered here
    assert export_main(['--model', str(path), '--out', str(bundle), '--precisions', 'fp32', '--no-text-encoder',
                        '--engine-dir', str(tmp_path / 'engines')]) == 0
    pictures = []
    for i, f in enumerate(frames):
        pictures.append(str(tmp_path / f'{i}.png'))
        Image.fromarray(f).save(pictures[-1])
    free = {**torch_free_env(tmp_path / 'no_torch', hf_cache), 'HF_HUB_CACHE': str(tmp_path / 'empty_hub')}
    ran = _cli('classify', ['--model', str(bundle), '--backend', 'onnxruntime', '--top-k', '10', '--beam-width', '10',
                            '--preprocessing', 'exact', '--json', *pictures], free)
    assert ran.returncode == 0, ran.stderr
    _same_rounded(_printed(ran.stdout), expected)
