"""The benchmark sections. Each returns a markdown table; ratios compare candidates measured in
the same run, interleaved (timing.interleaved)."""
from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from ..models.decoder import ObjectDecoder
from ..core.generation import beam_search, greedy
from ..core.preprocess import PreprocessConfig, Preprocessor
from ..models.torch_runners import TorchCachedRunner, TorchRecomputeRunner
from ..params import ModelParams
from ..paths import use_large_frames_profile
from ..pipeline import build_classifier
from ..frames.conversion import raw_to_rgb, rgb_to_raw
from ..ros.node_process import NodeProcess
from ..training import toy_world
from ..training.nouns_source import dictionary_nouns
from ..training.prompts import PromptGenerator
from .models import TYPICAL_STEPS, b32_decoder_config, b32_encoder, b32_models_file, bench_dir
from .timing import interleaved


def _table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(fmt(v) for v in r) + ' |' for r in rows]
    return '\n'.join(lines)


def frames_640x480(n: int, seed: int = 0) -> list[np.ndarray]:
    return [x.image for x in toy_world.render_set(1, (480, 640), seed=seed, classes=list(range(n)))]


def preprocess(repeat: int) -> str:
    """Our vectorised preprocessing against open_clip's PIL transform, ViT-B/32 config, 640x480."""
    cfg = PreprocessConfig((224, 224), (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    pil = image_transform_v2(PreprocessCfg(size=224), is_train=False)
    ours = Preprocessor(cfg)
    rows = []
    for b in (1, 8):
        frames = frames_640x480(b)
        t = interleaved({'pil': lambda: torch.stack([pil(Image.fromarray(f)) for f in frames]),
                         'ours': lambda: ours(frames)}, repeat)
        rows.append([b, t['pil'], t['ours'], t['pil'] / t['ours']])
    return _table(['batch', 'open_clip PIL ms', 'novic_ros ms', 'speed-up (target >= 3)'], rows)


def conversion(repeat: int) -> str:
    """ROS image message -> RGB frame, per encoding, 640x480 with row padding (the node's per-frame cost)."""
    rgb = frames_640x480(1)[0]
    encodings = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422', 'yuv422_yuy2')
    msgs = {e: rgb_to_raw(rgb, e, row_padding=64) for e in encodings}
    t = interleaved({e: (lambda e=e: raw_to_rgb(e, 480, 640, msgs[e][1], msgs[e][0])) for e in encodings}, repeat)
    return _table(['encoding', 'ms per frame'], [[e, t[e]] for e in encodings])


def decoder_cache(repeat: int) -> str:
    """Key/value cache against recomputing the whole sequence, 8 tokens, the b32 decoder."""
    torch.manual_seed(0)
    dec = ObjectDecoder(b32_decoder_config()).eval()
    never = -1          # no end-of-text: every run generates exactly 8 tokens
    rows = []
    for frames, beams in ((1, 1), (1, 5), (8, 5)):
        e = F.normalize(torch.randn(frames * beams, dec.cfg.embed_dim), dim=-1)
        with torch.inference_mode():
            t = interleaved({'cached': lambda: greedy(TorchCachedRunner(dec, never), e, 8),
                             'recompute': lambda: greedy(TorchRecomputeRunner(dec, never), e, 8)}, repeat)
        rows.append([f"{frames} x {beams}", frames * beams, t['recompute'], t['cached'], t['recompute'] / t['cached']])
    return _table(['frames x beams', 'rows', 'recompute ms', 'KV cache ms', 'speed-up (target >= 3)'], rows)


def text_encoding(repeat: int) -> str:
    """ViT-B/32 text tower on training prompts: full 77-token context against the real length."""
    enc = b32_encoder()
    nouns = dictionary_nouns(None, 2000)
    texts = [p.text for p in PromptGenerator(nouns.labels, nouns.hypernyms, nouns.plural, seed=0).prompts(1)][:256]
    t = interleaved(
        {
            'full': lambda: enc.encode_texts(texts, batch_size=128, trim=False),
            'trimmed': lambda: enc.encode_texts(texts, batch_size=128, trim=True),
        },
        max(2, repeat // 3),
        warmup=1,
    )
    rate = lambda ms: len(texts) / ms * 1e3  # noqa: E731
    return _table(['context', 'ms / 256 prompts', 'prompts/s', 'speed-up (target >= 4)'],
                  [['77 tokens (open_clip)', t['full'], rate(t['full']), 1.0],
                   ['real length (novic_ros)', t['trimmed'], rate(t['trimmed']), t['full'] / t['trimmed']]])


def _classifiers(backends: list[str], device: str, precision: str = 'auto'):
    models = b32_models_file()
    return {name: build_classifier(ModelParams(model='b32-random', models_file=str(models), backend=name, device=device,
                                               precision=precision, beam_width=5, top_k=3, max_tokens=TYPICAL_STEPS,
                                               engine_dir=str(enc_dir_engines())))
            for name in backends}


def enc_dir_engines():
    return bench_dir() / 'engines'


def stages(repeat: int, backends: list[str], device: str = 'cpu') -> str:
    """Per-stage latency and frames/s of the whole frame, ViT-B/32 + b32 decoder, per backend."""
    clfs = _classifiers(backends, device)
    rows = []
    for b in (1, 8):
        frames = frames_640x480(b, seed=b)
        fns = {}
        for name, clf in clfs.items():
            pixels = clf.preprocess(frames)
            embeds = clf.backend.encode_images(pixels)
            fns[(name, 'pre')] = lambda clf=clf: clf.preprocess(frames)
            fns[(name, 'enc')] = lambda clf=clf, p=pixels: clf.backend.encode_images(p)
            fns[(name, 'greedy')] = lambda clf=clf, e=embeds: greedy(clf.backend.runner, e, TYPICAL_STEPS)
            fns[(name, 'beam')] = lambda clf=clf, e=embeds: beam_search(clf.backend.runner, e, 5, TYPICAL_STEPS)
            fns[(name, 'frame')] = lambda clf=clf: clf.classify(frames)
        t = interleaved(fns, repeat)
        base = t[(backends[0], 'frame')]
        for name in backends:
            rows.append([name, b, t[(name, 'pre')], t[(name, 'enc')], t[(name, 'greedy')], t[(name, 'beam')],
                         t[(name, 'beam')] / t[(name, 'enc')], t[(name, 'frame')], b / t[(name, 'frame')] * 1e3,
                         base / t[(name, 'frame')]])
    return _table(['backend', 'batch', 'preprocess ms', 'encode ms', f'decode greedy ms ({TYPICAL_STEPS} steps)',
                   'decode beam 5 ms', 'beam decode / encode (target < 0.33)', 'full frame ms', 'frames/s',
                   f'speed-up vs {backends[0]} (ORT target >= 1.5)'], rows)


def node_overhead(repeat: int, backend: str = 'onnxruntime') -> str:
    """End-to-end latency through novic_node (publish a 640x480 rgb8 frame -> Classification
    received) against the bare classifier on the same frames, same backend, in the same run."""
    # rclpy and the messages come from ROS: only this section needs them.
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image as ImageMsg
    from vision_msgs.msg import Classification
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # Both sides use the large-frame profile, as a camera driver beside novic_node should.
    use_large_frames_profile()
    models = b32_models_file()
    clf = _classifiers([backend], 'cpu')[backend]
    frames = frames_640x480(max(4, repeat), seed=3)
    proc = NodeProcess({'model': 'b32-random', 'models_file': str(models), 'backend': backend, 'qos': 'reliable',
                        'max_tokens': TYPICAL_STEPS, 'engine_dir': str(enc_dir_engines())}, namespace='/novic_bench',
                       log_path=bench_dir() / 'node.log')
    rclpy.init(args=[])     # not sys.argv: our own flags are not ROS arguments
    node = rclpy.create_node('novic_bench_client')
    got: dict[str, float] = {}
    node.create_subscription(
        Classification, '/novic_bench/labels', lambda m: got.setdefault(m.header.frame_id, time.perf_counter()), 10
    )
    pub = node.create_publisher(
        ImageMsg, '/novic_bench/image', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    try:
        deadline = time.monotonic() + 300
        while pub.get_subscription_count() == 0:
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError("novic_node did not start for the benchmark")
            rclpy.spin_once(node, timeout_sec=0.1)
        e2e, bare = [], []
        for i in range(len(frames) * 2 + 2):
            f = frames[i % len(frames)]
            h, w = f.shape[:2]
            msg = ImageMsg(height=h, width=w, encoding='rgb8', step=w * 3, data=f.tobytes())
            msg.header.frame_id = str(i)
            t0 = time.perf_counter()
            pub.publish(msg)
            while str(i) not in got and time.perf_counter() - t0 < 30:
                rclpy.spin_once(node, timeout_sec=0.1)     # blocks until the label arrives: no busy loop
            if i >= 2:                      # the first frames warm up the node
                e2e.append((got[str(i)] - t0) * 1e3)
                t1 = time.perf_counter()
                clf.classify(f)
                bare.append((time.perf_counter() - t1) * 1e3)
        e, b = float(np.median(e2e)), float(np.median(bare))
        return _table(['backend', 'frames', 'bare classifier ms', 'through novic_node ms', 'overhead (target < 10%)'],
                      [[backend, len(e2e), b, e, f"{(e - b) / b * 100:.1f}%"]])
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.stop()
