"""novic-eval offline over many bags (a fleet): each bag evaluated by its own `novic-eval offline`
process (its model loaded once per bag; --workers N at a time), its report in OUT/<bag name>/, and
one summary across the bags in OUT/fleet.json and OUT/fleet.md. A bag whose process fails or is
killed is a failed entry (exit status and the end of its stderr); the others are unaffected."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BAG_SUFFIXES = ('.mcap', '.db3', '.bag')


def expand_bags(arguments: list[str]) -> list[Path]:
    """BAG arguments -> bags: a folder that is not itself a bag (no metadata.yaml and no bag files
    inside) stands for the bags in it (sub-folders and bag files), sorted by name."""
    bags: list[Path] = []
    for arg in arguments:
        p = Path(arg)
        if p.is_dir() and not _is_bag_folder(p):
            bags += sorted(c for c in p.iterdir() if c.is_dir() or c.suffix in BAG_SUFFIXES)
        else:
            bags.append(p)
    return bags


def _is_bag_folder(p: Path) -> bool:
    return (p / 'metadata.yaml').is_file() or any(c.is_file() and c.suffix in BAG_SUFFIXES for c in p.iterdir())


def _run_one(bag: Path, out: Path, passthrough: list[str]) -> dict:
    cmd = [sys.executable, '-m', 'novic_ros.cli.eval', 'offline', str(bag), '--out', str(out), '--no-progress',
           *passthrough]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    entry = {'bag': str(bag), 'report': str(out), 'exit': proc.returncode, 'seconds': round(time.monotonic() - start, 1)}
    summary = out / 'summary.json'
    if proc.returncode == 0 and summary.is_file():
        entry.update(status='ok', summary=json.loads(summary.read_text()))
    else:
        why = proc.stderr.strip().splitlines()[-3:] or [f"killed by signal {-proc.returncode}" if proc.returncode < 0
                                                        else f"exit {proc.returncode}"]
        entry.update(status='failed', error=' | '.join(why))
    return entry


def pooled(entries: list[dict]) -> dict:
    """The fleet's totals: frames and labelled summed, scores pooled over the annotated frames."""
    ok = [e['summary'] for e in entries if e['status'] == 'ok']
    total = {'bags': len(entries), 'ok': len(ok), 'failed': len(entries) - len(ok),
             'frames': sum(s['frames'] for s in ok), 'labelled': sum(s['labelled'] for s in ok)}
    scored = [s['score'] for s in ok if s.get('score')]
    n = sum(s['n'] for s in scored)
    if n:
        total['annotated'] = n
        for key in ('top1', 'topk', 'hierarchy'):
            total[key] = sum(s[key] * s['n'] for s in scored) / n
    return total


def run_fleet(bags: list[Path], out: Path, workers: int, passthrough: list[str]) -> tuple[dict, list[dict]]:
    out.mkdir(parents=True, exist_ok=True)
    names = [b.stem if b.is_file() else b.name for b in bags]
    outs = [out / (name if names.count(name) == 1 else f"{name}-{i}") for i, name in enumerate(names)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        entries = list(pool.map(lambda bo: _run_one(bo[0], bo[1], passthrough), zip(bags, outs)))
    total = pooled(entries)
    (out / 'fleet.json').write_text(json.dumps({'total': total, 'bags': entries}, indent=1) + '\n')
    lines = ['# novic-eval fleet', '', '| bag | status | frames | labelled | top-1 | report |', '|---|---|---|---|---|---|']
    for e in entries:
        s = e.get('summary') or {}
        top1 = f"{s['score']['top1']:.1%}" if s.get('score') else ''
        lines.append(f"| {e['bag']} | {e['status']}{': ' + e['error'] if e['status'] != 'ok' else ''} | "
                     f"{s.get('frames', '')} | {s.get('labelled', '')} | {top1} | {e['report']} |")
    lines += ['', '| total | value |', '|---|---|'] + [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                                                       for k, v in total.items()]
    (out / 'fleet.md').write_text('\n'.join(lines) + '\n')
    return total, entries
