"""The fleet tests' bags: three small labelled toy-world bags, a cut one that fails to read, and one
whose worker is killed mid-bag (kill_hook/sitecustomize.py), with the three bags' single-run summaries."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from novic_ros.cli.eval import main as eval_main
from novic_ros.training import toy_world

# onnxruntime: the first single run exports the toy bundle (torch, in this process); the workers then
# run that bundle without importing torch (seconds per worker instead of tens on a loaded CI machine).
FLAGS = ['--backend', 'onnxruntime', '--no-progress']
KILL_HOOK = Path(__file__).parent / 'kill_hook'
DOOMED = 'doomed'


@dataclass
class Fleet:
    root: Path
    bags: Path                   # the folder of bags: a, b, c, broken, doomed
    singles: dict[str, dict]     # a, b, c: summary.json of a single run each


def make_fleet(root: Path) -> Fleet:
    bags = root / 'bags'
    for name, seed in (('a', 1), ('b', 2), ('c', 3)):
        pics = root / f'{name}-pics'
        pics.mkdir()
        renders = toy_world.render_set(1, (64, 64), seed=seed, classes=list(range(seed, 160, 40)))
        for i, r in enumerate(renders):
            Image.fromarray(r.image).save(pics / f'{i:02d}.png')
        (pics / 'labels.json').write_text(json.dumps({f'{i:02d}.png': r.label for i, r in enumerate(renders)}))
        assert eval_main(['make-bag', str(pics), str(bags / name), '--no-progress']) == 0
    singles = {}
    for name in 'abc':
        assert eval_main(['offline', str(bags / name), '--out', str(root / f'single-{name}'), *FLAGS]) == 0
        singles[name] = json.loads((root / f'single-{name}' / 'summary.json').read_text())
    (bags / 'broken').mkdir()
    (bags / 'broken' / 'broken_0.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\0' * 64)      # a cut file: this bag fails
    shutil.copytree(bags / 'a', bags / DOOMED)
    shutil.copy(bags / 'a.annotations.csv', bags / f'{DOOMED}.annotations.csv')
    return Fleet(root, bags, singles)


def arm_kill_hook(monkeypatch, fleet: Fleet) -> None:
    """Worker processes started from now on load kill_hook and die in the doomed bag."""
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(KILL_HOOK), os.environ.get('PYTHONPATH', '')]))
    monkeypatch.setenv('NOVIC_TEST_KILL_BAG', str(fleet.bags / DOOMED) + os.sep)


def check_fleet(fleet: Fleet, out: Path, code: int, printed: str, killed_words: str) -> dict:
    """The fleet's reports against the single runs: a, b, c equal to them, broken and doomed failed."""
    assert code == 1, printed                                       # two bags failed
    report = json.loads((out / 'fleet.json').read_text())
    entries = {e['bag'].split('/')[-1]: e for e in report['bags']}
    assert sorted(entries) == ['a', 'b', 'broken', 'c', DOOMED]
    assert entries['broken']['status'] == 'failed' and 'mcap' in entries['broken']['error'].lower(), entries['broken']
    assert entries[DOOMED]['status'] == 'failed' and killed_words in entries[DOOMED]['error'], entries[DOOMED]
    for name in 'abc':
        got, want = entries[name]['summary'], fleet.singles[name]
        assert entries[name]['status'] == 'ok'
        assert (got['frames'], got['labelled'], got['score'], got['category_score']) == \
               (want['frames'], want['labelled'], want['score'], want['category_score'])
        assert (out / name / 'report.html').is_file() and (out / name / 'labels.jsonl').is_file()
    singles = fleet.singles.values()
    n = sum(s['score']['n'] for s in singles)
    assert report['total']['frames'] == sum(s['frames'] for s in singles)
    assert abs(report['total']['top1'] - sum(s['score']['top1'] * s['score']['n'] for s in singles) / n) < 1e-12
    assert f"fleet: 3 of 5 bags, {report['total']['frames']} frames" in printed
    return entries
