"""One markdown report with tables and PNG plots: latency histogram and latency over time,
throughput, accuracy per class."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .results import FrameResult, LiveStats
from .scoring import HYPERNYM_STEP, HYPONYM_STEP


def _plots(out: Path, results: list[FrameResult], score, live: LiveStats | None) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use('Agg')          # files only, no display
    import matplotlib.pyplot as plt
    made = []
    lat = [(r.timestamp_ns, r.latency_ms) for r in results if r.latency_ms is not None]
    if lat:
        t0 = lat[0][0]
        ts = np.array([(t - t0) / 1e9 for t, _ in lat])
        ms = np.array([m for _, m in lat])
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.hist(ms, bins=min(40, max(5, len(ms) // 3)), color='#3b7dd8')
        ax.set_xlabel('latency per frame (ms)'), ax.set_ylabel('frames')
        ax.set_title('end-to-end latency' if live else 'classifier time per frame')
        fig.tight_layout(), fig.savefig(out / 'latency_hist.png', dpi=100), plt.close(fig)
        made.append(('Latency histogram', 'latency_hist.png'))
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot(ts, ms, '.', ms=4, color='#3b7dd8')
        ax.set_xlabel('bag time (s)'), ax.set_ylabel('latency (ms)'), ax.set_title('latency over time')
        fig.tight_layout(), fig.savefig(out / 'latency_time.png', dpi=100), plt.close(fig)
        made.append(('Latency over time', 'latency_time.png'))
        # Throughput: labelled frames per second of bag time, 1 s bins.
        answered = np.array([(r.timestamp_ns - t0) / 1e9 for r in results if r.labels and r.answered])
        if len(answered) > 1:
            edges = np.arange(0, max(1.0, answered.max()) + 1.0, 1.0)
            counts, _ = np.histogram(answered, edges)
            fig, ax = plt.subplots(figsize=(6, 3.2))
            ax.step(edges[:-1], counts, where='post', color='#2a9d5c')
            ax.set_xlabel('bag time (s)'), ax.set_ylabel('labelled frames / s'), ax.set_title('throughput')
            fig.tight_layout(), fig.savefig(out / 'throughput.png', dpi=100), plt.close(fig)
            made.append(('Throughput', 'throughput.png'))
    if score is not None and score.per_class:
        items = sorted(score.per_class.items(), key=lambda kv: (kv[1].top1, kv[0]))[:40]
        fig, ax = plt.subplots(figsize=(6, max(2.5, 0.22 * len(items) + 1)))
        ax.barh([k for k, _ in items], [v.top1 for _, v in items], color='#d8893b')
        ax.set_xlim(0, 1), ax.set_xlabel('top-1 accuracy'), ax.set_title('accuracy per class (worst 40)')
        ax.tick_params(axis='y', labelsize=7)
        fig.tight_layout(), fig.savefig(out / 'accuracy_per_class.png', dpi=100), plt.close(fig)
        made.append(('Accuracy per class', 'accuracy_per_class.png'))
    return made


def write_report(out: str | Path, *, mode: str, meta: dict, results: list[FrameResult], warnings: list[str],
                 score=None, k: int = 3, live: LiveStats | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labelled = [r for r in results if r.labels]
    lines = [f"# novic-eval {mode}: {meta.get('bag', '')}", '', f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.", '',
             '| | |', '|---|---|']
    lines += [f"| {k_} | {v} |" for k_, v in meta.items()]
    errors = [r for r in results if r.error]
    lines += [f"| frames | {len(results)} |", f"| labelled | {len(labelled)} |", f"| rejected (could not be decoded) | {len(errors)} |"]
    if live is not None:
        lines += ['', '## Live', '', '| measure | value |', '|---|---|',
                  f"| frames sent | {live.sent} |", f"| answered | {live.answered} |",
                  f"| dropped or never answered | {live.dropped} ({live.dropped / max(1, live.sent):.1%}) |",
                  f"| input rate | {live.input_rate_hz:.2f} Hz |", f"| output rate | {live.output_rate_hz:.2f} Hz |",
                  f"| latency p50 / p95 / max | {live.latency_p50_ms:.1f} / {live.latency_p95_ms:.1f} / {live.latency_max_ms:.1f} ms |"]
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
    plots = _plots(out, results, score, live)
    if plots:
        lines += ['', '## Plots', '']
        lines += [f"### {title}\n\n![{title}]({fname})\n" for title, fname in plots]
    if warnings:
        lines += ['', '## Warnings', ''] + [f"- {w}" for w in warnings]
    if errors:
        lines += ['', '## Rejected frames', ''] + [f"- {r.topic} #{r.index}: {r.error}" for r in errors[:50]]
    path = out / 'report.md'
    path.write_text('\n'.join(lines) + '\n')
    return path
