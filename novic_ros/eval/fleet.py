"""novic-eval offline over many bags (a fleet): each bag evaluated by its own `novic-eval offline`
process (its model loaded once per bag; --workers N at a time), or each by a Ray task (cli/fleet_ray.py),
its report in OUT/<bag name>/, and one summary across the bags in OUT/fleet.json and OUT/fleet.md. A bag
whose run fails or whose worker is killed is a failed entry (exit status and the end of its stderr, or
how its worker died); the others are unaffected."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

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


def bag_entry(bag: Path, out: Path, code: int, stderr: str, seconds: float, why: str | None = None) -> dict:
    """One bag's entry from its run: ok with the run's summary.json when it exited 0, else failed with
    `why` (a runner's account: killed, worker lost) or the end of its stderr."""
    entry = {'bag': str(bag), 'report': str(out), 'exit': code, 'seconds': round(seconds, 1)}
    summary = out / 'summary.json'
    if code == 0 and why is None and summary.is_file():
        entry.update(status='ok', summary=json.loads(summary.read_text()))
    else:
        lines = [why] if why else stderr.strip().splitlines()[-3:]
        if not lines:
            lines = [f"killed by signal {-code}" if code < 0 else f"exit {code}"]
        entry.update(status='failed', error=' | '.join(lines))
    return entry


def run_processes(bags: list[Path], outs: list[Path], passthrough: list[str], workers: int) -> list[dict]:
    """Each bag by its own `novic-eval offline` process, `workers` at a time."""
    def one(bag: Path, out: Path) -> dict:
        cmd = [sys.executable, '-m', 'novic_ros.cli.eval', 'offline', str(bag), '--out', str(out), '--no-progress',
               *passthrough]
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        return bag_entry(bag, out, proc.returncode, proc.stderr, time.monotonic() - start,
                         f"killed by signal {-proc.returncode}" if proc.returncode < 0 else None)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, bags, outs))


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


def run_fleet(bags: list[Path], out: Path, runner: Callable[[list[Path], list[Path]], list[dict]]) \
        -> tuple[dict, list[dict]]:
    """`runner(bags, report folders)` evaluates the bags (run_processes, or Ray tasks) and returns their
    entries (bag_entry); the fleet's summary is written from them: OUT/fleet.json and OUT/fleet.md."""
    out.mkdir(parents=True, exist_ok=True)
    names = [b.stem if b.is_file() else b.name for b in bags]
    outs = [out / (name if names.count(name) == 1 else f"{name}-{i}") for i, name in enumerate(names)]
    entries = runner(bags, outs)
    total = pooled(entries)
    (out / 'fleet.json').write_text(json.dumps({'total': total, 'bags': entries}, indent=1) + '\n')
    lines = [
        '# novic-eval fleet',
        '',
        '| bag | status | frames | labelled | top-1 | report |',
        '|---|---|---|---|---|---|',
    ]
    for e in entries:
        s = e.get('summary') or {}
        top1 = f"{s['score']['top1']:.1%}" if s.get('score') else ''
        lines.append(f"| {e['bag']} | {e['status']}{': ' + e['error'] if e['status'] != 'ok' else ''} | "
                     f"{s.get('frames', '')} | {s.get('labelled', '')} | {top1} | {e['report']} |")
    lines += ['', '| total | value |', '|---|---|'] + [
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in total.items()
    ]
    (out / 'fleet.md').write_text('\n'.join(lines) + '\n')
    return total, entries
