"""novic_node as an unprivileged user (README "Security"): started by root with its user and groups
dropped (setpriv; user `nobody`, or NOVIC_TEST_USER), the node runs with no capability, labels
frames, writes only where it is told to (HOME, ROS_LOG_DIR, text_cache_dir in a folder of its
own), refuses a labels_file in an allowed folder that only root may read (the reason names the
permission and the fix, nothing of the file), uses a readable one from the same folder, and exits 0
on SIGTERM with no traceback.

The client (frames, parameter calls) runs as the same user in its own process: on this machine a
process of another user received nothing root published, over Fast DDS's shared memory and over
UDP alone, though discovery worked both ways and the other direction delivered (README "Security").

Skipped, saying why, when the tests do not run as root (they cannot switch users), without setpriv
or the user. When the test venv's Python lies where the user cannot go (pyenv under /root, as on the
development machines), a scratch venv over the system Python of the same version reads the test
venv's packages instead."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

pytest.importorskip('rclpy')
from novic_ros.core.text_cache import PERSIST_MIN_LABELS  # noqa: E402
from novic_ros.ros.exit_signals import block_in_child  # noqa: E402
from novic_ros.ros.node_process import node_command  # noqa: E402
from ros_helpers import PARAMS_FILE, REPO  # noqa: E402

NS = '/unpriv'
USER = os.environ.get('NOVIC_TEST_USER', 'nobody')

CLIENT = r'''
import json, sys, threading, time
import numpy as np
import rclpy
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification
ns, secret, allowed = sys.argv[1:4]
rclpy.init()
node = rclpy.create_node('unpriv_client')
labels = []
node.create_subscription(Classification, ns + '/labels',
                         lambda m: labels.append(sorted(r.class_id for r in m.results)), 50)
pub = node.create_publisher(Image, ns + '/image', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
client = AsyncParameterClient(node, ns + '/novic_node')
threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
out = {'services': client.wait_for_services(timeout_sec=60)}
rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
frame = Image(height=48, width=64, encoding='rgb8', step=64 * 3, data=rgb.tobytes())
stop = threading.Event()
def stream():
    while not stop.wait(0.1):
        pub.publish(frame)
threading.Thread(target=stream, daemon=True).start()
def wait(cond, timeout):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True
def call(path):
    fut = client.set_parameters_atomically([Parameter('labels_file', value=path), Parameter('mode', value='prompted')])
    if not wait(fut.done, 30):
        return None
    r = fut.result().result
    return {'successful': r.successful, 'reason': r.reason}
out['labelled'] = wait(lambda: len(labels) >= 3, 60)
out['root_only'] = call(secret)
n = len(labels)
out['allowed'] = call(allowed)
vocabulary = set(open(allowed).read().split('\n')) - {''}
out['from_allowed'] = wait(lambda: any(set(l) <= vocabulary for l in labels[n:]), 60)
stop.set()
print(json.dumps(out))
'''

def _user():
    if os.geteuid() != 0:
        pytest.skip("starting the node as another user needs root (the node itself runs as any user)")
    if shutil.which('setpriv') is None:
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no user {USER!r} (set NOVIC_TEST_USER to an unprivileged user)")


def _as_user(user, cmd: list[str]) -> list[str]:
    return ['setpriv', f'--reuid={user.pw_uid}', f'--regid={user.pw_gid}', '--clear-groups', '--', *cmd]


def _runs(user, python: str, env: dict) -> bool:
    return subprocess.run(_as_user(user, [python, '-c', 'import rclpy, novic_ros']), env=env,
                          capture_output=True, timeout=120).returncode == 0


def _python_for(user, scratch: Path, env: dict) -> str:
    """An interpreter `user` can run that imports what the test venv holds."""
    if _runs(user, sys.executable, env):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = next((p for p in (f'/usr/bin/python{version}', f'/usr/local/bin/python{version}') if os.access(p, os.X_OK)),
                None)
    if base is None:
        pytest.skip(f"{sys.executable} is not reachable by {USER} and no system python{version} is installed")
    venv = scratch / 'venv'
    subprocess.run([base, '-m', 'venv', '--without-pip', str(venv)], check=True, timeout=120)
    python = str(venv / 'bin' / 'python')
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                          check=True, capture_output=True, text=True).stdout.strip()
    # A .pth line runs at start: the test venv's packages (and their own .pth hooks) join the path.
    Path(site, 'test_venv.pth').write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    if not _runs(user, python, env):
        pytest.skip(f"neither {sys.executable} nor a venv over {base} runs as {USER}")
    return python


def test_an_unprivileged_node_labels_and_cannot_read_a_root_only_file():
    user = _user()
    scratch = Path(tempfile.mkdtemp(prefix='novic-unpriv-'))      # pytest's tmp folders are root's, 0700
    proc = log = None
    try:
        scratch.chmod(0o755)
        home, client_home, labels = scratch / 'home', scratch / 'client', scratch / 'labels'
        for d in (home, client_home, labels):
            d.mkdir()
        os.chown(home, user.pw_uid, user.pw_gid)
        os.chown(client_home, user.pw_uid, user.pw_gid)
        # Enough labels for the text cache to write them to disk (PERSIST_MIN_LABELS).
        (labels / 'allowed.txt').write_text(''.join(f"object {i}\n" for i in range(PERSIST_MIN_LABELS + 8)))
        secret = labels / 'root-only.txt'
        secret.write_text('SECRET-root-only\n')
        secret.chmod(0o600)
        (scratch / 'client.py').write_text(CLIENT)
        env = dict(os.environ, HOME=str(home), ROS_LOG_DIR=str(home / 'log'), PYTHONPATH=str(REPO))
        python = _python_for(user, scratch, env)
        cmd = node_command(['qos:=reliable', 'backend:=torch', 'warmup:=false', f'labels_dirs:=[{labels}]',
                            f'text_cache_dir:={home}/cache'], params_file=PARAMS_FILE, namespace=NS, python=python)
        log = open(scratch / 'node.log', 'w')
        proc = subprocess.Popen(_as_user(user, cmd), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(home),
                                preexec_fn=block_in_child)
        client_env = dict(env, HOME=str(client_home), ROS_LOG_DIR=str(client_home / 'log'))
        done = subprocess.run(_as_user(user, [python, str(scratch / 'client.py'), NS, str(secret),
                                              str(labels / 'allowed.txt')]),
                              env=client_env, cwd=str(client_home), capture_output=True, text=True, timeout=240)
        node_log = (scratch / 'node.log').read_text()
        assert done.returncode == 0, done.stderr[-3000:] + node_log
        out = json.loads(done.stdout.strip().splitlines()[-1])

        status = Path(f'/proc/{proc.pid}/status').read_text()     # setpriv became the node: same process
        ids = f"{user.pw_uid}\t{user.pw_uid}\t{user.pw_uid}\t{user.pw_uid}"
        assert user.pw_uid != 0 and f"Uid:\t{ids}" in status and 'CapEff:\t0000000000000000' in status
        assert out['services'] and out['labelled'], (out, node_log)
        refused = out['root_only']
        assert refused is not None and not refused['successful']
        assert 'Permission denied' in refused['reason'] and "readable by the node's user" in refused['reason'], refused
        assert 'SECRET' not in refused['reason'] and 'SECRET' not in node_log
        # The same folder's readable file is used: the refusal was the file's mode, not the folder.
        assert out['allowed'] == {'successful': True, 'reason': ''} and out['from_allowed'], (out, node_log)
        # What it wrote is in the folders it was given, owned by its user.
        written = [p for p in home.rglob('*') if p.is_file()]
        assert all(p.stat().st_uid == user.pw_uid for p in written)
        assert any('log' in p.parts for p in written) and any('cache' in p.parts for p in written), written
        assert proc.poll() is None, node_log
        proc.terminate()
        assert proc.wait(15) == 0, (scratch / 'node.log').read_text()
        assert 'Traceback' not in (scratch / 'node.log').read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if log is not None:
            log.close()
        shutil.rmtree(scratch, ignore_errors=True)
