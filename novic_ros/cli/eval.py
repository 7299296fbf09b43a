"""novic-eval: turn bags into numbers and pictures.

  novic-eval make-bag SOURCE OUT      images folder or video file -> ROS 2 bag (mcap or sqlite3)
  novic-eval offline BAG              classify every frame with the core; labels as JSONL/CSV (+ a labels bag)
  novic-eval live BAG                 play the bag into the running novic_node; latency, rate, drops

BAG: a ROS 2 bag folder (mcap or sqlite3; split, compressed per message or per file with zstd),
a single .mcap or .db3 file, or a ROS 1 .bag file (or a folder of ROS 1 split files).
offline and live write OUT/report.md with tables and PNG plots, OUT/report.html (one self-contained page:
summary, confusions, per-category accuracy, a gallery of the worst frames, latency, lost frames), labels.jsonl and
labels.csv;
with --annotations FILE they also score top-1/top-k accuracy, the hierarchy-aware score and the
category accuracy (--categories, as the node's parameter).
offline --objects names every object of each frame instead (the multi-object mode); an annotation row
then lists the objects present (`dog;cat`, alternatives for one object joined by `|`), scored as sets:
precision, recall and F1, per class.
They exit with status 1 when no frame could be labelled.
"""
from __future__ import annotations

