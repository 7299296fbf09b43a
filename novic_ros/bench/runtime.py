"""Benchmarks of the torch-free runtime: the node's memory and start time with the README's command
(its export cached: no torch), the same command exporting first (torch), and a bundle folder, and
int8 against fp32 on ONNX Runtime (latency on ViT-B/32, agreement on toy renders)."""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..backends.devices import cpu_int8_dot
from ..core.variants import get_variant
from ..params import ModelParams
from ..paths import use_large_frames_profile
from ..pipeline import build_classifier
from ..ros.node_process import NodeProcess
from ..torch_pipeline import export_for
from ..training import toy_world
from .models import TYPICAL_STEPS, bench_dir
from .sections import _classifiers, _table, frames_640x480
from .timing import interleaved


def toy_bundle() -> Path:
    """The toy variant's bundle in the benchmark's engine cache (exported once)."""
    return export_for(get_variant('toy'), bench_dir() / 'engines', with_decoder=True).folder


def _proc_status(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status (VmHWM: peak resident memory)."""
    for line in open(f'/proc/{pid}/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])
    return 0


def _maps_torch(pid: int) -> bool:
    return 'libtorch' in open(f'/proc/{pid}/maps').read()


def _start_to_first_label(params: dict, namespace: str, node, pub, got: dict, frame) -> dict:
    """Start novic_node, publish a frame every 50 ms until it answers; seconds from start to the
    first label, then peak RSS after a few more frames, and whether libtorch is mapped."""
    import rclpy
    from sensor_msgs.msg import Image as ImageMsg
    got.clear()
    msg = ImageMsg(height=frame.shape[0], width=frame.shape[1], encoding='rgb8', step=frame.shape[1] * 3,
                   data=frame.tobytes())
    t0 = time.perf_counter()
    proc = NodeProcess(params, namespace=namespace, log_path=bench_dir() / f'{namespace.strip("/")}.log')
    try:
        while 'first' not in got:
            if not proc.alive():
                raise RuntimeError(f"novic_node exited: {proc.log()[-2000:]}")
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("novic_node gave no label within 300 s")
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.05)
        first = got['first'] - t0
        for _ in range(10):                         # a few more labels: memory of a node at work
            pub.publish(msg)
            rclpy.spin_once(node, timeout_sec=0.1)
        return {'start_s': first, 'rss_mb': _proc_status(proc.proc.pid, 'VmHWM') / 1024,
                'torch': _maps_torch(proc.proc.pid)}
    finally:
        proc.stop()


def node_start(repeat: int) -> str:
    """novic_node on the toy model, alternated: the README's command (`model: toy`, default backend) with
    its export cached, so it runs the bundle without torch (core/export_record); the same command where
    nothing is cached yet (a fresh engine_dir: torch loads the variant and exports it, the first start on
    a robot); and `model:=` naming the bundle folder."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image as ImageMsg
    from vision_msgs.msg import Classification
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    use_large_frames_profile()
    bundle = toy_bundle()
    engines = bench_dir() / 'engines'
    build_classifier(ModelParams(model='toy', engine_dir=str(engines)))     # the README command's cached export
    fresh = Path(tempfile.mkdtemp(prefix='engines-', dir=bench_dir()))
    common = {'qos': 'reliable', 'warmup': True}
    candidates = {'README command (model: toy), export cached': lambda: {'model': 'toy', 'engine_dir': str(engines)},
                  'same, nothing cached (exports first)':
                      lambda: {'model': 'toy', 'engine_dir': tempfile.mkdtemp(dir=fresh)},
                  'model: bundle folder': lambda: {'model': str(bundle)}}
    frame = toy_world.render(0, (480, 640), np.random.default_rng(0))
    rclpy.init(args=[])
    node = rclpy.create_node('novic_bench_start')
    got: dict[str, float] = {}
    runs: dict[str, list[dict]] = {k: [] for k in candidates}
    try:
        for i in range(max(2, repeat)):
            for k, (name, params) in enumerate(candidates.items()):
                ns = f'/novic_start_{i}_{k}'
                node.create_subscription(Classification, f'{ns}/labels',
                                         lambda m: got.setdefault('first', time.perf_counter()), 10)
                pub = node.create_publisher(
                    ImageMsg, f'{ns}/image', QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
                )
                runs[name].append(_start_to_first_label({**common, **params()}, ns, node, pub, got, frame))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        shutil.rmtree(fresh, ignore_errors=True)
    rows = []
    for name, r in runs.items():
        rows.append(
            [
                name,
                len(r),
                statistics.median(x['start_s'] for x in r),
                statistics.median(x['rss_mb'] for x in r),
                'yes' if any(x['torch'] for x in r) else 'no',
            ]
        )
    return _table(['novic_node, toy', 'starts', 'start to first label s (target < 1.5)',
                   'peak RSS MB (target < 400)', 'libtorch mapped'], rows)


def int8(repeat: int) -> str:
    """ONNX Runtime int8 against fp32: ViT-B/32 + decoder latency at batch 1 and 8 (640x480 frames,
    beam 5, a typical label), and top-1 agreement with fp32 on toy renders (the toy variant)."""
    clfs = {'fp32': _classifiers(['onnxruntime'], 'cpu', 'fp32')['onnxruntime'],
            'int8': _classifiers(['onnxruntime'], 'cpu', 'int8')['onnxruntime']}
    rows = []
    for b in (1, 8):
        frames = frames_640x480(b, seed=b)
        fns = {}
        for name, clf in clfs.items():
            pixels = clf.preprocess(frames)
            fns[(name, 'enc')] = lambda clf=clf, p=pixels: clf.backend.encode_images(p)
            fns[(name, 'frame')] = lambda clf=clf: clf.classify(frames)
        t = interleaved(fns, repeat)
        rows.append([b, t[('fp32', 'enc')], t[('int8', 'enc')], t[('fp32', 'frame')], t[('int8', 'frame')],
                     t[('fp32', 'frame')] / t[('int8', 'frame')]])
    latency = _table(['batch', 'fp32 encode ms', 'int8 encode ms', 'fp32 full frame ms', 'int8 full frame ms',
                      'speed-up (target >= 1.8 at batch 1)'], rows)
    bundle = toy_bundle()
    toy = {p: build_classifier(ModelParams(model=str(bundle), backend='onnxruntime', precision=p))
           for p in ('fp32', 'int8')}
    renders = toy_world.render_set(3, (240, 320), seed=2026)
    frames = [x.image for x in renders]
    tops = {p: [r.top.text if r.top else '' for r in c.classify(frames)] for p, c in toy.items()}
    agree = np.mean([a == b for a, b in zip(tops['fp32'], tops['int8'])])
    acc = {p: np.mean([t == x.label for t, x in zip(tops[p], renders)]) for p in tops}
    agreement = _table(
        ['toy renders', 'int8 top-1 = fp32 top-1 (target >= 97%)', 'fp32 top-1 correct', 'int8 top-1 correct'],
        [[len(frames), f"{agree:.1%}", f"{acc['fp32']:.1%}", f"{acc['int8']:.1%}"]],
    )
    return (latency + '\n\n' + agreement + f"\n\n(typical label: {TYPICAL_STEPS} decoding steps; "
            f"int8 dot-product instructions of this CPU: {cpu_int8_dot() or 'none'})")
