"""novic-eval offline over a fleet of bags: --workers 2 gives each bag the report a single run gives
it, one summary pooled across them, and a bag that fails is a failed entry beside intact others."""
import json

from PIL import Image

from novic_ros.cli.eval import main as eval_main
from novic_ros.training import toy_world


def _bag(folder, name, seed):
    pics = folder / f'{name}-pics'
    pics.mkdir()
    renders = toy_world.render_set(1, (64, 64), seed=seed, classes=list(range(seed, 160, 27)))
    for i, r in enumerate(renders):
        Image.fromarray(r.image).save(pics / f'{i:02d}.png')
    (pics / 'labels.json').write_text(json.dumps({f'{i:02d}.png': r.label for i, r in enumerate(renders)}))
    assert eval_main(['make-bag', str(pics), str(folder / 'bags' / name), '--no-progress']) == 0


def test_three_bags_with_two_workers_equal_three_single_runs_and_a_failed_bag_stays_apart(tmp_path, capsys):
    for name, seed in (('a', 1), ('b', 2), ('c', 3)):
        _bag(tmp_path, name, seed)
    bags = tmp_path / 'bags'
    flags = ['--backend', 'torch', '--no-progress']
    singles = {}
    for name in 'abc':
        assert eval_main(['offline', str(bags / name), '--out', str(tmp_path / f'single-{name}'), *flags]) == 0
        singles[name] = json.loads((tmp_path / f'single-{name}' / 'summary.json').read_text())
    (bags / 'broken').mkdir()
    (bags / 'broken' / 'broken_0.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\0' * 64)      # a cut file: this bag fails
    code = eval_main(['offline', str(bags), '--workers', '2', '--out', str(tmp_path / 'fleet'), *flags])
    out = capsys.readouterr().out
    assert code == 1, out                                       # one bag failed
    fleet = json.loads((tmp_path / 'fleet' / 'fleet.json').read_text())
    entries = {e['bag'].split('/')[-1]: e for e in fleet['bags']}
    assert sorted(entries) == ['a', 'b', 'broken', 'c']
    assert entries['broken']['status'] == 'failed' and entries['broken']['error']
    for name in 'abc':
        got, want = entries[name]['summary'], singles[name]
        assert entries[name]['status'] == 'ok'
        assert (got['frames'], got['labelled'], got['score'], got['category_score']) == \
               (want['frames'], want['labelled'], want['score'], want['category_score'])
        assert (tmp_path / 'fleet' / name / 'report.html').is_file()
    n = sum(s['score']['n'] for s in singles.values())
    assert fleet['total']['frames'] == sum(s['frames'] for s in singles.values())
    assert abs(fleet['total']['top1'] - sum(s['score']['top1'] * s['score']['n'] for s in singles.values()) / n) < 1e-12
    assert f"fleet: 3 of 4 bags, {fleet['total']['frames']} frames" in out