if __name__ == '__main__':
    # `python -m novic_ros.cli.eval` goes through the console script's entry point, which says in one line
    # what to install when a library below is missing (torch_tools), instead of a traceback here.
    from novic_ros.cli.torch_tools import eval_tool as _entry_point
    raise SystemExit(_entry_point())

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from ..eval.annotations import load_annotations, match_annotations
from ..eval.bagio import BagError, open_bag
from ..eval.category_scoring import score_categories
from ..eval.make_bag import make_bag
from ..eval.object_scoring import frame_errors, report_lines, score_objects
from ..eval.offline import frames_at, run_offline, write_labels_bag
from ..eval.report import write_report
from ..eval.report_html import GALLERY_MAX, Miss, thumbnail_jpeg, write_html_report
from ..eval.run_results import topic_summaries, write_csv, write_jsonl
from ..eval.scoring import NONE, Scorer
from ..lexicon.categories import CategoryMap
from ..lexicon.wordnet import WordNet
from ..params import (
    DEFAULT_LABELS_TOPIC,
    DEFAULT_MAX_PIXELS,
    DEFAULT_NAMESPACE,
    add_model_arguments,
    model_params_from_args,
)
from ..pipeline import build_classifier, build_object_finder
from ..ros.node_process import NodeProcess, ros_value
from .common import fail, run, setup_logging

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='novic-eval', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest='cmd', required=True)
    m = sub.add_parser('make-bag', help='images folder or video -> bag')
    m.add_argument(
        'source', help='folder of images (sorted by name; labels.json is turned into annotations) or a video file'
    )
    m.add_argument('out', help='output bag folder (must not exist)')
    m.add_argument(
        '--topic',
        default='/camera/image_raw',
        help='image topic of the bag (default /camera/image_raw; /compressed, /foxglove or /ffmpeg is added for '
        'those transports)',
    )
    m.add_argument('--rate', type=float, default=10.0, help='frames per second of bag time (default 10)')
    m.add_argument('--frame-id', default='camera', help='header.frame_id of every frame (default camera)')
    m.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'), help='bag storage format (default mcap)')
    m.add_argument('--transport', default='raw', choices=('raw', 'compressed', 'h264', 'h265'),
                   help='raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage on TOPIC/compressed; '
                        'h264, h265: a video stream (see --video-msg) on TOPIC/foxglove or TOPIC/ffmpeg')
    m.add_argument(
        '--video-msg',
        default='foxglove',
        choices=('foxglove', 'ffmpeg'),
        help='h264/h265: foxglove_msgs/CompressedVideo (foxglove) or ffmpeg_image_transport_msgs/FFMPEGPacket (ffmpeg)',
    )
    m.add_argument(
        '--keyframe-interval', type=int, default=10, help='h264/h265: pictures from one keyframe to the next'
    )
    m.add_argument('--encoding', default='rgb8', help='raw encoding (rgb8, bgr8, mono8, yuv422, ...)')
    m.add_argument('--format', default='jpeg', choices=('jpeg', 'png'), help='compressed format')
    m.add_argument('--no-progress', action='store_true', help='no progress bar')
    for name, help_ in (('offline', 'classify every frame with the core library'),
                        ('live', 'play into the running novic_node and record its labels')):
        s = sub.add_parser(name, help=help_)
        s.add_argument('bag', help='bag folder, .mcap/.db3 file (ROS 2) or .bag file (ROS 1)')
        s.add_argument('--out', default=None, help='report folder (default: reports/<bag name>-<mode>)')
        s.add_argument(
            '--annotations',
            default=None,
            help='ground truth CSV (topic,frame,nouns); default: BAG.annotations.csv if present',
        )
        s.add_argument('--topics', nargs='*', default=None, help='image topics to evaluate (default: all)')
        s.add_argument('--no-progress', action='store_true', help='no progress bar')
    off = sub.choices['offline']
    off.add_argument(
        'more_bags',
        nargs='*',
        metavar='BAG',
        help='more bags: a fleet, each evaluated by its own process into OUT/<bag name>/, with one summary '
        'across them (OUT/fleet.json, OUT/fleet.md); a folder that is not a bag stands for the bags in it',
    )
    off.add_argument('--workers', type=int, default=None,
                     help='fleet: bags evaluated at the same time (default 1; with --ray and no ADDRESS: the local '
                          'cluster\'s CPUs, default all)')
    off.add_argument('--ray', nargs='?', const='', default=None, metavar='ADDRESS',
                     help='fleet: each bag a Ray task on the cluster at ADDRESS (ray.init(ADDRESS); auto: the one this '
                          'machine is part of) or, without ADDRESS, on a new local one; the model is shipped to the '
                          'workers once, the bags must be at paths they see (needs pip install novic_ros[ray])')
    off.add_argument('--labels-bag', default=None,
                     help=f'also write a copy of the bag with {DEFAULT_LABELS_TOPIC} added (a new path)')
    off.add_argument('--objects', action='store_true',
                     help='name every object of each frame (multi-object mode, object_* options) and score the '
                          'annotations as sets of objects present: set-level precision, recall, F1, per class')
    off.add_argument('--overlay', default=None, metavar='DIR',
                     help='also write the frames drawn with their labels (as the node\'s overlay topic): one H.264 '
                          'DIR/<topic>.mp4 per image topic')
    add_model_arguments(off)
    live = sub.choices['live']
    live.add_argument('--labels-topic', default=DEFAULT_LABELS_TOPIC,
                      help=f'the node\'s labels topic to record (default {DEFAULT_LABELS_TOPIC})')
    live.add_argument('--speed', type=float, default=1.0, help='playback speed factor (default 1: recorded timing)')
    live.add_argument(
        '--qos',
        default='reliable',
        choices=('reliable', 'sensor_data'),
        help='QoS of the played image topics: reliable (every frame delivered, the default) or sensor_data '
        '(best effort, depth 5, as most camera drivers)',
    )
    live.add_argument('--drain', type=float, default=5.0, help='seconds to wait for late labels after the last frame')
    live.add_argument('--top-k', type=int, default=3, help='k for top-k accuracy')
    add_model_arguments(live, ('categories',))
    live.add_argument(
        '--start-node',
        action='store_true',
        help=f'start novic_node for the run (namespace {DEFAULT_NAMESPACE}, the bag topics as image_topics)',
    )
    live.add_argument('--params-file', default=None, help='with --start-node: node parameters file')
    live.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                      help='with --start-node: extra node parameter (repeatable)')
    for sp in sub.choices.values():
        sp.add_argument('-v', '--verbose', action='store_true', help='log what loads and how long it takes (INFO)')
    return p


def _annotations_path(args, bag: Path) -> Path | None:
    """The annotations file to score against: --annotations (which must exist), else
    BAG.annotations.csv beside the bag when present."""
    if args.annotations:
        path = Path(args.annotations)
        if not path.is_file():
            raise FileNotFoundError(f"annotations file {path} does not exist")
        return path
    path = bag.parent / f"{bag.name}.annotations.csv"
    return path if path.is_file() else None


