"""novic-train --model VARIANT --config config/train/FILE.yaml : train an object decoder for a
CLIP model on text only, and write it where the variant expects it (or to --out)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..params import add_model_arguments
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-train', description=__doc__)
    add_model_arguments(p, ('model', 'models_file'))       # the same flags as every other tool
    p.add_argument('--config', required=True, help='training config YAML (config/train/*.yaml)')
    p.add_argument('--out', default=None, help="output checkpoint folder (default: the variant's decoder path)")
    p.add_argument('--resume', action='store_true', help='continue from OUT/train_state.pt')
    p.add_argument('--steps', type=int, default=None, help='override the config: training steps')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--shift-images', default=None, metavar='DIR',
                   help='unlabelled images whose embedding centroid sets the mean-shift (modality gap) correction')
    p.add_argument('--cache-dir', default=None, help='text-embedding cache (default: ~/.cache/novic_ros/text-embeddings)')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    p.add_argument('-v', '--verbose', action='store_true')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    from ..core.clip_encoder import ClipEncoder
    from ..core.variants import get_variant
    from ..training.train_config import TrainConfig
    from ..training.trainer import train_decoder
    cfg = TrainConfig.from_yaml(args.config, steps=args.steps)
    variant = get_variant(args.model, args.models_file or None)
    out = Path(args.out) if args.out else variant.decoder
    encoder = ClipEncoder(variant.clip, args.device)
    print(f"training a decoder for {variant.name} ({variant.clip.describe()}) -> {out}", file=sys.stderr)
    train_decoder(encoder, cfg, out, resume=args.resume, progress=not args.no_progress, cache_root=args.cache_dir)
    if args.shift_images:
        from ..training.modality_gap import apply_mean_shift_from_folder
        shift = apply_mean_shift_from_folder(encoder, out, args.shift_images)
        print(f"mean shift from {args.shift_images}: norm {shift:.4f}", file=sys.stderr)
    from ..core.checkpoint import read_meta
    t = read_meta(out).training
    summary = ', '.join(f"{k} {t[k]}" for k in ('num_nouns', 'num_prompts', 'steps', 'final_loss', 'val_loss',
                                                 'val_inversion_acc', 'train_seconds') if k in t)
    print(f"done: {out} ({summary})", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
