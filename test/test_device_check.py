"""scripts/device_check.sh, the one-command GPU check, runs end to end here with --device cpu (the
lead runs it on a lent GPU machine): the decoder, cache and beam search it imports from the tree,
the table it prints, and its model names that open_clip must know."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_device_check_runs_end_to_end_on_the_cpu(tmp_path):
    out = tmp_path / 'table.md'
    env = {**os.environ, 'PYTHON': sys.executable}
    r = subprocess.run(['bash', str(ROOT / 'scripts' / 'device_check.sh'), '--device', 'cpu', '--models', 'tiny',
                        '--batches', '1,2', '--repeat', '1', '--out', str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith('| tiny')]
    assert [row.split(' | ')[2] for row in rows] == ['1', '2'], out.read_text()
    assert all(row.rstrip(' |').endswith('100% of 2') for row in rows), "fp32 on the CPU must agree with itself"
    bad = subprocess.run(['bash', str(ROOT / 'scripts' / 'device_check.sh'), '--device', 'cpu', '--models', 'nope'],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'choose from b32, h14-378, tiny' in bad.stderr


def test_its_open_clip_models_exist():
    import open_clip
    sys.path.insert(0, str(ROOT / 'scripts'))
    from device_check import MODELS
    names = [m[0] for m in MODELS.values() if m[0]]
    assert set(names) <= set(open_clip.list_models()), names