def _score(path: Path | None, results, k: int, warnings: list[str], cats: CategoryMap | None = None,
           objects: bool = False):
    """The fine score (set-level with `objects`), the category score when `cats` is given (None
    each without annotations), and the misses: (position, truths) of each annotated frame whose
    top-1 label matches no truth, the most confident first."""
    if path is None:
        return None, None, []
    matched, more = match_annotations(load_annotations(path), results)
    warnings += [f"{path.name} {w}" for w in more]
    if not matched:
        warnings.append(f"no frame of the bag matches an annotation in {path}")
        return None, None, []
    wn = cats.wn if cats is not None else None
    if wn is None:
        try:
            wn = WordNet.load()
        except FileNotFoundError as e:
            warnings.append(f"{e}; scoring exact matches only")
    positions = sorted(matched)
    preds = [[t for t, _ in results[i].labels] for i in positions]
    truths = [list(matched[i].nouns) for i in positions]
    scorer = Scorer(wn)
    if objects:     # misses: frames with an object unnamed or a label naming nothing present, most errors first
        errors = frame_errors(scorer, preds, truths)
        misses = [(i, tuple(t)) for i, t, e in sorted(zip(positions, truths, errors), key=lambda m: -m[2]) if e]
        return score_objects(scorer, preds, truths), None, misses
    category_score = None if cats is None else score_categories(cats, [results[i].labels for i in positions], truths)
    misses = [(i, tuple(t)) for i, p, t in zip(positions, preds, truths) if not p or scorer.match(p[0], t) == NONE]
    misses.sort(key=lambda m: -(results[m[0]].labels[0][1] if results[m[0]].labels else 0.0))
    return scorer.score(preds, truths, k), category_score, misses


def _categories(args, annotations: Path | None) -> CategoryMap | None:
    """WordNet and the categories, loaded before the run so that a bad category stops it early;
    None without annotations (nothing to score) or without WordNet (scored exact only, later)."""
    if annotations is None:
        return None
    try:
        return CategoryMap.load(args.categories)
    except FileNotFoundError:
        return None


def _finish(args, mode: str, bag: Path, results, warnings: list[str], topics, meta: dict, k: int,
            annotations: Path | None, live=None, cats: CategoryMap | None = None, pictures=None) -> int:
    """Write the reports; `pictures(keys)` returns the decoded frames of (topic, index) keys for the
    gallery's thumbnails (None: the gallery shows no pictures)."""
    out = Path(args.out) if args.out else Path('reports') / f"{bag.name}-{mode}"
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(results, out / 'labels.jsonl')
    write_csv(results, out / 'labels.csv', k)
    objects = getattr(args, 'objects', False)
    score, category_score, missed = _score(annotations, results, k, warnings, cats, objects)
    labelled = sum(bool(r.labels) for r in results)
    summary_json = {'mode': mode, **meta, 'frames': len(results), 'labelled': labelled,
                    'rejected': sum(bool(r.error) for r in results), 'warnings': warnings,
                    'topics': [{**vars(t), 'skipped_total': t.skipped_total} for t in topics],
                    'score': score.to_dict() if score is not None else None,
                    'category_score': category_score.to_dict() if category_score is not None else None,
                    'live': None if live is None else {**vars(live), 'dropped': live.dropped}}
    (out / 'summary.json').write_text(json.dumps(summary_json, indent=1, default=str) + '\n')
    report = write_report(out, mode=mode, meta=meta, results=results, warnings=warnings, topics=topics,
                          score=None if objects else score, k=k, live=live, category_score=category_score)
    if objects and score is not None:
        with open(report, 'a') as f:
            f.write('\n'.join(report_lines(score)) + '\n')
    shown = [(results[i], truths) for i, truths in missed[:GALLERY_MAX]]
    rgb = pictures({(r.topic, r.index) for r, _ in shown}) if pictures is not None and shown else {}
    # --objects: each object's box and label drawn on its thumbnail
    def thumb(r):
        pic = rgb.get((r.topic, r.index))
        return None if pic is None else thumbnail_jpeg(pic, objects=[(n, s, b) for (n, s), b in zip(r.labels, r.boxes)])
    misses = [Miss(r, t, thumb(r)) for r, t in shown] + [Miss(results[i], t) for i, t in missed[GALLERY_MAX:]]
    html_report = write_html_report(out, title=f"novic-eval {mode}: {meta.get('bag', '')}", meta=meta, results=results,
                                    topics=list(topics), score=None if objects else score, k=k, live=live,
                                    category_score=category_score, misses=misses, warnings=warnings,
                                    objects=objects)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for t in topics:
        print(t.describe())
    summary = f"{len(results)} frames, {labelled} labelled"
    if live is not None:
        summary += (f", {live.dropped} dropped or unanswered, latency p50 {live.latency_p50_ms:.1f} ms, "
                    f"output {live.output_rate_hz:.2f} Hz")
    if objects and score is not None:
        summary += f", objects: precision {score.precision:.3f}, recall {score.recall:.3f}, F1 {score.f1:.3f}"
    elif score is not None:
        summary += f", top-1 {score.top1:.1%}, top-{k} {score.topk:.1%}, hierarchy {score.hierarchy:.3f}"
    if category_score is not None:
        summary += f", category {category_score.accuracy:.1%}"
    print(f"{summary}\nreport: {report} and {html_report.name}")
    if not labelled:
        return fail(f"no frame of {bag} was labelled; the report says why: {report}")
    return 0


