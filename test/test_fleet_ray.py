"""novic-eval offline --ray on a local Ray cluster of two workers (ray.init(num_cpus=2), started by the
run itself): the same reports and pooled summary as single runs, gathered from the tasks into OUT/;
a bag that cannot be read and a bag whose Ray worker is killed mid-bag (SIGKILL) are failed entries,
the others intact.
Ray is an optional extra (pip install novic_ros[ray]): skipped without it."""
import importlib.util

import pytest

from fleet_helpers import FLAGS, arm_kill_hook, check_fleet, make_fleet
from novic_ros.cli.eval import main as eval_main

pytestmark = pytest.mark.skipif(importlib.util.find_spec('ray') is None,
                                reason="ray is not installed (pip install novic_ros[ray], or -r requirements-ray.txt)")


def test_ray_tasks_equal_single_runs_and_a_killed_worker_fails_only_its_bag(tmp_path, monkeypatch, capsys):
    import ray
    fleet = make_fleet(tmp_path)
    arm_kill_hook(monkeypatch, fleet)          # before the cluster starts: its workers inherit the environment
    # --ray without ADDRESS: the run starts its own local cluster, of two CPUs (--workers 2), and stops it.
    code = eval_main(['offline', str(fleet.bags), '--ray', '--workers', '2', '--out', str(tmp_path / 'fleet'), *FLAGS])
    assert not ray.is_initialized()
    entries = check_fleet(fleet, tmp_path / 'fleet', code, capsys.readouterr().out, 'WorkerCrashedError')
    assert entries['a']['report'] == str(tmp_path / 'fleet' / 'a')
    # The model was shipped as the exported bundle, unpacked once on this node; the tasks loaded it from there.
    assert all('novic_ros-ray-models' in entries[n]['summary']['model'] for n in 'abc')
