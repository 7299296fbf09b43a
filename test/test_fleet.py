"""novic-eval offline over a fleet of bags with --workers 2: each bag gets the report a single run
gives it, one summary pooled across them; a bag that cannot be read and a bag whose worker process is
killed mid-bag (SIGKILL) are failed entries beside intact others."""
import pytest

from fleet_helpers import FLAGS, arm_kill_hook, check_fleet, make_fleet
from novic_ros.cli.eval import main as eval_main


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    return make_fleet(tmp_path_factory.mktemp('fleet'))


def test_two_workers_equal_single_runs_and_a_failed_and_a_killed_bag_stay_apart(fleet, tmp_path, monkeypatch, capsys):
    arm_kill_hook(monkeypatch, fleet)
    code = eval_main(['offline', str(fleet.bags), '--workers', '2', '--out', str(tmp_path / 'fleet'), *FLAGS])
    entries = check_fleet(fleet, tmp_path / 'fleet', code, capsys.readouterr().out, 'killed by signal 9')
    assert entries['doomed']['exit'] == -9


@pytest.mark.skipif(__import__('importlib').util.find_spec('ray') is None, reason="ray is not installed")
def test_ray_at_an_address_without_a_cluster_is_one_line(fleet, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('RAY_ADDRESS', raising=False)
    monkeypatch.setenv('RAY_TMPDIR', str(tmp_path / 'ray'))     # no cluster this machine ran before is found
    code = eval_main(['offline', str(fleet.bags / 'a'), '--ray=auto', '--out', str(tmp_path / 'out'), *FLAGS])
    err = capsys.readouterr().err
    assert code == 1 and 'error: --ray auto: ' in err and 'ray start --head' in err, err


def test_ray_before_the_bags_is_not_taken_for_an_address(fleet, tmp_path, capsys):
    code = eval_main(['offline', '--ray', str(fleet.bags / 'a'), str(fleet.bags / 'b'), '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert code == 1 and "put --ray after the bags, or write --ray=ADDRESS" in err and not (tmp_path / 'o').exists()


def test_ray_without_ray_names_the_extra(fleet, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__('sys').modules, 'ray', None)      # import ray fails, as where it is absent
    code = eval_main(['offline', str(fleet.bags / 'a'), '--ray', '--out', str(tmp_path / 'out'), *FLAGS])
    err = capsys.readouterr().err
    assert code == 1 and err.count('\n') == 1 and 'pip install novic_ros[ray]' in err, err
    assert not (tmp_path / 'out').exists()
