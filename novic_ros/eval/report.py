"""One markdown report with tables and PNG plots: latency histogram and latency over time,
throughput, accuracy per class."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure      # no pyplot: no global backend or figure state to manage

from .run_results import FrameResult, LiveStats, TopicSummary
from .scoring import HYPERNYM_STEP, HYPONYM_STEP

THROUGHPUT_BINS = 20        # at most; fewer for short runs so each bin holds a few frames


def _figure(height: float = 3.2):
    fig = Figure(figsize=(6, height))
    return fig, fig.subplots()


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def throughput(times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges in s, labelled frames per second per bin). Bins shrink for short runs (10 frames
    at 5 Hz span 1.8 s) so the plot is never one empty step. Each frame stands for one mean frame
    interval centred on it, so n frames at r Hz read r (not r n / (n - 1)) and no frame sits on an edge."""
    n, first, last = len(times_s), float(times_s.min()), float(times_s.max())
    interval = (last - first) / (n - 1) if n > 1 and last > first else 1.0
    edges = np.linspace(first - interval / 2, last + interval / 2, max(1, min(THROUGHPUT_BINS, n // 2)) + 1)
    counts, _ = np.histogram(times_s, edges)
    return edges, counts / (edges[1] - edges[0])


def _plots(out: Path, results: list[FrameResult], score, live: LiveStats | None) -> list[tuple[str, str]]:
    made = []
    lat = [(r.timestamp_ns, r.latency_ms) for r in results if r.latency_ms is not None]
    if lat:
        t0 = lat[0][0]
        ts = np.array([(t - t0) / 1e9 for t, _ in lat])
        ms = np.array([m for _, m in lat])
        fig, ax = _figure()
        ax.hist(ms, bins=min(40, max(5, len(ms) // 3)), color='#3b7dd8')
        ax.set_xlabel('latency per frame (ms)'), ax.set_ylabel('frames')
        ax.set_title('end-to-end latency' if live else 'classifier time per frame')
        _save(fig, out / 'latency_hist.png')
        made.append(('Latency histogram', 'latency_hist.png'))
        fig, ax = _figure()
        ax.plot(ts, ms, '.', ms=4, color='#3b7dd8')
        ax.set_xlabel('bag time (s)'), ax.set_ylabel('latency (ms)'), ax.set_title('latency over time')
        _save(fig, out / 'latency_time.png')
        made.append(('Latency over time', 'latency_time.png'))
        answered = np.array([(r.timestamp_ns - t0) / 1e9 for r in results if r.labels and r.answered])
        if len(answered):
            edges, rate = throughput(answered)
            fig, ax = _figure()
            ax.stairs(rate, edges, fill=True, color='#2a9d5c')
            ax.set_xlabel('bag time (s)'), ax.set_ylabel('labelled frames / s'), ax.set_title('throughput')
            _save(fig, out / 'throughput.png')
            made.append(('Throughput', 'throughput.png'))
    if score is not None and score.per_class:
        items = sorted(score.per_class.items(), key=lambda kv: (kv[1].top1, kv[0]))[:40]
        fig, ax = _figure(max(2.5, 0.22 * len(items) + 1))
        ax.barh([k for k, _ in items], [v.top1 for _, v in items], color='#d8893b')
        ax.set_xlim(0, 1), ax.set_xlabel('top-1 accuracy'), ax.set_title('accuracy per class (worst 40)')
        ax.tick_params(axis='y', labelsize=7)
        _save(fig, out / 'accuracy_per_class.png')
        made.append(('Accuracy per class', 'accuracy_per_class.png'))
    return made


def _topics_table(topics: list[TopicSummary], live: bool) -> list[str]:
    """Per image topic: messages listed in the bag, read, skipped (by reason), labelled."""
    head = ['topic', 'type', 'listed in the bag', 'read', 'skipped', 'labelled'] + (['not answered'] if live else [])
    lines = ['', '## Topics', '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for t in topics:
        why = ', '.join(f"{n} {r}" for r, n in t.skipped.items())
        cells = [t.topic, t.msgtype, '?' if t.listed is None else t.listed, t.read,
                 f"{t.skipped_total}{' (' + why + ')' if why else ''}", t.labelled] + ([t.unanswered] if live else [])
        lines.append('| ' + ' | '.join(map(str, cells)) + ' |')
    return lines


def write_report(out: str | Path, *, mode: str, meta: dict, results: list[FrameResult], warnings: list[str],
                 topics: list[TopicSummary] = (), score=None, k: int = 3, live: LiveStats | None = None,
                 category_score=None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labelled = [r for r in results if r.labels]
    lines = [f"# novic-eval {mode}: {meta.get('bag', '')}", '', f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.", '',
             '| | |', '|---|---|']
    lines += [f"| {k_} | {v} |" for k_, v in meta.items()]
    errors = [r for r in results if r.error]
    lines += [
        f"| frames | {len(results)} |",
        f"| labelled | {len(labelled)} |",
        f"| rejected (could not be decoded) | {len(errors)} |",
    ]
    if topics:
        lines += _topics_table(list(topics), live is not None)
    if live is not None:
        lines += [
            '',
            '## Live',
            '',
            '| measure | value |',
            '|---|---|',
            f"| frames sent | {live.sent} |",
            f"| answered | {live.answered} |",
            f"| dropped or never answered | {live.dropped} ({live.dropped / max(1, live.sent):.1%}) |",
            f"| input rate | {live.input_rate_hz:.2f} Hz |",
            f"| output rate | {live.output_rate_hz:.2f} Hz |",
            f"| latency p50 / p95 / max | {live.latency_p50_ms:.1f} / {live.latency_p95_ms:.1f} / "
            f"{live.latency_max_ms:.1f} ms |",
        ]
        lines += [f"| {k_} | {v} |" for k_, v in live.extra.items()]
    elif labelled:
        ms = [r.latency_ms for r in labelled if r.latency_ms is not None]
        lines += ['', f"Classifier time per frame (batched): median {np.median(ms):.1f} ms."]
    if score is not None:
        lines += ['', '## Accuracy', '', f"{score.n} annotated frames. Scores after normalisation (case, articles, "
                  "plurals); 'synonym' = the same WordNet synset. Hierarchy score: 1 for a correct label, "
                  f"1 - {HYPERNYM_STEP} d for a WordNet hypernym d levels above the truth (more general), "
                  f"1 - {HYPONYM_STEP} d for a hyponym d levels below (more specific), 0 otherwise.", '',
                  '| measure | value |', '|---|---|',
                  f"| top-1 (exact or synonym) | {score.top1:.1%} |", f"| top-1 exact | {score.top1_exact:.1%} |",
                  f"| top-{k} | {score.topk:.1%} |", f"| hierarchy score (top-1) | {score.hierarchy:.3f} |"]
        lines += ['', '### Per class', '', '| class | frames | top-1 | hierarchy |', '|---|---|---|---|']
        lines += [f"| {c} | {v.n} | {v.top1:.0%} | {v.hierarchy:.2f} |" for c, v in sorted(score.per_class.items())]
        if score.confusions:
            lines += ['', '### Most common confusions', '', '| truth | predicted | frames |', '|---|---|---|']
            lines += [f"| {t} | {p} | {n} |" for t, p, n in score.confusions]
    if category_score is not None:
        lines += category_score.markdown()
    plots = _plots(out, results, score, live)
    if plots:
        lines += ['', '## Plots', '']
        lines += [f"### {title}\n\n![{title}]({fname})\n" for title, fname in plots]
    if warnings:
        lines += ['', '## Warnings', ''] + [f"- {w}" for w in warnings]
    if errors:
        lines += ['', '## Rejected frames', ''] + [f"- {r.topic} #{'?' if r.index is None else r.index}: {r.error}"
                                                   for r in errors[:50]]
    path = out / 'report.md'
    path.write_text('\n'.join(lines) + '\n')
    return path
