"""The CLIP embedders of the NOVIC authors' checkpoints, loaded as open_clip loads them, offline
from a Hugging Face cache: a DFN-shaped CLIP (378-style size, squash resize, QuickGELU, CLIP BPE)
and a SigLIP-shaped one (timm tower, Hugging Face tokenizer), both tiny and random (test/hf_models.py).
Their specs map onto ClipSpec; they export to bundles whose graphs match torch; SigLIP's tokenizer
travels in the bundle and runs without torch or transformers; a missing file is an error naming
it and where it goes."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from hf_models import (
    DFN_REPO,
    OPENAI_MEAN,
    OPENAI_STD,
    SIGLIP_REPO,
    SO400M_REPO,
    make_dfn_repo,
    make_siglip_repo,
    snapshot,
)
from novic_ros.core.embedder_specs import clip_spec_for_embedder
from novic_ros.core.errors import ModelLoadError
from novic_ros.core.variants import ClipSpec
from torch_free import MESSAGE, run_module, torch_free_env


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """An offline Hugging Face cache holding the tiny DFN- and SigLIP-shaped repositories."""
    import huggingface_hub.constants as hf
    cache = tmp_path_factory.mktemp('hf_hub')
    make_dfn_repo(cache)
    make_siglip_repo(cache)
    with pytest.MonkeyPatch.context() as mp:
        # huggingface_hub and transformers read these at call time (the variables HF_HUB_OFFLINE, HF_HUB_CACHE).
        mp.setattr(hf, 'HF_HUB_OFFLINE', True)
        mp.setattr(hf, 'HF_HUB_CACHE', str(cache))
        yield cache


def test_embedder_specs_map_onto_clip_specs(tmp_path):
    assert clip_spec_for_embedder('openclip:apple/DFN5B-CLIP-ViT-H-14-378') == ClipSpec(
        'hf-hub:apple/DFN5B-CLIP-ViT-H-14-378'
    )
    assert clip_spec_for_embedder('openclip:timm/ViT-B-16-SigLIP') == ClipSpec('hf-hub:timm/ViT-B-16-SigLIP')
    assert clip_spec_for_embedder('openai:ViT-B/32') == ClipSpec('ViT-B-32', 'openai')
    assert clip_spec_for_embedder('openai:ViT-L/14@336px') == ClipSpec('ViT-L-14-336', 'openai')
    # A bare weights file: open_clip's architecture for those weights, with QuickGELU and the tag's preprocessing.
    weights = tmp_path / 'open_clip_pytorch_model.bin'
    weights.write_bytes(b'x')
    assert clip_spec_for_embedder('openclip:apple/DFN5B-CLIP-ViT-H-14-378', pretrained=str(weights)) == \
        ClipSpec('ViT-H-14-378-quickgelu', str(weights), preprocess_tag='dfn5b')
    assert clip_spec_for_embedder('openclip:timm/ViT-SO400M-14-SigLIP', pretrained=str(weights)) == \
        ClipSpec('ViT-SO400M-14-SigLIP', str(weights), preprocess_tag='webli')
    # A folder: the model folder itself, a cached repo (models--ORG--NAME), or a cache root holding it.
    snap = snapshot(tmp_path / 'hub', SO400M_REPO)
    (snap / 'open_clip_config.json').write_text('{"model_cfg": {}}')
    local = ClipSpec('local-dir:' + str(snap))
    assert clip_spec_for_embedder('openclip:timm/ViT-SO400M-14-SigLIP', pretrained=str(snap)) == local
    assert clip_spec_for_embedder('openclip:timm/ViT-SO400M-14-SigLIP', pretrained=str(snap.parent.parent)) == local
    assert clip_spec_for_embedder('openclip:timm/ViT-SO400M-14-SigLIP', pretrained=str(tmp_path / 'hub')) == local
    # clip_model replaces the model outright.
    assert clip_spec_for_embedder(
        'openclip:timm/ViT-B-16-SigLIP', clip_model='ViT-B-16-SigLIP', pretrained='webli'
    ) == ClipSpec('ViT-B-16-SigLIP', 'webli')
    for spec, kw, match in [
        ('transformers:google/siglip-base', {}, 'not supported'),
        ('openai:ViT-Q/7', {}, 'unknown OpenAI'),
        ('ViT-B-32', {}, 'TYPE:NAME'),
        ('openclip:ViT-B-32', {}, 'repo id'),
        ('openclip:org/unknown', {'pretrained': str(weights)}, 'architecture must be known'),
        ('openclip:timm/ViT-B-16-SigLIP', {'pretrained': str(tmp_path / 'nothing.bin')}, 'does not exist'),
        ('openclip:timm/ViT-B-16-SigLIP', {'pretrained': str(tmp_path)}, 'holds no open_clip model'),
    ]:
        with pytest.raises(ModelLoadError, match=match):
            clip_spec_for_embedder(spec, **kw)


def test_the_dfn5b_tag_prescribes_squash_bicubic_and_openai_statistics():
    # What a bare weights file of DFN5B ViT-H-14-378 is given in place of open_clip's default resize-and-crop.
    from novic_ros.models.clip_encoder import tag_preprocess_cfg
    cfg = tag_preprocess_cfg('ViT-H-14-378-quickgelu', 'dfn5b', {'size': (378, 378), 'resize_mode': 'shortest'})
    assert cfg == {**cfg, 'size': (378, 378), 'resize_mode': 'squash', 'interpolation': 'bicubic',
                   'mean': OPENAI_MEAN, 'std': OPENAI_STD}
    with pytest.raises(ModelLoadError, match='no pretrained tag'):
        tag_preprocess_cfg('ViT-H-14-378-quickgelu', 'laion9b', {})


def _open_clip_pixels(name: str, image: Image.Image):
    import open_clip
    _, _, transform = open_clip.create_model_and_transforms(name, load_weights=False)
    return transform(image).numpy()


def test_dfn_shaped_clip_loads_from_the_cache_with_its_own_preprocessing(hub):
    from novic_ros.models.clip_encoder import ClipEncoder
    from novic_ros.core.preprocess import Preprocessor
    enc = ClipEncoder(clip_spec_for_embedder('openclip:' + DFN_REPO))
    pre = enc.preprocess_cfg
    assert (pre.size, pre.resize_mode, pre.interpolation) == ((42, 42), 'squash', 'bicubic')
    assert np.allclose(pre.mean, OPENAI_MEAN) and np.allclose(pre.std, OPENAI_STD)
    assert type(enc.tokenizer).__name__ == 'SimpleTokenizer'             # CLIP BPE: a bundle carries it as such
    from novic_ros.backends.tokenizer_export import bundle_tokenizer
    entry, _, problem = bundle_tokenizer(enc.tokenizer, hub, True)
    assert problem is None and entry == {
        'name': 'open_clip.SimpleTokenizer',
        'context_length': 77,
        'dynamic_length': True,
    }
    assert enc.model.transformer.resblocks[0].mlp.gelu.__class__.__name__ == 'QuickGELU'
    # Our numpy preprocessing gives open_clip's transform of the same picture (a wide one: squash, not crop).
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    ours = Preprocessor(pre, 'exact')([frame])[0]
    theirs = _open_clip_pixels('hf-hub:' + DFN_REPO, Image.fromarray(frame))
    assert ours.shape == theirs.shape == (3, 42, 42)
    assert np.abs(ours - theirs).max() < 1e-5


def test_a_missing_file_is_an_error_naming_it_and_where_it_goes(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf
    from novic_ros.models.clip_encoder import ClipEncoder
    empty = tmp_path / 'empty_cache'
    monkeypatch.setattr(hf, 'HF_HUB_CACHE', str(empty))
    with pytest.raises(ModelLoadError) as e:
        ClipEncoder(clip_spec_for_embedder('openclip:' + DFN_REPO))
    msg = str(e.value)
    assert 'open_clip_config.json' in msg and 'HF_HUB_OFFLINE' in msg
    assert str(empty / 'models--apple--DFN5B-CLIP-ViT-H-14-378' / 'snapshots') in msg and 'refs/main' in msg
    # Config there, weights not: named, not silently random (open_clip alone would only log a warning).
    make_dfn_repo(empty, weights=False)
    with pytest.raises(ModelLoadError, match='no weights .*open_clip_model.safetensors or open_clip_pytorch_model.bin'):
        ClipEncoder(clip_spec_for_embedder('openclip:' + DFN_REPO))
    # Seeded random weights need no weights file (the bench's ViT-H-14-378 shape).
    assert ClipEncoder(ClipSpec('hf-hub:' + DFN_REPO, 'random:3')).embed_dim == 32
    # SO400M's tokenizer lives in timm/ViT-B-16-SigLIP: missing there, the error names that repository.
    make_siglip_repo(empty, SO400M_REPO, tokenizer=False)
    with pytest.raises(ModelLoadError) as e:
        ClipEncoder(clip_spec_for_embedder('openclip:' + SO400M_REPO))
    assert 'timm/ViT-B-16-SigLIP' in str(e.value) and 'tokenizer.json' in str(e.value)
    assert str(empty / 'models--timm--ViT-B-16-SigLIP') in str(e.value)


@pytest.fixture(scope='module')
def siglip(hub):
    from novic_ros.models.clip_encoder import ClipEncoder
    return ClipEncoder(clip_spec_for_embedder('openclip:' + SIGLIP_REPO))


PROMPTS = ['a photo of a dog.', 'A Hot-Air Balloon!', 'traffic_light', 'caf\u00e9 cr\u00e8me', 'tom &amp; jerry',
           'unknownword qqq', '', ' '.join(['a very long caption'] * 10)]


def test_siglip_shaped_clip_loads_with_its_tokenizer_and_preprocessing(siglip, hub):
    from novic_ros.core.hf_tokenizer import HFTextTokenizer
    pre = siglip.preprocess_cfg
    assert (pre.size, pre.resize_mode, pre.mean, pre.std) == ((32, 32), 'squash', (0.5,) * 3, (0.5,) * 3)
    tok = siglip.tokenizer
    assert type(tok).__name__ == 'HFTokenizer' and tok.context_length == 16
    ids = tok(PROMPTS).numpy()
    assert ids.shape == (len(PROMPTS), 16) and (ids[-1, -1] == 1)           # cut to the context, ending with </s>
    # The torch-free tokenizer over the same tokenizer.json gives open_clip's ids.
    ours = HFTextTokenizer(snapshot(hub, SIGLIP_REPO) / 'tokenizer.json', 16, pad_id=1, clean='canonicalize')
    assert np.array_equal(ours.tokenize(PROMPTS), ids)
    assert ours.decode(ours.encode('Hot-Air balloon')) == 'hotair balloon'       # canonicalize drops the hyphen


@pytest.fixture(scope='module')
def siglip_models_file(hub, siglip, tmp_path_factory):
    """A models-file variant: the SigLIP-shaped CLIP from the hub cache with a tiny decoder of our own."""
    from conftest import make_tiny_decoder
    folder = tmp_path_factory.mktemp('siglip_variant')
    decoder = make_tiny_decoder(siglip, folder / 'decoder', layers=1)
    path = folder / 'models.yaml'
    path.write_text(f"sig:\n  clip_model: hf-hub:{SIGLIP_REPO}\n  decoder: {decoder}\n")
    return path


@pytest.fixture(scope='module')
def siglip_bundle(siglip_models_file, tmp_path_factory):
    from novic_ros.cli.export import main as export_main
    out = tmp_path_factory.mktemp('siglip_bundle') / 'sig'
    assert export_main(['--model', 'sig', '--models-file', str(siglip_models_file), '--out', str(out),
                        '--precisions', 'fp32']) == 0
    return out


def test_siglip_bundle_carries_its_tokenizer_and_matches_torch(siglip, siglip_bundle):
    from novic_ros.backends.ort_backend import OrtBackend
    from novic_ros.core.bundle import read_bundle
    bundle = read_bundle(siglip_bundle)
    meta = json.loads((siglip_bundle / 'bundle.json').read_text())['tokenizer']
    assert meta == {'name': 'hf_tokenizers', 'context_length': 16, 'dynamic_length': False, 'file': 'tokenizer.json',
                    'options': {'clean': 'canonicalize', 'pad_id': 1, 'strip_sep_token': False, 'sep_id': None}}
    ort = OrtBackend(bundle, with_decoder=True)
    assert np.abs(ort.text_encoder.encode_texts(PROMPTS) - siglip.encode_texts(PROMPTS).numpy()).max() < 1e-4
    pixels = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert np.abs(ort.encode_images(pixels) - siglip.encode_images(pixels).numpy()).max() < 1e-4


def test_siglip_generates_and_prompts_without_torch(siglip_bundle, siglip_models_file, tmp_path):
    """novic-classify from the SigLIP bundle where torch cannot be imported: generate mode, and prompted
    mode through the bundle's tokenizer.json, give what torch gives."""
    from novic_ros.params import ModelParams
    from novic_ros.pipeline import build_classifier
    rng = np.random.default_rng(2)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f'{i}.png')
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(paths[-1])
    env = torch_free_env(tmp_path / 'hook')
    labels = ['dog', 'cat', 'red apple', 'hot air balloon']
    for extra in ([], ['--mode', 'prompted', '--labels', *labels]):
        r = run_module('novic_ros.cli.classify', [*map(str, paths), '--model', str(siglip_bundle), '--backend',
                                                  'onnxruntime', '--json', *extra], env, timeout=120)
        assert r.returncode == 0 and MESSAGE not in r.stderr, r.stderr
        got = json.loads(r.stdout)
        kw = dict(mode='prompted', labels=labels) if extra else {}
        torch_clf = build_classifier(
            ModelParams(model='sig', models_file=str(siglip_models_file), backend='torch', **kw)
        )
        from novic_ros.frames.image_files import read_image
        expected = torch_clf.classify([read_image(p) for p in paths])
        for g, e in zip(got, expected):
            assert [x['label'] for x in g['labels']] == [l.text for l in e.labels]
            assert np.allclose([x['score'] for x in g['labels']], [l.score for l in e.labels], atol=1e-3)


