"""novic-train --model VARIANT --config NAME|FILE.yaml : train an object decoder for a CLIP model
on text only, into --out (default runs/VARIANT-CONFIG; never the variant's own decoder folder
unless named, and never over a finished run).

Data-parallel on several GPUs (or CPU processes) when started by torchrun:
    torchrun --standalone --nproc_per_node 4 $(which novic-train) --model b32 --config gpu
"""
from __future__ import annotations

if __name__ == '__main__':
    # `python -m novic_ros.cli.train` goes through the console script's entry point, which says in one line
    # what to install when a library below is missing (torch_tools), instead of a traceback here.
    from novic_ros.cli.torch_tools import train as _entry_point
    raise SystemExit(_entry_point())

import argparse
import signal
import sys
from pathlib import Path

import torch

from ..models.checkpoint import read_meta
from ..models.clip_encoder import ClipEncoder
from ..core.errors import ModelLoadError
from ..core.variants import get_variant
from ..params import BY_NAME, add_model_arguments
from ..training import distributed
from ..training.modality_gap import apply_mean_shift_from_folder
from ..training.train_config import TrainConfig, find_config, packaged_configs
from ..training.train_state import check_fresh_start, state_for_resume
from ..training.trainer import TrainingStopped, train_decoder
from .common import run, setup_logging

SUMMARY_KEYS = ('num_nouns', 'num_prompts', 'steps', 'world_size', 'final_loss', 'val_loss', 'val_inversion_acc',
                'train_seconds')


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='novic-train', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(p, ('model', 'models_file', 'device', 'threads'))   # the same flags as every other tool
    p.add_argument('--config', required=True,
                   help=f"a packaged training config by name ({', '.join(packaged_configs()) or 'toy, cpu, gpu'}), "
                        "or a path to a YAML file")
    p.add_argument('--out', default=None,
                   help="output checkpoint folder (default: runs/VARIANT-CONFIG in the current folder; give the "
                        "variant's decoder folder, e.g. models/b32/decoder, to train it in place)")
    p.add_argument('--resume', action='store_true',
                   help='continue the run in OUT from its train_state.pt (--steps may be raised)')
    p.add_argument('--steps', type=int, default=None, help='override the config: training steps')
    p.add_argument('--shift-images', default=None, metavar='DIR',
                   help='unlabelled images whose embedding centroid sets the mean-shift (modality gap) correction')
    p.add_argument(
        '--cache-dir', default=None, help='text-embedding cache (default: ~/.cache/novic_ros/text-embeddings)'
    )
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('-v', '--verbose', action='store_true', help='log what loads and how long it takes (INFO)')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    BY_NAME['device'].validate(args.device)
    BY_NAME['threads'].validate(args.threads)
    if args.threads:
        # On a CPU shared with other work, fewer threads than cores avoids OpenMP threads spinning
        # while they wait for each other (measured: 5x the samples/s with 1 thread at load 7 on 2 cores).
        torch.set_num_threads(args.threads)
    config = find_config(args.config)
    cfg = TrainConfig.from_yaml(config, steps=args.steps)
    variant = get_variant(args.model, args.models_file or None)
    if variant.bundle is not None or variant.is_novic:
        raise ModelLoadError(f"--model {args.model} is {'a bundle' if variant.bundle else 'a NOVIC checkpoint'}: "
                             "novic-train trains a decoder for a models-file variant's CLIP model (clip_model, "
                             "pretrained), e.g. --model b32")
    out = Path(args.out) if args.out else Path('runs') / f"{variant.name}-{config.stem}"
    # Both fail before the CLIP model loads: a resume that cannot work, a run over a finished one.
    if args.resume:
        state_for_resume(out, cfg)
    else:
        check_fresh_start(out)
    ctx, device = distributed.init_from_env(args.device)
    try:
        encoder = ClipEncoder(variant.clip, device)
        if ctx.is_main:
            ranks = f" on {ctx.world_size} ranks" if ctx.active else ''
            print(f"training a decoder for {variant.name} ({variant.clip.describe()}) -> {out}{ranks}", file=sys.stderr)
        train_decoder(encoder, cfg, out, resume=args.resume, progress=not args.no_progress, cache_root=args.cache_dir,
                      ctx=ctx)
    except TrainingStopped as e:
        if ctx.is_main:
            print(f"stopped by {signal.Signals(e.signum).name} at step {e.step}; checkpoint saved in {out}. "
                  "Continue with the same command plus --resume", file=sys.stderr)
        return 128 + e.signum
    finally:
        distributed.shutdown(ctx)
    if not ctx.is_main:
        return 0
    if args.shift_images:
        shift = apply_mean_shift_from_folder(encoder, out, args.shift_images)
        print(f"mean shift from {args.shift_images}: norm {shift:.4f}", file=sys.stderr)
    t = read_meta(out).training
    print(f"done: {out} ({', '.join(f'{k} {t[k]}' for k in SUMMARY_KEYS if k in t)})", file=sys.stderr)
    if variant.decoder is not None and out.resolve() != Path(variant.decoder).resolve():
        print(f"to make it {variant.name}'s decoder, move it to {variant.decoder} (or set decoder: {out} in a "
              "models file, --models-file)", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run(_main, argv)

