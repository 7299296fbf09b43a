"""Preprocessing (numpy and Pillow) reproduces open_clip's PIL eval transform exactly, and bad frames are refused."""
import numpy as np
import pytest
import torch
from PIL import Image

from novic_ros.core.errors import FrameError
from novic_ros.core.preprocess import PreprocessConfig, Preprocessor, _geometry, crops_first, visible_window
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


@pytest.mark.parametrize('shape', [(480, 640), (640, 480), (301, 97), (10, 7), (224, 224), (30, 100)])
def test_matches_open_clip_on_odd_sizes(shape):
    """To the bit; frames of extreme aspect ratio (cropped first) are tested further down."""
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


# --- frames of extreme aspect ratio: cropped in source coordinates, then resized -------------------

@pytest.mark.parametrize('shape', [(480, 640), (720, 1280), (1080, 1920), (1080, 2560), (640, 480), (3000, 4000)])
def test_camera_frames_keep_open_clips_order(shape):
    """Camera aspect ratios (up to 21:9) are resized whole, then cropped, as open_clip does."""
    for cfg in CONFIGS:
        assert not crops_first(_geometry(*shape, cfg), cfg), (shape, cfg)


@pytest.mark.parametrize('shape', [(3, 500), (500, 3), (2, 300), (300, 2), (10, 400), (400, 10)])
def test_extreme_frames_match_open_clip_cropping_first(shape):
    """The crop-first path gives open_clip's pixels (Pillow's resize of the source box), up to float
    rounding where a filter tap lands exactly on a pixel edge (3x500 at 224: one column, 2 grey levels)."""
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 256, (max(2, shape[0] // 4), max(2, shape[1] // 4), 3), dtype=np.uint8)
    frame = np.asarray(Image.fromarray(coarse).resize((shape[1], shape[0]), Image.BILINEAR))
    for cfg in (CONFIGS[0], CONFIGS[1], CONFIGS[4], CONFIGS[5]):
        assert crops_first(_geometry(*shape, cfg), cfg)
        diff = np.abs(Preprocessor(cfg)(frame)[0] - reference(frame, cfg))
        assert diff.mean() < 0.1 / 255 and diff.max() <= 2.5 / 255 / min(STD), (shape, cfg.size)


@pytest.mark.parametrize('h, w', [(1, 40000), (40000, 1), (7, 9000)])
def test_visible_window_is_the_center_crop_in_source_pixels(h, w):
    cfg = CONFIGS[0]
    g = _geometry(h, w, cfg)
    win = visible_window(h, w, g, cfg)
    x0, y0, x1, y1 = win.box
    assert win.size == cfg.size and win.dst == (0, 0)
    # The box is centred, and scaled like the whole frame: box width / output width = w / resized width.
    assert abs((x0 + x1) / 2 - w / 2) <= w / g.resize[1] and abs((y0 + y1) / 2 - h / 2) <= h / g.resize[0]
    assert (x1 - x0) / win.size[1] == pytest.approx(w / g.resize[1]) and (y1 - y0) / win.size[0] == pytest.approx(h / g.resize[0])
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


def test_visible_window_with_padding():
    """'longest' mode pads: the window is the whole frame, placed where the padding leaves room."""
    cfg = CONFIGS[3]
    g = _geometry(100, 400, cfg)                   # -> 56 x 224, padded to 224 x 224
    win = visible_window(100, 400, g, cfg)
    assert win.box == (0.0, 0.0, 400.0, 100.0) and win.size == (56, 224) and win.dst == (84, 0)


def test_an_extreme_frame_costs_no_resized_copy_of_itself():
    """1 x 200000 would be resized to 224 x 44,800,000 (30 GB) before cropping; cropped first, the
    peak RSS grows by a few MB, and the model sees the middle of the frame."""
    from pathlib import Path
    frame = np.zeros((1, 200_000, 3), np.uint8)
    frame[:, 99_000:101_000] = (200, 30, 30)
    pre = Preprocessor(CONFIGS[0])
    status = Path('/proc/self/status')
    try:
        Path('/proc/self/clear_refs').write_text('5')       # Linux: restart the peak RSS from now
    except OSError as e:
        pytest.skip(f"cannot reset the peak RSS ({e})")
    rss = next(int(x.split()[1]) for x in status.read_text().splitlines() if x.startswith('VmRSS:'))
    out = pre(frame)
    peak = next(int(x.split()[1]) for x in status.read_text().splitlines() if x.startswith('VmHWM:'))
    assert (peak - rss) / 1024 < 50
    red = (200 / 255 - MEAN[0]) / STD[0]
    assert np.allclose(out[0, 0], red, atol=1e-4)          # the middle of the frame, upscaled
