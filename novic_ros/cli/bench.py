"""novic-bench: per-stage latency, KV cache, text encoding, backends and node overhead, each
figure measured side by side in one run. `make bench` runs every section but `training` (about
45 min on a 2-core CPU: ask for it with --sections training)."""
from __future__ import annotations

if __name__ == '__main__':
    # `python -m novic_ros.cli.bench` goes through the console script's entry point, which says in one line
    # what to install when a library below is missing (torch_tools), instead of a traceback here.
    from novic_ros.cli.torch_tools import bench as _entry_point
    raise SystemExit(_entry_point())

import argparse
import os
import platform
import time

import torch

from ..bench import runtime as rt
from ..bench import sections as s
from ..bench import training as training_bench
from ..bench.delivery import delivery
from ..bench.frame_cost import frame_cost
from ..bench.lifecycle import lifecycle
from ..bench.decoder_steps import decoder_steps
from ..bench.object_cost import objects_cost
from ..bench.novic_shapes import novic as novic_shapes
from ..bench.openvino import openvino as openvino_cpu
from ..bench.preprocess_candidates import candidates as preprocess_candidates
from ..bench.video_tracks import tracks as tracks_cost
from ..bench.video_tracks import video as video_cost
from .common import run, setup_logging

SECTIONS = (
    'preprocess',
    'preprocess_fast',
    'conversion',
    'cache',
    'text',
    'stages',
    'node',
    'lifecycle',
    'runtime',
    'int8',
    'openvino',
    'decoder_steps',
    'frames',
    'delivery',
    'objects',
    'video',
    'tracks',
    'novic',
    'training',
)
DEFAULT_SECTIONS = tuple(x for x in SECTIONS if x != 'training')


def machine() -> str:
    cpu = platform.processor() or 'unknown CPU'
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-bench', description=__doc__)
    p.add_argument('--sections', default=','.join(DEFAULT_SECTIONS),
                   help=f"comma-separated subset of {', '.join(SECTIONS)} (default: all but training)")
    p.add_argument('--backends', default='torch,onnxruntime', help='backends for the stages section')
    p.add_argument('--repeat', type=int, default=10, help='timed repetitions per candidate (median reported)')
    p.add_argument('--out', default=None, help='also write the report (markdown) to this file')
    p.add_argument('-v', '--verbose', action='store_true', help='log what loads and how long it takes (INFO)')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    chosen = [x.strip() for x in args.sections.split(',') if x.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    report = [f"# novic_ros benchmark, {time.strftime('%Y-%m-%d')}", '', f"Machine: {machine()}.", '',
              'Models: ViT-B/32 and the config/train/gpu.yaml decoder over the 12,654-token dictionary vocabulary, '
              'random weights (speed does not depend on them). A "typical label" is 4 decoding steps '
              '(the dictionary averages 2.4 tokens, plus end-of-text).', '']
    runners = {
        'preprocess': ('Preprocessing, 640x480 frames -> 224x224', lambda: s.preprocess(args.repeat)),
        'preprocess_fast': (
            'Preprocessing under 1 ms? Candidates beside today\'s exact path, 640x480 -> 224',
            lambda: preprocess_candidates(args.repeat),
        ),
        'conversion': ('ROS image message to RGB, 640x480 with row padding', lambda: s.conversion(args.repeat)),
        'cache': ('Decoder: key/value cache against recomputing, 8 tokens', lambda: s.decoder_cache(args.repeat)),
        'text': ('Training-time text encoding, ViT-B/32 text tower', lambda: s.text_encoding(args.repeat)),
        'stages': (
            'Per-stage latency, ViT-B/32 + decoder, 640x480 frames, beam 5',
            lambda: s.stages(args.repeat, [b.strip() for b in args.backends.split(',')]),
        ),
        'node': ('novic_node overhead, 640x480 rgb8, ViT-B/32 + decoder', lambda: s.node_overhead(max(6, args.repeat))),
        'lifecycle': (
            'novic_node lifecycle: start with the noun dictionary, live switches, cleanup (toy, ViT-B/32)',
            lifecycle,
        ),
        'runtime': (
            'novic_node start and memory: the README command, cached and exporting, and a bundle folder (toy)',
            lambda: rt.node_start(max(2, args.repeat // 3)),
        ),
        'int8': (
            'ONNX Runtime int8 vs fp32 (ViT-B/32 + decoder latency; agreement on toy renders)',
            lambda: rt.int8(args.repeat),
        ),
        'openvino': (
            'CPU backends side by side: ONNX Runtime fp32 / int8, OpenVINO fp32 / bf16 / int8 (ViT-B/32 + '
            'decoder latency; agreement on toy renders)',
            lambda: openvino_cpu(args.repeat),
        ),
        'decoder_steps': (
            'Decoder at batch 1: per-step cost before / now (IO binding, preallocated outputs), call '
            'overhead, numpy, weights',
            lambda: decoder_steps(max(20, 2 * args.repeat)),
        ),
        'frames': (
            'One frame: decode + preprocess, camera frames beside extreme ones',
            lambda: frame_cost(args.repeat),
        ),
        'delivery': (
            'Delivery from a stock camera process to novic_node (toy model, node defaults)',
            lambda: delivery(max(60, 6 * args.repeat)),
        ),
        'objects': (
            'Multi-object mode against the single-label frame, 640x480 toy scenes, batch 1',
            lambda: objects_cost(args.repeat),
        ),
        'video': (
            'H.264 / H.265 input: decoding a 640x480 stream (software), beside raw and JPEG frames',
            lambda: video_cost(args.repeat),
        ),
        'tracks': (
            'Object tracks: ObjectTracker per frame beside the toy finder, 640x480 toy sequence',
            lambda: tracks_cost(args.repeat),
        ),
        'novic': (
            "The NOVIC authors' shapes: DFN5B ViT-H-14-378 at 378 px and the reference decoder config, "
            'random weights, batch 1',
            lambda: novic_shapes(args.repeat),
        ),
        'training': (
            'Decoder training: host memory at two data set sizes, throughput before and after the fixes',
            lambda: training_bench.training(args.repeat),
        ),
    }
    for name in chosen:
        title, fn = runners[name]
        print(f"## {title}\n", flush=True)
        t0 = time.time()
        table = fn()
        print(table + f"\n\n({time.time() - t0:.0f} s)\n", flush=True)
        report += [f"## {title}", '', table, '']
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(report) + '\n')
    return 0


def main(argv=None) -> int:
    return run(_main, argv)

