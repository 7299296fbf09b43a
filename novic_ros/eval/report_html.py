"""report.html: one self-contained page per evaluation, readable offline (no script, no stylesheet
or image fetched: plots are inline SVG, thumbnails data: URIs). The summary (top-1/top-k, hierarchy
and category scores, latency percentiles, frames read/skipped/dropped and why), the most confused
true -> predicted pairs, per-class and per-category accuracy, a gallery of the worst frames (the
most confident misses: thumbnail, truth, predicted labels and scores), latency as a histogram and
per frame in bag order, and the frames lost (skipped, or never answered live) on a timeline."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .run_results import FrameResult, LiveStats, TopicSummary

GALLERY_MAX = 24
THUMB_PX = 160


@dataclass(frozen=True)
class Miss:
    """An annotated frame whose top-1 label is wrong: the result, the acceptable nouns, a JPEG thumbnail."""
    result: FrameResult
    truths: tuple[str, ...]
    thumbnail: bytes | None = None


def thumbnail_jpeg(rgb: np.ndarray, size: int = THUMB_PX, objects=()) -> bytes:
    """The frame within size x size, as JPEG; `objects` ((label, score, box in the frame's pixels), the
    --objects results) drawn on the thumbnail itself (frames/overlay.draw_objects), so that outlines
    and text keep a readable size whatever the frame's."""
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(rgb))
    img.thumbnail((size, size))
    if objects:
        from ..frames.overlay import draw_objects
        sx, sy = img.width / rgb.shape[1], img.height / rgb.shape[0]
        img = Image.fromarray(
            draw_objects(
                np.asarray(img.convert('RGB')),
                [(t, s, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)) for t, s, b in objects],
            )
        )
    buf = io.BytesIO()
    img.save(buf, 'JPEG', quality=80)
    return buf.getvalue()


def _e(x) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: list[list], cls: str = '') -> str:
    out = [f'<table class="{cls}"><tr>' + ''.join(f'<th>{_e(h)}</th>' for h in head) + '</tr>']
    out += ['<tr>' + ''.join(f'<td>{_e(c)}</td>' for c in r) + '</tr>' for r in rows]
    return '\n'.join(out) + '</table>'


