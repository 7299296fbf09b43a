"""The multi-object study: every candidate approach side by side on multi-object toy scenes the
training never saw, with set-level precision, recall and F1 and the time per frame.

    python tools/objects_study.py [--cal 200] [--test 500] [--out FILE] [--calibrate]

Protocol: each candidate's thresholds are chosen on calibration scenes (seed --cal-seed) to
maximise set-level F1, then applied unchanged to the test scenes (seed --test-seed); the scenes
come from toy_scenes (2 to 4 objects, 0.15-0.5 of the short side, distractors), streams apart from
every training stream. A predicted label counts once per frame, and is right when it names an
object of the frame. Time per frame: each test frame through each candidate alone (batch 1, as a
node sees it), candidates interleaved frame by frame, median. --calibrate prints the entry of
config/object_calibration.yaml for the toy CLIP.

Candidates: the whole frame's top-3 labels; the single-object decoder on a fixed 2x3 grid of
crops (the baseline); the decoder on a multi-scale grid of 74 windows; the decoder on windows
around salient-region proposals, with and without the CLIP check of each window's label (the
default: both); the text-trained multi-label head with the cross-modal mapping, on the whole frame
and on the salient windows; dense CLIP patch embeddings (MaskCLIP values) grouped into windows,
then decoded; and CLIP prompted with all 162 toy nouns on the salient windows (upper reference:
it needs the label list).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from novic_ros.core.object_finder import ObjectFinder, ObjectOptions, merge
from novic_ros.core.windows import GridConfig
from novic_ros.eval.object_scoring import set_scores
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier
from novic_ros.training import toy_world
from novic_ros.training.toy_scenes import SceneConfig, render_scenes

SIMILARITY_GRID = (0.0,) + tuple(round(x, 2) for x in np.arange(0.60, 0.90, 0.01))


@dataclass
class Looked:
    """One candidate's raw output on one frame: per window (or per label) a label, a score and a
    CLIP similarity (0 where not known), with the boxes the merge needs."""
    boxes: np.ndarray
    labels: tuple[str, ...]
    scores: np.ndarray
    similarities: np.ndarray
    hw: tuple[int, int]


def _merged(looked: list[Looked], min_similarity: float) -> list[dict[str, float]]:
    """Per frame, label -> best score of the objects kept by the merge with no score threshold.
    The merge keeps objects best first, so a threshold keeps exactly those scoring above it."""
    options = ObjectOptions(min_score=0.0, max_objects=100)
    out = []
    for w in looked:
        labels = tuple(l if s >= min_similarity else '' for l, s in zip(w.labels, w.similarities))
        best: dict[str, float] = {}
        for o in merge(w.boxes, labels, w.scores, options, w.hw):
            best[o.label] = max(best.get(o.label, 0.0), o.score)
        out.append(best)
    return out


def predicted(looked: list[Looked], min_score: float, min_similarity: float) -> list[set[str]]:
    return [{l for l, s in m.items() if s >= min_score} for m in _merged(looked, min_similarity)]


def _best_threshold(merged: list[dict[str, float]], truths: list[tuple[str, ...]]) -> tuple[float, float]:
    """(min_score, F1): every distinct score is tried as the threshold, in one sorted pass."""
    items = sorted(((s, l in t) for m, t in zip(merged, truths) for l, s in m.items()), key=lambda x: -x[0])
    present = sum(len(set(t)) for t in truths)
    best, right = (1.0, 0.0), 0
    for k, (score, hit) in enumerate(items, 1):
        right += hit
        if k < len(items) and items[k][0] == score:
            continue                    # ties: a threshold keeps all of them or none
        p, r = right / k, right / max(present, 1)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best[1]:
            best = (score, f1)
    return best


def best_thresholds(
    looked: list[Looked], truths: list[tuple[str, ...]], similarity: bool
) -> tuple[float, float, float]:
    """(min_score, min_similarity, F1) maximising set-level F1 on the calibration scenes."""
    best = (0.0, 0.0, -1.0)
    for sim in (SIMILARITY_GRID if similarity else (0.0,)):
        score, f1 = _best_threshold(_merged(looked, sim), truths)
        if f1 > best[2]:
            best = (score, sim, f1)
    return best


def _finder_looks(finder: ObjectFinder) -> Callable[[list[np.ndarray]], list[Looked]]:
    finder.always_similarity = True

    def looks(frames):
        out = []
        for i in range(0, len(frames), 8):
            looked, _ = finder.look(frames[i:i + 8])
            out += [Looked(w.boxes, w.labels, w.scores, w.similarities, w.frame_hw) for w in looked]
        return out
    return looks


def _whole_frame(classifier) -> Callable:
    clf = classifier.with_options(replace(classifier.options, beam_width=5, top_k=3, min_score=0.0))

    def looks(frames):
        out = []
        for r, f in zip(clf.classify(frames), frames):
            h, w = f.shape[:2]
            n = len(r.labels)
            # Far-apart boxes: the merge must keep every label of the frame.
            boxes = np.array([[i * 10.0, 0, i * 10.0 + 1, 1] for i in range(n)]).reshape(-1, 4)
            out.append(Looked(boxes, tuple(l.text for l in r.labels), np.array([l.score for l in r.labels]),
                              np.zeros(n), (h, w)))
        return out
    return looks


def _head_looks(classifier, finder: ObjectFinder | None, head) -> Callable:
    """The multi-label head on the whole frame (finder None) or on the finder's windows: every noun
    above 0 becomes a candidate label, scored by the head's probability."""
    nouns = head.nouns

    def looks(frames):
        out = []
        for f in frames:
            h, w = f.shape[:2]
            if finder is None:
                probs = head(classifier.backend.encode_images(classifier.preprocess(f)))
                boxes = np.array([[0, 0, w, h]], float)
            else:
                wins = finder._windows(f)
                if not len(wins.windows):
                    out.append(Looked(np.zeros((0, 4)), (), np.zeros(0), np.zeros(0), (h, w)))
                    continue
                probs = head(classifier.backend.encode_images(finder.crop(f, wins.windows)))
                boxes = wins.boxes
            best = probs.argmax(axis=1)
            out.append(Looked(boxes, tuple(nouns[i] for i in best), probs[np.arange(len(best)), best],
                              np.zeros(len(best)), (h, w)))
        return out
    return looks


