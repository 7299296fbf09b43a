"""novic-export --model VARIANT : export the image encoder and the decoder (prefill and one-token
step graphs with the key/value cache) to ONNX with dynamic batch, plus a metadata JSON."""
from __future__ import annotations

import argparse
import json
import sys

from ..backends import resolve_engine_dir
from ..backends.onnx_export import ensure_export, export_all, export_info, read_export
from ..core.checkpoint import load_decoder
from ..core.clip_encoder import ClipEncoder
from ..core.variants import get_variant
from ..params import add_model_arguments
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-export', description=__doc__)
    add_model_arguments(p, ('model', 'models_file', 'engine_dir'))       # the same flags as every other tool
    p.add_argument('--force', action='store_true', help='export again even when an up-to-date export exists')
    p.add_argument('-v', '--verbose', action='store_true')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    variant = get_variant(args.model, args.models_file or None)
    encoder = ClipEncoder(variant.clip, 'cpu')
    decoder, vocab, _ = load_decoder(variant.decoder)
    info = export_info(variant.name, encoder, decoder, variant.decoder, vocab.eot)
    root = resolve_engine_dir(args.engine_dir)
    folder = (export_all(info, encoder, decoder, root / 'onnx' / info.key) if args.force
              else ensure_export(info, encoder, decoder, root))
    meta = read_export(folder)
    print(json.dumps({'folder': str(folder), **{k: meta[k] for k in ('key', 'files', 'opset', 'clip_fingerprint',
                                                                     'decoder_hash', 'created')}}, indent=1))
    return 0


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