@pytest.fixture(scope='module')
def dfn_bundle(hub, tmp_path_factory):
    """The DFN-shaped CLIP's image encoder exported with fp32, fp16 and int8 graphs (no decoder, and no text
    tower: that is open_clip's CLIP text tower, exported and checked for every CLIP-BPE model by test_backends)."""
    from novic_ros.backends.onnx_export import export_bundle, export_info
    from novic_ros.models.clip_encoder import ClipEncoder
    enc = ClipEncoder(clip_spec_for_embedder('openclip:' + DFN_REPO))
    out = tmp_path_factory.mktemp('dfn_bundle') / 'dfn'
    return enc, export_bundle(
        export_info('dfn', enc), enc, None, None, out, ('fp32', 'fp16', 'int8'), text_encoder=False
    )


def test_dfn_shaped_bundle_has_every_precision_and_matches_torch(dfn_bundle):
    from novic_ros.backends.ort_backend import OrtBackend
    enc, bundle = dfn_bundle
    assert all(bundle.has_graph('image_encoder', p) for p in ('fp32', 'fp16', 'int8'))
    assert bundle.clip.preprocess.size == (42, 42) and bundle.clip.preprocess.resize_mode == 'squash'
    assert bundle.tokenizer is None and not bundle.has_graph('text_encoder') and bundle.meta['text_encoder_left_out']
    pixels = np.random.default_rng(3).standard_normal((2, 3, 42, 42)).astype(np.float32)
    ref = enc.encode_images(pixels).numpy()
    fp32 = OrtBackend(bundle, with_decoder=False)
    assert np.abs(fp32.encode_images(pixels) - ref).max() < 1e-4
    assert 0 < np.abs(OrtBackend(bundle, precision='int8', with_decoder=False).encode_images(pixels) - ref).max() < 0.2
    assert fp32.text_encoder is None