def _dense_looks(classifier, grid_cells: int = 4, stride: int = 2, short: int = 192) -> Callable:
    """MaskCLIP-style dense embeddings (the last block's value path, no attention, through ln_post
    and the projection), averaged over windows of grid_cells x grid_cells patches, then decoded."""
    import torch                       # the dense path needs the torch model (study only)
    import torch.nn.functional as F
    from PIL import Image
    from novic_ros.core.variants import get_variant
    from novic_ros.models.clip_encoder import ClipEncoder

    model = ClipEncoder(get_variant('toy').clip).model.eval()
    pre = classifier.clip.preprocess
    mean, std = np.asarray(pre.mean, np.float32)[:, None, None], np.asarray(pre.std, np.float32)[:, None, None]

    @torch.inference_mode()
    def dense(frame):
        h, w = frame.shape[:2]
        patch = model.visual.conv1.kernel_size[0]
        size = (int(round(w * short / h / patch)) * patch, short)
        x = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BICUBIC), np.float32).transpose(2, 0, 1)
        x = torch.from_numpy(((x / 255 - mean) / std)[None])
        v = model.visual
        t = v.conv1(x)
        _, c, gh, gw = t.shape
        t = t.flatten(2).transpose(1, 2)
        pos = v.positional_embedding
        n0 = int(round((pos.shape[0] - 1) ** 0.5))
        grid = F.interpolate(pos[1:].reshape(1, n0, n0, c).permute(0, 3, 1, 2), (gh, gw), mode='bicubic')
        t = torch.cat([(v.class_embedding + pos[0]).expand(1, 1, c), t + grid.permute(0, 2, 3, 1).reshape(1, -1, c)], 1)
        t = v.ln_pre(t)
        for block in v.transformer.resblocks[:-1]:
            t = block(t)
        last = v.transformer.resblocks[-1]
        values = F.linear(last.ln_1(t), last.attn.in_proj_weight[2 * c:], last.attn.in_proj_bias[2 * c:])
        out = v.ln_post(last.attn.out_proj(values)[:, 1:]) @ v.proj
        return F.normalize(out, dim=-1).reshape(gh, gw, -1).numpy(), (h / gh, w / gw)

    def looks(frames):
        out = []
        for f in frames:
            d, (sy, sx) = dense(f)
            gh, gw, _ = d.shape
            embs, boxes = [], []
            for y in range(0, max(1, gh - grid_cells + 1), stride):
                for x in range(0, max(1, gw - grid_cells + 1), stride):
                    e = d[y:y + grid_cells, x:x + grid_cells].reshape(-1, d.shape[-1]).mean(0)
                    embs.append(e / np.linalg.norm(e))
                    boxes.append((x * sx, y * sy, (x + grid_cells) * sx, (y + grid_cells) * sy))
            labels, scores = classifier.labeller.window_labels(np.asarray(embs, np.float32))   # generate: greedy
            out.append(Looked(np.asarray(boxes), tuple(labels), scores, np.zeros(len(labels)), f.shape[:2]))
        return out
    return looks


def _timer(fn: Callable, frames: list[np.ndarray]) -> Callable[[int], float]:
    def one(i: int) -> float:
        t = time.perf_counter()
        fn([frames[i]])
        return (time.perf_counter() - t) * 1e3
    return one


