"""DFN5B ViT-H-14-378 (the embedder of the NOVIC checkpoints ya2 and ye2) at its real input size:
378 px preprocessing exactly as open_clip defines it for that model, through both ways a user names
the weights (the Hugging Face repo, a bare weights file), a bundle with fp32/fp16/int8 image encoder
graphs at 378 px, and the TensorRT engine path. The tower is tiny and random (test/hf_models.py):
the real one is 632 M parameters, about 1 TFLOP a frame (its speed is in `make bench`)."""
from __future__ import annotations

import importlib.util
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from hf_models import DFN_REPO, OPENAI_MEAN, OPENAI_STD, dfn_cfg, make_dfn_repo
from novic_ros.core.embedder_specs import clip_spec_for_embedder
from novic_ros.core.preprocess import Preprocessor

ARCH = 'ViT-H-14-378-quickgelu'
SPEC = 'openclip:' + DFN_REPO


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """An offline Hugging Face cache holding a 378 px DFN-shaped repository."""
    import huggingface_hub.constants as hf
    cache = tmp_path_factory.mktemp('hf_hub_378')
    make_dfn_repo(cache, image_size=378)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf, 'HF_HUB_OFFLINE', True)
        mp.setattr(hf, 'HF_HUB_CACHE', str(cache))
        yield cache


@pytest.fixture(scope='module')
def encoder(hub):
    from novic_ros.models.clip_encoder import ClipEncoder
    return ClipEncoder(clip_spec_for_embedder(SPEC))


