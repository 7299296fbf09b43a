"""novic-fetch CHECKPOINT... : download one of the NOVIC authors' released object decoders (ta4, yb3,
ya2, ye2, or its run name ovod_...) into the checkpoint cache, check it, unpack it, and print the
commands that run it. A cut download resumes on the next run; offline it says what it would fetch
and where to put the file by hand. Torch-free (README: The NOVIC authors' models)."""
from __future__ import annotations

import argparse
import sys

from ..downloads.catalog import RELEASES, URL_ENV, NovicRelease, find_release
from ..downloads.http_download import DEFAULT_MAX_BYTES, DownloadLimits, OfflineError
from ..downloads.release_cache import CACHE_ENV, FetchPlan, FetchResult, checkpoints_dir, fetch, forget, plan
from .common import run

EXIT_OFFLINE = 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-fetch', description=__doc__)
    p.add_argument('checkpoints', nargs='*', metavar='CHECKPOINT',
                   help=f"tag or run name: {', '.join(f'{r.tag} ({r.name})' for r in RELEASES)}, or all")
    p.add_argument('--list', action='store_true', help='list the released checkpoints, their embedders, the '
                   "authors' figures and whether each is in the cache")
    p.add_argument('--path', action='store_true', help='print only the checkpoint path(s) (for model:=$(novic-fetch '
                   '--path ye2)); fetches first where needed')
    p.add_argument('--offline', action='store_true', help='touch no network: unpack a zip already in the cache\'s '
                   'downloads/ folder, else say what would be downloaded and where to put it by hand')
    p.add_argument('--zip', metavar='FILE', help='unpack this zip (downloaded by hand) instead of downloading')
    p.add_argument('--url', metavar='URL', help=f'download the zip from URL instead of the release (one checkpoint; '
                   f'a base URL for all: set {URL_ENV})')
    p.add_argument('--cache-dir', metavar='DIR', help=f'checkpoint cache (default: ${CACHE_ENV}, else '
                   f'{checkpoints_dir()})')
    p.add_argument('--force', action='store_true', help='download and unpack again even if the checkpoint is there')
    p.add_argument('--keep-zip', action='store_true', help='keep the downloaded zip in downloads/ after unpacking')
    p.add_argument('--forget', action='store_true', help="drop the recorded size and sha256 of the checkpoints' zips "
                   '(only if the authors replaced a file on purpose), then stop')
    p.add_argument('--max-bytes', type=int, default=DEFAULT_MAX_BYTES,
                   help=f'refuse a download larger than this (default {DEFAULT_MAX_BYTES} = 4 GiB)')
    p.add_argument(
        '--retries',
        type=int,
        default=DownloadLimits.retries,
        help=f'resume this many times after a cut connection before giving up (default {DownloadLimits.retries})',
    )
    p.add_argument('--timeout', type=float, default=DownloadLimits.timeout_s,
                   help=f'seconds a connect or read may stall (default {DownloadLimits.timeout_s:g})')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def _releases(keys: list[str]) -> list[NovicRelease]:
    if keys == ['all']:
        return list(RELEASES)
    try:
        return [find_release(k) for k in keys]
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def _clip_hint(r: NovicRelease) -> str:
    repo = r.embedder.split(':', 1)[1]
    return (f"CLIP {r.embedder}: open_clip reads hf-hub:{repo} from the Hugging Face cache, downloading it when "
            f"online; offline, copy models--{repo.replace('/', '--')} from a machine that has it into $HF_HUB_CACHE "
            "(default ~/.cache/huggingface/hub), or point clip_model/pretrained at local weights")


def run_commands(checkpoint: str) -> list[str]:
    """The commands that run a fetched checkpoint (printed after a fetch, and in the README)."""
    return [f"ros2 launch novic_ros novic.launch.py model:={checkpoint} image:=/camera/image_raw",
            f"ros2 run novic_ros novic_node --ros-args -p model:={checkpoint}",
            f"novic-classify --model {checkpoint} IMAGE.jpg",
            f"novic-export --model {checkpoint} --out BUNDLE   # then model:=BUNDLE, torch-free (onnxruntime/tensorrt)"]


