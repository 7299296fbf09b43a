"""novic-toy: the toy world.

  novic-toy build    train the toy CLIP (cached) and its text-only decoder into models/toy
  novic-toy render   write labelled renders of the toy world (PNG files + labels.json)
"""
from __future__ import annotations

if __name__ == '__main__':
    # `python -m novic_ros.cli.toy` goes through the console script's entry point, which says in one line
    # what to install when a library below is missing (torch_tools), instead of a traceback here.
    from novic_ros.cli.torch_tools import toy as _entry_point
    raise SystemExit(_entry_point())

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

from ..models.checkpoint import clip_fingerprint, read_meta
from ..core.errors import ModelLoadError
from ..models.clip_encoder import ClipEncoder
from ..core.variants import ClipSpec
from ..paths import config_path, share_dir
from ..training import toy_clip, toy_world
from ..training.train_config import TrainConfig, differences
from ..training.train_state import STATE_FILE, state_for_resume
from ..training.trainer import train_decoder
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='novic-toy', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest='cmd', required=True)
    b = sub.add_parser('build', help='train the toy CLIP and its decoder (both cached)')
    b.add_argument('--out', default=None, help='output folder (default: <share>/models/toy)')
    b.add_argument('--config', default=None, help='decoder training config (default: config/train/toy.yaml)')
    b.add_argument('--force', action='store_true', help='retrain even when the cached models are up to date')
    b.add_argument('--no-progress', action='store_true', help='no progress bar')
    r = sub.add_parser('render', help='render labelled toy-world images')
    r.add_argument('out', help='output folder')
    r.add_argument('--per-class', type=int, default=1, help='images per noun (default 1)')
    r.add_argument('--size', default='240x320', help='HEIGHTxWIDTH (default 240x320)')
    r.add_argument(
        '--seed', type=int, default=0, help='random seed of the scenes (default 0: the same pictures every time)'
    )
    r.add_argument('--nouns', nargs='*', default=None, help='only these nouns (default: all)')
    for sp in (b, r):
        sp.add_argument('-v', '--verbose', action='store_true', help='log what loads and how long it takes (INFO)')
    return p


def decoder_up_to_date(dec_dir: Path, encoder: ClipEncoder, cfg: TrainConfig) -> bool:
    """A decoder trained for this CLIP with this config (fields that only change how a run goes aside)."""
    try:
        meta = read_meta(dec_dir)
    except ModelLoadError:
        return False
    return (meta.clip.fingerprint == clip_fingerprint(encoder.model)
            and not differences(meta.training.get('config', {}), cfg.to_dict()))


def _resumable(dec_dir: Path, cfg: TrainConfig) -> bool:
    """An interrupted build of this config is continued; anything else in the folder is replaced."""
    try:
        return not state_for_resume(dec_dir, cfg).finished
    except (FileNotFoundError, ValueError):
        return False


def build(out: Path, config: Path, force: bool, progress: bool) -> None:
    clip_dir = toy_clip.build(out / 'clip', force=force, progress=progress)
    encoder = ClipEncoder(ClipSpec.local_dir(clip_dir))
    cfg = TrainConfig.from_yaml(config)
    dec_dir = out / 'decoder'
    if not force and decoder_up_to_date(dec_dir, encoder, cfg):
        print(f"toy decoder in {dec_dir} is up to date", file=sys.stderr)
        return
    resume = not force and _resumable(dec_dir, cfg)
    if not resume:
        (dec_dir / STATE_FILE).unlink(missing_ok=True)
    # Out of date or --force: replacing the old decoder is what was asked for.
    train_decoder(encoder, cfg, dec_dir, resume=resume, progress=progress, overwrite=True)
    print(f"toy variant written to {out}: {json.dumps(read_meta(dec_dir).training.get('val_inversion_acc'))}",
          file=sys.stderr)


def render(out: Path, per_class: int, size: str, seed: int, nouns) -> None:
    try:
        h, w = (int(x) for x in size.lower().split('x'))
    except ValueError:
        raise ValueError(f"--size {size!r}: expected HEIGHTxWIDTH, for example 240x320") from None
    classes = None
    if nouns:
        unknown = sorted(set(nouns) - set(toy_world.NOUNS))
        if unknown:
            raise ValueError(f"not toy-world nouns: {', '.join(unknown)}")
        classes = [toy_world.NOUNS.index(n) for n in nouns]
    out.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i, item in enumerate(toy_world.render_set(per_class, (h, w), seed, classes)):
        name = f"{i:05d}_{item.label.replace(' ', '_')}.png"
        Image.fromarray(item.image).save(out / name)
        labels[name] = [item.label]
    (out / 'labels.json').write_text(json.dumps(labels, indent=1) + '\n')
    print(f"{len(labels)} images and labels.json written to {out}", file=sys.stderr)


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.cmd == 'build':
        build(Path(args.out) if args.out else share_dir() / 'models' / 'toy',
              Path(args.config) if args.config else config_path('train', 'toy.yaml'), args.force, not args.no_progress)
    else:
        render(Path(args.out), args.per_class, args.size, args.seed, args.nouns)
    return 0


def main(argv=None) -> int:
    return run(_main, argv)