def open_clip_tag_transform():
    """The eval transform open_clip builds for ViT-H-14-378-quickgelu with pretrained='dfn5b' (its
    create_model_and_transforms merges the tag's config over the defaults, with the tower's image
    size), built without its 4 GB of weights."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
    size = open_clip.get_model_config(ARCH)['vision_cfg']['image_size']
    cfg = merge_preprocess_dict(asdict(PreprocessCfg(size=size)), open_clip.get_pretrained_cfg(ARCH, 'dfn5b'))
    return image_transform_v2(PreprocessCfg(**cfg), is_train=False)


def camera_frames() -> list[np.ndarray]:
    """Camera-like frames (smooth content, as photographs) of the sizes robots send, and odd ones."""
    rng = np.random.default_rng(0)
    frames = []
    for h, w in ((480, 640), (720, 1280), (640, 480), (378, 378), (300, 1000), (51, 37), (8, 3000)):
        coarse = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        frames.append(np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR)))
    return frames


def test_378_preprocessing_is_open_clips_own(encoder, photos):
    """Squash to 378 x 378 (no crop: the whole frame is seen), bicubic, OpenAI mean and std: our
    numpy path gives open_clip's transform to the bit, both as the tag defines it and as open_clip
    loads the hub repository."""
    import open_clip
    pre = encoder.preprocess_cfg
    assert (pre.size, pre.resize_mode, pre.interpolation) == ((378, 378), 'squash', 'bicubic')
    assert np.allclose(pre.mean, OPENAI_MEAN) and np.allclose(pre.std, OPENAI_STD)
    tag = open_clip_tag_transform()
    _, _, hub_transform = open_clip.create_model_and_transforms('hf-hub:' + DFN_REPO)
    ours = Preprocessor(pre, 'exact')
    for frame in camera_frames() + [f for _, f, _ in photos]:
        got = ours(frame)[0]
        for theirs in (tag, hub_transform):
            want = theirs(Image.fromarray(frame)).numpy()
            assert got.shape == want.shape == (3, 378, 378)
            assert np.array_equal(got, want), (frame.shape, float(np.abs(got - want).max()))


def test_a_bare_weights_file_gets_the_same_model_and_preprocessing(encoder, hub, tmp_path, monkeypatch):
    """`pretrained: open_clip_pytorch_model.bin` alone (no repository around it): open_clip's built-in
    ViT-H-14-378-quickgelu architecture (shrunk here to the tiny tower's sizes) with the dfn5b tag's
    preprocessing, which open_clip would not apply to a file by itself: the embeddings and pixels of
    the hub route."""
    import shutil

    import open_clip.factory
    from novic_ros.models.clip_encoder import ClipEncoder
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, ARCH, dfn_cfg(378))
    weights = tmp_path / 'open_clip_pytorch_model.bin'
    shutil.copyfile(next(hub.rglob('open_clip_pytorch_model.bin')), weights)
    spec = clip_spec_for_embedder(SPEC, pretrained=str(weights))
    assert (spec.model, spec.preprocess_tag) == (ARCH, 'dfn5b')
    from_file = ClipEncoder(spec)
    assert from_file.preprocess_cfg == encoder.preprocess_cfg
    pixels = Preprocessor(from_file.preprocess_cfg)(camera_frames()[:2])
    assert np.abs(from_file.encode_images(pixels).numpy() - encoder.encode_images(pixels).numpy()).max() < 1e-6


@pytest.fixture(scope='module')
def bundle(encoder, tmp_path_factory):
    """Image encoder graphs in fp32, fp16 (TensorRT's input) and int8, at 378 px; generate-only (the
    real text tower is 354 M parameters: novic-export --no-text-encoder)."""
    from novic_ros.backends.onnx_export import export_bundle, export_info
    out = tmp_path_factory.mktemp('bundle_378') / 'dfn378'
    return export_bundle(export_info('dfn378', encoder), encoder, None, None, out, ('fp32', 'fp16', 'int8'),
                         text_encoder=False)


def test_bundle_graphs_at_378_compute_the_embedding(encoder, bundle):
    import onnxruntime as ort
    from novic_ros.backends.ort_backend import OrtBackend
    from novic_ros.core.bundle import read_bundle
    assert all(bundle.has_graph('image_encoder', p) for p in ('fp32', 'fp16', 'int8'))
    again = read_bundle(bundle.folder)          # what a torch-free runtime reads back
    assert again.clip.preprocess == encoder.preprocess_cfg
    frames = camera_frames()[:3]
    pixels = Preprocessor(again.clip.preprocess, 'exact')(frames)
    want = open_clip_tag_transform()
    assert np.array_equal(pixels[0], want(Image.fromarray(frames[0])).numpy())
    ref = encoder.encode_images(pixels).numpy()
    assert np.abs(OrtBackend(again, with_decoder=False).encode_images(pixels) - ref).max() < 1e-4
    int8 = OrtBackend(again, precision='int8', with_decoder=False).encode_images(pixels)
    assert 0 < np.abs(int8 - ref).max() < 0.2 and (int8 * ref).sum(1).min() > 0.95
    fp16 = ort.InferenceSession(str(again.graph('image_encoder', 'fp16')), providers=['CPUExecutionProvider'])
    (got,) = fp16.run(None, {fp16.get_inputs()[0].name: pixels.astype(np.float16)})
    assert np.abs(got - ref).max() < 2e-2


def test_tensorrt_profiles_take_378_px_frames(bundle):
    """The engines' optimisation profiles follow the bundle's input size (torch-free, no TensorRT needed)."""
    from novic_ros.backends.trt_backend import engine_profiles
    profiles = engine_profiles(bundle, max_batch=16, beam_width=10)
    assert set(profiles) == {'image_encoder'}          # generate-only bundle without a decoder here
    (lo, opt, hi), = profiles['image_encoder'].shapes.values()
    assert (lo, opt, hi) == ((1, 3, 378, 378), (8, 3, 378, 378), (16, 3, 378, 378))


@pytest.mark.skipif(importlib.util.find_spec('tensorrt') is None,
                    reason='TensorRT engines need the tensorrt package and an NVIDIA GPU (neither is here)')
def test_tensorrt_fp16_engine_at_378_matches_torch(encoder, bundle, tmp_path):
    import torch
    from novic_ros.backends.trt_backend import TrtBackend
    if not torch.cuda.is_available():
        pytest.skip('TensorRT engines need an NVIDIA GPU (CUDA is not available)')
    trt = TrtBackend(bundle, tmp_path, 'cuda:0', 'fp16', max_batch=8, beam_width=1, with_decoder=False)
    pixels = Preprocessor(bundle.clip.preprocess)(camera_frames()[:2])
    got = trt.encode_images(pixels.astype(np.float16))
    assert np.abs(got - encoder.encode_images(pixels).numpy()).max() < 2e-2
    assert trt.built, 'the first start builds the engines into engine_dir'
