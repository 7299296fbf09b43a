"""Shared fixtures: tiny randomly initialised models (fast, no weights needed), the committed toy
variant (where labels must make sense), and real photographs from installed packages."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

# DDS must never leave this machine, and parallel runs must not see each other.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 232)))   # Fast DDS allows 0-232
# Under pytest-xdist (make test runs two workers) each worker gets a domain of its own, next to the
# run's: two node tests in parallel publish on the same topic names and must not hear each other.
if os.environ.get('PYTEST_XDIST_WORKER', 'gw0') != 'gw0':
    _worker = int(os.environ['PYTEST_XDIST_WORKER'].removeprefix('gw'))
    os.environ['ROS_DOMAIN_ID'] = str((int(os.environ['ROS_DOMAIN_ID']) + _worker - 1) % 232 + 1)

REPO = Path(__file__).resolve().parent.parent
# Tests run the middleware as robots have it: no Fast DDS profile on either end, unless a test is
# about the profile (test_node_inputs starts a camera with it).
os.environ.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
os.environ.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)      # Fast DDS 2's name (Jazzy)
# make test-jazzy sets NOVIC_TEST_LARGE_FRAMES_PROFILE: there Fast DDS 2.14 stopped delivering a reliable
# 30 Hz stream of 57 KB frames from this process for good (frames_lost growing, nothing arriving) when
# another node test ran beside it (3 of 5 paired runs; never on Kilted's Fast DDS 3). The package's profile
# on this process and the nodes it starts (a 16 MB shared-memory segment) ended that (0 of 3); the camera
# processes still start without it (stock_camera.camera_env).
if os.environ.get('NOVIC_TEST_LARGE_FRAMES_PROFILE'):
    from novic_ros.paths import use_large_frames_profile
    use_large_frames_profile()
# The torch-free run (make test-jazzy: ROS 2 Jazzy's wheels in .venv-jazzy, no torch) names the toy
# variant exported to a bundle by .venv: the node tests run the node on it (ros_helpers.node_args), the
# toy fixtures read it, and the fixtures that build models with torch skip.
TORCH_FREE_BUNDLE = os.environ.get('NOVIC_TEST_BUNDLE', '')
TOY_CLIP = REPO / 'models' / 'toy' / 'clip'
TOY_DECODER = REPO / 'models' / 'toy' / 'decoder'
SHARED_DATA = REPO.parent / 'shared' / 'data'

TINY_CLIP_CFG = {
    'embed_dim': 32,
    'vision_cfg': {'image_size': 32, 'layers': 2, 'width': 64, 'head_width': 32, 'patch_size': 8},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 2},
}


def make_tiny_clip(folder: Path, seed: int = 0, cfg: dict = TINY_CLIP_CFG, image_size: int | None = None) -> Path:
    """A randomly initialised open_clip model saved as a 'local-dir:' folder."""
    skip_without_torch()
    import open_clip
    import torch
    from safetensors.torch import save_file
    cfg = json.loads(json.dumps(cfg))
    if image_size:
        cfg['vision_cfg']['image_size'] = image_size
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'open_clip_config.json').write_text(json.dumps({'model_cfg': cfg, 'preprocess_cfg': {}}))
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / 'open_clip_model.safetensors'))
    return folder


def skip_without_torch() -> None:
    """In the torch-free run, skip a test that needs torch in the test process; elsewhere a missing
    torch is an error, not a skip."""
    if TORCH_FREE_BUNDLE:
        pytest.skip('needs torch (the torch-free run, NOVIC_TEST_BUNDLE: make test-jazzy)')


@pytest.fixture(scope='session')
def tiny_clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp('tiny_clip'))


@pytest.fixture(scope='session')
def tiny_encoder(tiny_clip_dir):
    from novic_ros.models.clip_encoder import ClipEncoder, ClipSpec
    return ClipEncoder(ClipSpec('local-dir:' + str(tiny_clip_dir)))


@pytest.fixture(scope='module')
def one_torch_thread():
    """Training tests run torch on one thread. On this shared 2-core machine, two OpenMP threads spin
    while the other core is busy elsewhere: the zero-shot training test took 141 s instead of 51 s
    (3x the CPU time) at load 5, and hit the 600 s timeout under heavier load."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_LABELS = ('dog', 'cat', 'red bicycle', 'golden retriever', 'tree', 'coffee mug', 'fire truck')


