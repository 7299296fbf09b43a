"""One training run in a fresh process, reporting its host memory per phase (JSON on stdout).

    python -m novic_ros.bench.training_probe --per-noun 8 --steps 20

Run by the `training` benchmark section at two dataset sizes: a process of its own, so that the
peaks are this run's and nothing else's. The CLIP model has ViT-B/32's 512-d embeddings but a
one-layer text tower (bench_models.wide_tiny_clip_dir), so the embedding phase is quick while
the embeddings are as large as a real run's for the same prompt count.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ..models.clip_encoder import ClipEncoder
from ..core.variants import ClipSpec
from ..paths import config_path
from ..training.train_config import TrainConfig
from ..training.train_data import load_labels, prepare_data
from ..training.trainer import train_decoder
from .models import wide_tiny_clip_dir

FIELDS = ('VmRSS', 'RssAnon', 'RssFile', 'VmHWM')


def status_mb() -> dict[str, float]:
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            if key in FIELDS:
                out[key] = int(value.split()[0]) / 1024
    return out


class PeakMemory:
    """Samples /proc/self/status every few milliseconds and keeps the peaks of each phase."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.phase, self.peaks = interval, 'start', {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def sample(self):
        now = status_mb()
        peak = self.peaks.setdefault(self.phase, {'RssAnon': 0.0, 'VmRSS': 0.0})
        peak['RssAnon'] = max(peak['RssAnon'], now['RssAnon'])
        peak['VmRSS'] = max(peak['VmRSS'], now['VmRSS'])

    def enter(self, phase: str):
        self.sample()
        self.phase = phase
        self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='novic_ros.bench.training_probe', description=__doc__)
    p.add_argument('--per-noun', type=int, required=True, help='prompts per dictionary noun')
    p.add_argument('--steps', type=int, default=20)
    args = p.parse_args(argv)
    base = TrainConfig.from_yaml(config_path('train', 'gpu.yaml'))
    cfg = base.with_overrides(prompts_per_noun=args.per_noun, steps=args.steps, eval_every=args.steps,
                              checkpoint_every=args.steps, log_every=args.steps, warmup=1)
    work = Path(tempfile.mkdtemp(prefix='novic-train-probe-'))
    try:
        with PeakMemory() as mem:
            encoder = ClipEncoder(ClipSpec.local_dir(wide_tiny_clip_dir()), 'cpu')
            labels = load_labels(cfg)
            mem.enter('embedding')
            t0 = time.monotonic()
            data = prepare_data(encoder, cfg, progress=False, cache_root=work / 'cache', labels=labels)
            embed_s = time.monotonic() - t0
            mem.enter('training')
            t0 = time.monotonic()
            train_decoder(encoder, cfg, work / 'decoder', progress=False, data=data)
            train_s = time.monotonic() - t0
            mem.enter('end')
        result = {
            'prompts': data.num_prompts,
            'nouns': len(labels.nouns.labels),
            'embed_dim': encoder.embed_dim,
            'embeddings_mb': data.store.nbytes / 2**20,
            'embed_seconds': embed_s,
            'train_seconds': train_s,
            'baseline': mem.peaks['start'],
            'embedding': mem.peaks['embedding'],
            'training': mem.peaks['training'],
            'hwm_mb': status_mb()['VmHWM'],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
