"""The package builds with colcon into a ROS 2 workspace layout, and the installed copy runs
from there: console scripts in lib/novic_ros, data found through the ament index."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    out = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip('not a git checkout')
    return out.stdout.split()


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    colcon = Path(sys.prefix) / 'bin' / 'colcon'
    if not colcon.exists():
        pytest.fail('colcon is missing: make setup installs colcon-common-extensions (requirements-dev.txt)')
    ws = tmp_path_factory.mktemp('ws')
    for rel in tracked_files():                   # exactly what a clone contains
        dst = ws / 'src' / 'novic_ros' / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    env = {**os.environ, 'AMENT_PREFIX_PATH': sys.prefix}
    done = subprocess.run([str(colcon), 'build', '--base-paths', 'src', '--packages-select', 'novic_ros'],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return ws / 'install' / 'novic_ros'


def test_installed_layout(workspace):
    share = workspace / 'share' / 'novic_ros'
    for rel in (
        'package.xml',
        'launch/novic.launch.py',
        'config/novic.yaml',
        'config/models.yaml',
        'config/train/gpu.yaml',
        'config/fastdds_large_frames.xml',
        'models/toy/clip/open_clip_model.safetensors',
        'models/toy/decoder/model.safetensors',
        'interfaces/vision_msgs/msg/Classification.msg',
        'engines/README.md',
    ):
        assert (share / rel).is_file(), rel
    assert (workspace.parent.parent / 'install' / 'novic_ros' / 'share' / 'ament_index' / 'resource_index' /
            'packages' / 'novic_ros').is_file()
    scripts = {p.name for p in (workspace / 'lib' / 'novic_ros').iterdir()}
    assert {'novic_node', 'novic-classify', 'novic-eval', 'novic-train', 'novic-export'} <= scripts


def test_the_installed_copy_classifies(workspace, tmp_path):
    from PIL import Image
    from novic_ros.training import toy_world
    import numpy as np
    img = tmp_path / 'dog.png'
    Image.fromarray(toy_world.render(0, (120, 160), np.random.default_rng(1))).save(img)
    site = next((workspace / 'lib').glob('python3*/site-packages'))
    env = {**os.environ, 'PYTHONPATH': str(site), 'AMENT_PREFIX_PATH': f"{workspace}:{sys.prefix}",
           'NOVIC_ROS_CACHE': str(tmp_path / 'cache')}
    env.pop('NOVIC_ROS_SHARE', None)
    code = ('import novic_ros, novic_ros.paths as p, sys; print(novic_ros.__file__); print(p.share_dir()); '
            'from novic_ros.cli.classify import main; sys.exit(main(sys.argv[1:]))')
    out = subprocess.run([sys.executable, '-c', code, str(img), '--backend', 'torch', '--json'], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(str(workspace)) and lines[1] == str(workspace / 'share' / 'novic_ros')
    assert '"label"' in out.stdout