HAS_TRT = importlib.util.find_spec('tensorrt') is not None


@pytest.mark.skipif(
    not HAS_TRT, reason='TensorRT engines need an NVIDIA GPU and the tensorrt package (neither is here)'
)
def test_dfn_shaped_tensorrt_fp16_engine_matches_torch(dfn_bundle, tmp_path):
    """The same engine path as every bundle: the fp16 image encoder graph at the model's own size."""
    import torch
    from novic_ros.backends.trt_backend import TrtBackend
    if not torch.cuda.is_available():
        pytest.skip('TensorRT engines need an NVIDIA GPU (CUDA is not available)')
    enc, bundle = dfn_bundle
    trt = TrtBackend(bundle, tmp_path, 'cuda:0', 'fp16', max_batch=4, beam_width=1, with_decoder=False)
    pixels = np.random.default_rng(4).standard_normal((2, 3, 42, 42)).astype(np.float32)
    got = trt.encode_images(pixels.astype(np.float16))
    assert np.abs(got - enc.encode_images(pixels).numpy()).max() < 2e-2


def test_dfn_shaped_fp16_graph_computes_the_embedding(dfn_bundle):
    """The fp16 graph TensorRT builds its engine from, run here by ONNX Runtime's CPU kernels: the same
    embeddings as torch in fp32, to fp16 accuracy (TensorRT itself needs a GPU; see the test above)."""
    import onnxruntime as ort
    enc, bundle = dfn_bundle
    session = ort.InferenceSession(str(bundle.graph('image_encoder', 'fp16')), providers=['CPUExecutionProvider'])
    pixels = np.random.default_rng(5).standard_normal((2, 3, 42, 42)).astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: pixels.astype(np.float16)})
    assert got.dtype == np.float32 and np.abs(got - enc.encode_images(pixels).numpy()).max() < 2e-2