def _fleet(args, argv) -> int | None:
    """Many bags (or a folder of bags), or --ray: the fleet run; None for a single bag."""
    from ..eval.fleet import expand_bags, run_fleet, run_processes
    bags = expand_bags([args.bag, *args.more_bags])
    if args.ray is None and len(bags) == 1 and not args.more_bags and bags[0] == Path(args.bag):
        return None
    if args.annotations or args.labels_bag or args.overlay:
        raise ValueError("--annotations, --labels-bag and --overlay name one bag's files; in a fleet each bag is "
                         "scored against its own BAG.annotations.csv")
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise ValueError(f"--workers must be in 1..64, got {args.workers}")
    if args.ray and Path(args.ray).exists():     # `--ray BAG ...`: argparse took the first bag for ADDRESS
        raise ValueError(f"--ray took {args.ray} for the cluster's address; put --ray after the bags, or write "
                         "--ray=ADDRESS")
    if args.ray is not None:
        from .fleet_ray import require_ray
        require_ray()                    # before anything runs: one line naming the extra
    missing = [str(b) for b in bags if not b.exists()]
    if missing:
        raise FileNotFoundError(f"no such bag: {', '.join(missing)}")
    out = Path(args.out) if args.out else Path('reports') / 'fleet-offline'
    drop = {args.bag, *args.more_bags, 'offline'}
    passthrough, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in ('--out', '--workers') or a == '--ray' and args.ray and argv[i + 1:i + 2] == [args.ray]:
            i += 1                      # and its value
        elif not (a.startswith(('--out=', '--workers=', '--ray=')) or a in drop or a in ('--no-progress', '--ray')):
            passthrough.append(a)
        i += 1
    if args.ray is not None:
        from .fleet_ray import package_model, run_ray
        params = model_params_from_args(args)
        pkg = package_model(params)
        total, entries = run_fleet(bags, out, lambda bs, outs: run_ray(bs, outs, passthrough, pkg, args.ray or None,
                                                                       ray_bag_task, args.workers))
    else:
        total, entries = run_fleet(bags, out, lambda bs, outs: run_processes(bs, outs, passthrough, args.workers or 1))
    for e in entries:
        print(f"{e['bag']}: {e['status']}" + (f" ({e['error']})" if e['status'] != 'ok' else
                                             f", {e['summary']['frames']} frames, {e['summary']['labelled']} labelled"))
    text = f"fleet: {total['ok']} of {total['bags']} bags, {total['frames']} frames, {total['labelled']} labelled"
    if 'top1' in total:
        text += f", top-1 {total['top1']:.1%} over {total['annotated']} annotated frames"
    print(f"{text}\nsummary: {out / 'fleet.md'}")
    return 1 if total['failed'] else 0


def ray_bag_task(bag: str, passthrough: list[str], pkg) -> dict:
    """--ray: one bag's run in a Ray worker (cli/fleet_ray.py), through this module's main."""
    from .fleet_ray import evaluate_bag
    return evaluate_bag(main, bag, passthrough, pkg)