def _offline_message(p: FetchPlan, reason: str) -> str:
    size, sha, source = p.known()
    r = p.release
    return '\n'.join([
        f"{r.tag} ({r.name}): {reason}",
        "novic-fetch would download",
        f"  {p.url}",
        f"  size {f'{size} bytes' if size is not None else 'unknown'}, sha256 {sha or 'unknown'}: {source}",
        f"  into {p.zip_path}",
        "To fetch it by hand: download that URL on a machine with internet, then either copy the zip to",
        f"  {p.zip_path}",
        f"and run `novic-fetch {r.tag}` again, or run `novic-fetch {r.tag} --zip PATH/{r.zip_name}`.",
        "The decoder also needs its CLIP embedder: " + _clip_hint(r),
    ])


def _progress(quiet: bool, label: str):
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    try:
        from tqdm import tqdm      # optional: the runtime install may lack it; then no bar
    except ImportError:
        return None, lambda: None
    bar = tqdm(unit='B', unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
    return update, bar.close


def _report(res: FetchResult) -> None:
    p, r = res.plan, res.plan.release
    what = {'present': 'already in the cache (size and sha256 checked)', 'downloaded': 'downloaded, checked, unpacked',
            'unpacked': 'unpacked from a local zip'}[res.action]
    print(f"{r.tag} ({r.name}): {what}")
    if res.recorded_now:
        print(f"  zip sha256 {res.zip_sha256} recorded in {p.root / 'recorded_hashes.json'}: later fetches check it")
    print(f"  checkpoint: {p.checkpoint}")
    print(f"  needs {_clip_hint(r)}")
    print("  run it:")
    for c in run_commands(str(p.checkpoint)):
        print(f"    {c}")


def _list(root) -> None:
    for r in RELEASES:
        p = plan(r, root)
        state = 'in cache: ' + str(p.checkpoint) if p.checkpoint.is_file() else 'not fetched'
        print(f"{r.tag}  {r.name}  {r.embedder}  {r.vocab_threshold}  World-H {r.figures['World-H']}  "
              f"ImageNet-1K {r.figures['ImageNet-1K']} (the authors' figures)  [{state}]")


def _main(argv) -> int:
    args = parser().parse_args(argv)
    root = args.cache_dir
    if args.list:
        _list(root)
        return 0
    if not args.checkpoints:
        parser().error('name a checkpoint (ta4, yb3, ya2, ye2, or all), or --list')
    releases = _releases(args.checkpoints)
    if (args.url or args.zip) and len(releases) != 1:
        raise ValueError('--url and --zip name one file: give one checkpoint with them')
    limits = DownloadLimits(max_bytes=args.max_bytes, timeout_s=args.timeout, retries=args.retries)
    code = 0
    for r in releases:
        p = plan(r, root, args.url)
        if args.forget:
            print(f"{r.tag}: {'recorded hash dropped' if forget(p.root, r.zip_name) else 'no recorded hash'}")
            continue
        if args.offline and args.zip is None and not p.checkpoint.is_file() and not p.zip_path.is_file():
            print(_offline_message(p, 'not in the cache, and --offline touches no network'), file=sys.stderr)
            code = EXIT_OFFLINE
            continue
        update, close = _progress(args.quiet or args.path, r.zip_name)
        try:
            res = fetch(p, zip_file=args.zip, force=args.force and not args.offline, keep_zip=args.keep_zip,
                        limits=limits, progress=update)
        except OfflineError as e:
            print(_offline_message(p, f"offline: {e}"), file=sys.stderr)
            code = EXIT_OFFLINE
            continue
        finally:
            close()
        if args.path:
            print(p.checkpoint)
        else:
            _report(res)
    return code


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