def _svg_histogram(values: np.ndarray, xlabel: str, width: int = 560, height: int = 200) -> str:
    counts, edges = np.histogram(values, bins=min(40, max(5, len(values) // 3)))
    pad, w, h = 40, width - 50, height - 40
    top = max(1, int(counts.max()))
    bw = w / len(counts)
    bars = ''.join(f'<rect x="{pad + i * bw:.1f}" y="{10 + h - c / top * h:.1f}" width="{max(bw - 1, 1):.1f}" '
                   f'height="{c / top * h:.1f}" fill="#3b7dd8"><title>{edges[i]:.1f}-{edges[i + 1]:.1f} ms: {c}'
                   '</title></rect>' for i, c in enumerate(counts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">{bars}'
            f'<line x1="{pad}" y1="{10 + h}" x2="{pad + w}" y2="{10 + h}" stroke="#333"/>'
            f'<text x="{pad}" y="{height - 8}" font-size="11">{edges[0]:.1f}</text>'
            f'<text x="{pad + w}" y="{height - 8}" font-size="11" text-anchor="end">{edges[-1]:.1f}</text>'
            f'<text x="{pad + w / 2}" y="{height - 8}" font-size="11" text-anchor="middle">{_e(xlabel)}</text>'
            f'<text x="4" y="20" font-size="11">{top}</text></svg>')


def _svg_series(values: np.ndarray, ylabel: str, width: int = 560, height: int = 200) -> str:
    pad, w, h = 40, width - 50, height - 40
    hi = float(values.max()) or 1.0
    n = max(len(values) - 1, 1)
    dots = ''.join(f'<circle cx="{pad + i / n * w:.1f}" cy="{10 + h - v / hi * h:.1f}" r="2" fill="#3b7dd8"/>'
                   for i, v in enumerate(values))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">{dots}'
            f'<line x1="{pad}" y1="{10 + h}" x2="{pad + w}" y2="{10 + h}" stroke="#333"/>'
            f'<text x="4" y="20" font-size="11">{hi:.0f}</text>'
            f'<text x="{pad + w / 2}" y="{height - 8}" font-size="11" text-anchor="middle">frame (bag order); '
            f'{_e(ylabel)}</text></svg>')


def _svg_timeline(lost: list[tuple[float, str]], span: tuple[float, float], width: int = 560, height: int = 70) -> str:
    t0, t1 = span
    w = width - 50
    scale = w / max(t1 - t0, 1e-9)
    ticks = ''.join(f'<line x1="{40 + (t - t0) * scale:.1f}" y1="10" x2="{40 + (t - t0) * scale:.1f}" y2="40" '
                    f'stroke="#c0392b" stroke-width="2"><title>{t - t0:.2f} s: {_e(why)}</title></line>'
                    for t, why in lost)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<line x1="40" y1="40" x2="{40 + w}" y2="40" stroke="#333"/>{ticks}'
            f'<text x="40" y="60" font-size="11">0 s</text>'
            f'<text x="{40 + w}" y="60" font-size="11" text-anchor="end">{t1 - t0:.1f} s of bag time</text></svg>')


def summary_rows(results: list[FrameResult], topics: list[TopicSummary], score, k: int, live: LiveStats | None,
                 category_score) -> list[tuple[str, str]]:
    """(measure, value) of the summary, as the page shows them."""
    rows = []
    if score is not None:
        rows += [('annotated frames', str(score.n)), ('top-1', f"{score.top1:.1%}"), (f'top-{k}', f"{score.topk:.1%}"),
                 ('hierarchy score', f"{score.hierarchy:.3f}")]
    if category_score is not None:
        rows.append(('category accuracy', f"{category_score.accuracy:.1%}"))
    ms = np.array([r.latency_ms for r in results if r.labels and r.latency_ms is not None])
    if len(ms):
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        what = 'end-to-end latency' if live is not None else 'classifier time per frame'
        rows.append((f'{what} p50 / p95 / p99 / max', f"{p50:.1f} / {p95:.1f} / {p99:.1f} / {ms.max():.1f} ms"))
    read = sum(t.read for t in topics)
    skipped: dict[str, int] = {}
    for t in topics:
        for why, n in t.skipped.items():
            skipped[why] = skipped.get(why, 0) + n
    rows += [('frames read', str(read)), ('labelled', str(sum(bool(r.labels) for r in results))),
             ('skipped', f"{sum(skipped.values())}" + (' (' + ', '.join(f"{n} {w}" for w, n in skipped.items()) + ')'
                                                       if skipped else ''))]
    if live is not None:
        rows.append(('dropped or never answered', f"{live.dropped} of {live.sent}"))
    return rows


def write_html_report(out: str | Path, *, title: str, meta: dict, results: list[FrameResult],
                      topics: list[TopicSummary], score=None, k: int = 3, live: LiveStats | None = None,
                      category_score=None, misses: list[Miss] = (), warnings: list[str] = (),
                      objects: bool = False) -> Path:
    """`misses`: the gallery's frames (with `objects`: frames with an object unnamed or a label naming
    nothing present, their thumbnails drawn with each object's box and label, their labels listed with
    the boxes)."""
    out = Path(out)
    parts = [
        f'<h1>{_e(title)}</h1>',
        _table(['', ''], [[a, b] for a, b in meta.items()], 'meta'),
        '<h2>Summary</h2>',
        _table(
            ['measure', 'value'],
            [list(r) for r in summary_rows(results, topics, score, k, live, category_score)],
            'summary',
        ),
    ]
    if topics:
        parts += [
            '<h3>Per topic</h3>',
            _table(
                ['topic', 'type', 'read', 'skipped (why)', 'labelled'] + (['not answered'] if live else []),
                [
                    [
                        t.topic,
                        t.msgtype,
                        t.read,
                        f"{t.skipped_total}"
                        + (' (' + ', '.join(f"{n} {r}" for r, n in t.skipped.items()) + ')' if t.skipped else ''),
                        t.labelled,
                    ]
                    + ([t.unanswered] if live else [])
                    for t in topics
                ],
            ),
        ]
    if score is not None and score.confusions:
        parts += ['<h2>Most confused (truth → predicted)</h2>',
                  _table(['truth', 'predicted', 'frames'], [list(c) for c in score.confusions[:20]], 'confusions')]
    if category_score is not None:
        parts += ['<h2>Per category</h2>', _table(['category', 'frames', 'accuracy'],
                                                  [[c, v.n, f"{v.accuracy:.0%}"] for c, v in
                                                   category_score.per_category.items()], 'categories')]
    if misses:
        cards = []
        for m in misses[:GALLERY_MAX]:
            r = m.result
            img = (
                f'<img alt="{_e(r.topic)} #{r.index}" src="data:image/jpeg;base64,'
                f'{base64.b64encode(m.thumbnail).decode()}">'
                if m.thumbnail
                else '<div class="noimg">no picture</div>'
            )
            boxes = [' [' + ', '.join(f'{v:.0f}' for v in b) + ']' for b in r.boxes] or [''] * len(r.labels)
            labels = ''.join(f'<li>{_e(t)} {s:.2f}{b}</li>' for (t, s), b in zip(r.labels, boxes))
            cards.append(f'<figure class="miss">{img}<figcaption>{_e(r.topic)} #{_e(r.index)}<br>'
                         f'<b>true:</b> {_e(" / ".join(m.truths))}<ol>{labels}</ol></figcaption></figure>')
        shown = min(len(misses), GALLERY_MAX)
        parts += [f'<h2>Worst frames ({shown} of {len(misses)} frames with an object missed or a label naming nothing '
                  'present, most errors first; boxes drawn)</h2>' if objects else
                  f'<h2>Worst frames ({shown} of {len(misses)} misses, most confident first)</h2>',
                  '<div class="gallery">' + ''.join(cards) + '</div>']
    if score is not None and score.per_class:
        # Classes of one frame each say nothing a confusion row does not: shown only with 2+ frames.
        items = sorted(
            ((c, v) for c, v in score.per_class.items() if v.n > 1), key=lambda kv: (kv[1].top1, -kv[1].n, kv[0])
        )
        parts.append('<h2>Per class (2 or more frames, worst first)</h2>')
        parts.append(_table(['class', 'frames', 'top-1', 'hierarchy'],
                            [[c, v.n, f"{v.top1:.0%}", f"{v.hierarchy:.2f}"] for c, v in items[:50]], 'classes')
                     if items else f'<p>Every one of the {len(score.per_class)} classes has one annotated frame: '
                                   'see the confusions and the gallery.</p>')
    lat = np.array([r.latency_ms for r in results if r.labels and r.latency_ms is not None])
    if len(lat):
        what = 'end-to-end latency (ms)' if live is not None else 'classifier time per frame (ms)'
        parts += ['<h2>Latency</h2>', _svg_histogram(lat, what), _svg_series(lat, what)]
    if results:
        times = [r.timestamp_ns / 1e9 for r in results]
        lost = [(r.timestamp_ns / 1e9, r.reason or r.error or 'rejected') for r in results if r.error] + \
               [(r.timestamp_ns / 1e9, 'never answered') for r in results if not r.answered]
        parts += [f'<h2>Frames lost ({len(lost)})</h2>', _svg_timeline(lost, (min(times), max(times)))]
    if warnings:
        parts += ['<h2>Warnings</h2><ul>' + ''.join(f'<li>{_e(w)}</li>' for w in warnings) + '</ul>']
    style = ('body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}'
             'td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}.gallery{display:flex;flex-wrap:wrap;gap:8px}'
             'figure.miss{border:1px solid #ccc;margin:0;padding:4px;width:180px;font-size:12px}'
             'figure.miss ol{margin:2px 0;padding-left:18px}')
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title><style>{style}</style>'
            f'</head><body>\n' + '\n'.join(parts) + '\n</body></html>\n')
    path = out / 'report.html'
    path.write_text(page, encoding='utf-8')
    return path
