"""Preprocessing (numpy and Pillow) reproduces open_clip's PIL eval transform exactly, and bad frames are refused."""
import numpy as np
import pytest
import torch
from PIL import Image

from novic_ros.core.errors import FrameError
from novic_ros.core.preprocess import PreprocessConfig, Preprocessor
from open_clip.transform import PreprocessCfg, image_transform_v2

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def reference(frame, cfg: PreprocessConfig):
    size = cfg.size if cfg.size[0] != cfg.size[1] else cfg.size[0]
    t = image_transform_v2(PreprocessCfg(size=size, mean=MEAN, std=STD, interpolation=cfg.interpolation,
                                         resize_mode=cfg.resize_mode, fill_color=cfg.fill_color), is_train=False)
    return t(Image.fromarray(frame)).numpy()


CONFIGS = [
    PreprocessConfig((224, 224), MEAN, STD),
    PreprocessConfig((64, 64), MEAN, STD),
    PreprocessConfig((224, 224), MEAN, STD, resize_mode='squash'),
    PreprocessConfig((224, 224), MEAN, STD, resize_mode='longest'),
    PreprocessConfig((192, 256), MEAN, STD),
    PreprocessConfig((224, 224), MEAN, STD, interpolation='bilinear'),
]


@pytest.mark.parametrize('cfg', CONFIGS, ids=lambda c: f"{c.size}-{c.resize_mode}-{c.interpolation}")
def test_matches_open_clip_on_real_photos(photos, cfg):
    pre = Preprocessor(cfg)
    for name, frame, _ in photos:
        ours = pre(frame)[0]
        ref = reference(frame, cfg)
        assert ours.shape == ref.shape, name
        assert np.array_equal(ours, ref), f"{name}: largest difference {np.abs(ours - ref).max():.6f} after normalisation"


@pytest.mark.parametrize('shape', [(480, 640), (640, 480), (301, 97), (10, 7), (224, 224), (3, 500)])
def test_matches_open_clip_on_odd_sizes(shape):
    rng = np.random.default_rng(0)
    # Smooth content (like real images) rather than white noise, upsampled from a coarse grid.
    coarse = rng.integers(0, 256, (max(2, shape[0] // 8), max(2, shape[1] // 8), 3), dtype=np.uint8)
    frame = np.asarray(Image.fromarray(coarse).resize((shape[1], shape[0]), Image.BILINEAR))
    for cfg in CONFIGS[:4]:
        ours = Preprocessor(cfg)(frame)[0]
        assert np.array_equal(ours, reference(frame, cfg)), (shape, cfg.resize_mode)


def test_same_top1_as_pil_pipeline(toy_classifier, photos):
    """Through the toy CLIP, PIL-preprocessed and our preprocessed frames give the same top-1 noun."""
    from novic_ros.training.toy_world import NOUNS, render_set
    enc = toy_classifier.backend.encoder
    text = enc.encode_texts([f'a photo of a {n}.' for n in NOUNS])
    frames = [f for _, f, _ in photos] + [x.image for x in render_set(1, (240, 320), seed=5)][:40]
    ours = enc.encode_images(toy_classifier.preprocess(frames))
    ref = enc.encode_images(np.stack([reference(f, enc.preprocess_cfg) for f in frames]))
    assert torch.equal((ours @ text.T).argmax(1), (ref @ text.T).argmax(1))


def test_batch_of_mixed_sizes_equals_frames_one_by_one(photos):
    pre = Preprocessor(CONFIGS[0])
    frames = [f for _, f, _ in photos]
    batch = pre(frames)
    single = np.concatenate([pre(f) for f in frames])
    assert np.array_equal(batch, single)
    assert batch.shape == (len(frames), 3, 224, 224)


def test_accepts_a_4d_batch_array():
    frames = np.random.default_rng(1).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    out = Preprocessor(CONFIGS[1])(frames)
    assert out.shape == (3, 3, 64, 64)
    assert np.array_equal(out[1:2], Preprocessor(CONFIGS[1])(frames[1]))


@pytest.mark.parametrize('frame, words', [
    (np.zeros((0, 10, 3), np.uint8), 'empty'),
    (np.zeros((10, 0, 3), np.uint8), 'empty'),
    (np.zeros((10, 10), np.uint8), 'HxWx3'),
    (np.zeros((10, 10, 4), np.uint8), 'RGBA'),
    (np.zeros((10, 10, 3), np.float32), 'uint8'),
    (np.zeros((10, 10, 3), np.uint16), 'uint8'),
    ('not an image', 'frame'),
    (b'\xff\xd8\xff', 'frame'),
    (None, 'frame'),
    (np.zeros((2, 3, 10, 10, 3), np.uint8), 'shape'),
])
def test_bad_frames_raise_errors_naming_the_problem(frame, words):
    with pytest.raises(FrameError, match=words):
        Preprocessor(CONFIGS[1])(frame)


def test_bad_frame_in_a_list_is_named_by_index():
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(FrameError, match=r'frame 1'):
        Preprocessor(CONFIGS[1])([good, np.zeros((8, 8, 3), np.int64)])
    with pytest.raises(FrameError, match='no frames'):
        Preprocessor(CONFIGS[1])([])