def run(args) -> str:
    classifier = build_classifier(ModelParams(backend=args.backend, threads=args.threads))
    prompted = classifier.with_options(replace(classifier.options, mode='prompted', labels=toy_world.NOUNS))
    cfg = SceneConfig()
    cal = render_scenes(args.cal, args.cal_seed, cfg)
    test = render_scenes(args.test, args.test_seed, cfg)
    none = ObjectOptions(min_score=0.0, min_similarity=0.0, max_objects=100)
    salient = ObjectFinder(classifier, none)
    candidates: dict[str, tuple[Callable, bool]] = {  # name -> (looks, thresholds include a CLIP check)
        'whole frame, decoder top-3': (_whole_frame(classifier), False),
        'baseline: decoder on a fixed 2x3 grid': (
            _finder_looks(ObjectFinder(classifier, replace(none, regions='grid', grid=GridConfig((0.5,), 0.0)))),
            False,
        ),
        '(a) decoder on a multi-scale grid (74 windows)': (
            _finder_looks(ObjectFinder(classifier, replace(none, regions='grid'))),
            False,
        ),
        '(a) same + CLIP check': (_finder_looks(ObjectFinder(classifier, replace(none, regions='grid'))), True),
        '(a) decoder on salient windows': (_finder_looks(salient), False),
        '**(a) salient windows + CLIP check (default)**': (_finder_looks(ObjectFinder(classifier, none)), True),
    }
    if not args.quick:
        from multilabel_head import train_head
        t0 = time.time()
        head = train_head(classifier.backend.text_encoder, list(toy_world.NOUNS))
        print(f"multi-label head trained on text in {time.time() - t0:.0f} s", file=sys.stderr)
        candidates['(b) text-trained multi-label head, whole frame'] = (_head_looks(classifier, None, head), False)
        candidates['(b) multi-label head on salient windows'] = (_head_looks(classifier, salient, head), False)
        candidates['(c) dense patch embeddings, 4x4-patch windows, decoded'] = (_dense_looks(classifier), False)
    candidates['reference: CLIP prompted with the 162 nouns, salient windows + check'] = (
        _finder_looks(ObjectFinder(prompted, none)), True)
    cal_frames, test_frames = [s.image for s in cal], [s.image for s in test]
    cal_truth, test_truth = [s.nouns for s in cal], [s.nouns for s in test]
    rows, chosen = [], {}
    for name, (looks, check) in candidates.items():
        t0 = time.time()
        min_score, min_sim, cal_f1 = best_thresholds(looks(cal_frames), cal_truth, check)
        scores = set_scores(predicted(looks(test_frames), min_score, min_sim), test_truth)
        chosen[name] = (min_score, min_sim)
        rows.append([name, scores, min_score, min_sim, cal_f1])
        print(f"{name}: P {scores.precision:.3f} R {scores.recall:.3f} F1 {scores.f1:.3f} (cal F1 {cal_f1:.3f}, "
              f"min_score {min_score:.3f}, min_similarity {min_sim:.2f}; {time.time() - t0:.0f} s)", file=sys.stderr)
    # Time per frame, candidates interleaved frame by frame; the single-label classifier alongside.
    timed = {'single-label classifier (reference)': _timer(classifier.classify, test_frames)}
    timed.update({name: _timer(looks, test_frames) for name, (looks, _) in candidates.items()})
    times: dict[str, list[float]] = {k: [] for k in timed}
    for i in range(min(len(test_frames), args.timed)):
        for k, fn in timed.items():
            times[k].append(fn(i))
    single = statistics.median(times['single-label classifier (reference)'])
    lines = [f"{args.test} test scenes (seed {args.test_seed}), thresholds from {args.cal} calibration scenes "
             f"(seed {args.cal_seed}); backend {classifier.backend.describe()}; time per frame: median of "
             f"{min(len(test_frames), args.timed)} frames, batch 1, single-label classifier {single:.1f} ms.", '',
             '| approach | label list | precision | recall | F1 | ms per frame | x single-label |',
             '|---|---|---|---|---|---|---|']
    for name, s, min_score, min_sim, _ in rows:
        ms = statistics.median(times[name])
        lines.append(f"| {name} | {'yes' if name.startswith('reference') else 'no'} | {s.precision:.3f} | "
                     f"{s.recall:.3f} | {s.f1:.3f} | {ms:.1f} | {ms / single:.1f} |")
    if args.calibrate:
        score, sim = chosen['**(a) salient windows + CLIP check (default)**']
        lines += ['', 'config/object_calibration.yaml entry:', '', '```yaml',
                  f"{classifier.clip.fingerprint}:", '  model: toy', f"  min_score: {score:.3f}",
                  f"  min_similarity: {sim:.2f}",
                  f"  note: {args.cal} toy scenes (seed {args.cal_seed}), {time.strftime('%Y-%m-%d')}", '```']
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python tools/objects_study.py', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cal', type=int, default=200, help='calibration scenes (default 200)')
    p.add_argument('--test', type=int, default=500, help='test scenes (default 500)')
    p.add_argument('--cal-seed', type=int, default=11)
    p.add_argument('--test-seed', type=int, default=12)
    p.add_argument('--timed', type=int, default=100, help='test frames timed per candidate (default 100)')
    p.add_argument('--backend', default='onnxruntime')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--quick', action='store_true', help='skip the slow candidates (b) and (c)')
    p.add_argument('--calibrate', action='store_true', help="print the default's calibration entry")
    p.add_argument('--out', default=None, help='also write the table (markdown) here')
    args = p.parse_args(argv)
    table = run(args)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