def _offline(args) -> int:
    bag_path = Path(args.bag)
    annotations = _annotations_path(args, bag_path)
    cats = _categories(args, annotations)
    if args.labels_bag and Path(args.labels_bag).exists():
        raise BagError(f"{args.labels_bag} exists; choose a new path for --labels-bag (bags are never overwritten)")
    params = model_params_from_args(args)
    with open_bag(bag_path, args.topics, params.max_pixels) as bag:    # the bag is checked before the model loads
        clf = build_classifier(params)
        if args.objects:
            clf = build_object_finder(clf, params)
        results = run_offline(bag, clf, batch_size=params.batch_size, progress=not args.no_progress,
                              max_pixels=params.max_pixels)
        warnings = list(bag.warnings)
        if args.labels_bag:
            warnings += write_labels_bag(bag, args.labels_bag, results)
            print(f"labels bag: {args.labels_bag}")
        topics = topic_summaries(bag.tallies, results)
        if args.overlay:
            from ..eval.overlay_video import write_overlays
            for topic, (path, n) in write_overlays(bag_path, args.topics, params.max_pixels, results,
                                                   args.overlay).items():
                print(f"overlay: {path} ({n} frames of {topic})")
        meta = {'bag': str(bag_path), 'recorded as': bag.describe(), 'model': params.model, 'mode': params.mode,
                'backend': (clf.classifier if args.objects else clf).backend.describe()}
        if args.objects:
            meta['objects'] = clf.describe()
    return _finish(args, 'offline', bag_path, results, warnings, topics, meta, params.top_k, annotations, cats=cats,
                   pictures=lambda keys: frames_at(bag_path, args.topics, params.max_pixels, keys))


def _node_starter(args):
    from ..eval.live import node_inputs

    def start(bag_topics: dict[str, str]) -> NodeProcess:
        topics, transport = node_inputs(bag_topics)       # video topics: their base names, transport foxglove/ffmpeg
        params = [f"image_topics:={ros_value(topics)}", f"transport:={transport}", f"qos:={args.qos}", *args.node_param]
        return NodeProcess(params, params_file=args.params_file)
    return start


def _live(args) -> int:
    from ..eval.live import run_live      # rclpy and the message packages: make-bag and offline run without ROS
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if os.environ.get('ROS_DISTRO') == 'humble':      # Humble knows only the older switch
        os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')
    bag_path = Path(args.bag)
    annotations = _annotations_path(args, bag_path)
    cats = _categories(args, annotations)
    with open_bag(bag_path, args.topics) as bag:
        results, stats, warnings = run_live(bag, start_node=_node_starter(args) if args.start_node else None,
                                            labels_topic=args.labels_topic, speed=args.speed, qos=args.qos,
                                            drain_s=args.drain, progress=not args.no_progress)
        topics = topic_summaries(bag.tallies, results)
        meta = {'bag': str(bag_path), 'recorded as': bag.describe(), 'labels topic': args.labels_topic,
                'speed': args.speed, 'qos': args.qos}
    return _finish(args, 'live', bag_path, results, warnings, topics, meta, args.top_k, annotations, live=stats,
                   cats=cats, pictures=lambda keys: frames_at(bag_path, args.topics, DEFAULT_MAX_PIXELS, keys))


def _make_bag(args) -> int:
    # image_transport's names: TOPIC/compressed, and TOPIC/foxglove or TOPIC/ffmpeg for the video transports.
    suffix = {'compressed': 'compressed'}.get(
        args.transport, args.video_msg if args.transport in ('h264', 'h265') else ''
    )
    topic = args.topic + (f'/{suffix}' if suffix and not args.topic.endswith(f'/{suffix}') else '')
    res = make_bag(
        args.source,
        args.out,
        topic=topic,
        rate_hz=args.rate,
        frame_id=args.frame_id,
        storage=args.storage,
        transport=args.transport,
        encoding=args.encoding,
        fmt=args.format,
        progress=not args.no_progress,
        video_message=args.video_msg,
        keyframe_interval=args.keyframe_interval,
    )
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{res.frames} frames -> {res.bag} ({args.storage}, {topic})" +
          (f"; annotations: {res.annotations}" if res.annotations else ''))
    return 0


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.cmd == 'offline':
            code = _fleet(args, list(argv if argv is not None else sys.argv[1:]))
            if code is not None:
                return code
        return {'make-bag': _make_bag, 'offline': _offline, 'live': _live}[args.cmd](args)
    except BagError as e:
        for w in e.warnings:        # what was found wrong before the error (missing files, damage)
            print(f"warning: {w}", file=sys.stderr)
        raise


def main(argv=None) -> int:
    return run(_main, argv)      # BagError, AnnotationError: ValueErrors -> one line on stderr, exit 1