def make_tiny_decoder(encoder, folder: Path, seed: int = 1, **overrides) -> Path:
    """A randomly initialised decoder checkpoint paired with `encoder`."""
    import torch
    from novic_ros.models.checkpoint import ClipInfo, DecoderMeta, clip_fingerprint, save_decoder
    from novic_ros.models.decoder import DecoderConfig, ObjectDecoder
    from novic_ros.core.label_tokens import LabelVocab
    vocab = LabelVocab.from_labels(TINY_LABELS)
    cfg = DecoderConfig(**{'embed_dim': encoder.embed_dim, 'vocab_size': len(vocab), 'width': 64, 'layers': 2,
                           'heads': 4, 'prefix_len': 3, 'max_tokens': 8, **overrides})
    torch.manual_seed(seed)
    decoder = ObjectDecoder(cfg)
    meta = DecoderMeta(cfg, ClipInfo(encoder.spec.model, encoder.spec.pretrained, encoder.embed_dim,
                                     clip_fingerprint(encoder.model)), training={'note': 'random init for tests'})
    return save_decoder(folder, decoder, vocab, meta)


@pytest.fixture(scope='session')
def tiny_decoder_dir(tiny_encoder, tmp_path_factory) -> Path:
    return make_tiny_decoder(tiny_encoder, tmp_path_factory.mktemp('tiny_decoder'))


@pytest.fixture(scope='session')
def tiny_models_file(tiny_clip_dir, tiny_decoder_dir, tmp_path_factory) -> Path:
    """A models.yaml with one variant, 'tiny', for classifier and node tests that need no trained model."""
    path = tmp_path_factory.mktemp('models') / 'models.yaml'
    path.write_text(
        f"tiny:\n  clip_model: local-dir:{tiny_clip_dir}\n  pretrained: null\n  decoder: {tiny_decoder_dir}\n"
    )
    return path


@pytest.fixture(scope='session')
def toy_available() -> bool:
    return (TOY_CLIP / 'open_clip_model.safetensors').is_file() and (TOY_DECODER / 'model.safetensors').is_file()


@pytest.fixture(scope='session')
def toy_classifier(toy_available):
    if not toy_available:
        pytest.fail("the committed toy variant (models/toy) is missing; rebuild it with `novic-toy build`")
    from novic_ros.pipeline import build_classifier
    from novic_ros.params import ModelParams
    if TORCH_FREE_BUNDLE:      # what the node runs there (ros_helpers.node_args)
        return build_classifier(ModelParams(model=TORCH_FREE_BUNDLE, backend='onnxruntime', device='cpu'))
    return build_classifier(ModelParams(model='toy', backend='torch', device='cpu'))


# --- real photographs ------------------------------------------------------------------------

def real_photos() -> list[tuple[str, Path, tuple[str, ...]]]:
    """(name, path, acceptable nouns): the photographs shipped in installed packages, plus any
    labelled images under ../shared/data that carry a labels.json."""
    from novic_ros.frames.sample_images import sample_photos
    photos = sample_photos()
    for labels_file in sorted(SHARED_DATA.glob('*/labels.json')) if SHARED_DATA.is_dir() else []:
        for rel, nouns in json.loads(labels_file.read_text()).items():
            photos.append((rel, labels_file.parent / rel, tuple(nouns)))
    return photos


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(path).convert('RGB'))


@pytest.fixture(scope='session')
def photos():
    found = real_photos()
    if len(found) < 3:
        pytest.fail("need the real photographs shipped with scikit-image and matplotlib (make setup installs them)")
    return [(name, load_rgb(path), nouns) for name, path, nouns in found]


@pytest.fixture(scope='session')
def toy_bundle(tmp_path_factory, toy_available) -> Path:
    """The toy variant exported by novic-export into a bundle folder (fp32 graphs; int8 is made on demand)."""
    if TORCH_FREE_BUNDLE:      # exported the same way by make test-jazzy
        return Path(TORCH_FREE_BUNDLE)
    if not toy_available:
        pytest.fail("the committed toy variant (models/toy) is missing; rebuild it with `novic-toy build`")
    from novic_ros.cli.export import main as export_main
    out = tmp_path_factory.mktemp('bundle') / 'toy-bundle'
    assert export_main(['--model', 'toy', '--out', str(out), '--precisions', 'fp32']) == 0
    return out


# --- WordNet (Debian's wordnet-base) ---------------------------------------------------------

def _wordnet_dir() -> Path:
    from novic_ros.lexicon.wordnet import resolve_root
    return resolve_root()


needs_wordnet = pytest.mark.skipif(
    not (_wordnet_dir() / 'data.noun').is_file(),
    reason=f"WordNet 3.0 not installed in {_wordnet_dir()} (apt-get install wordnet-base)",
)


@pytest.fixture(scope='session')
def wordnet():
    """The WordNet noun database, loaded once per session (a few seconds on a busy machine)."""
    from novic_ros.lexicon.wordnet import WordNet
    return WordNet.load()
