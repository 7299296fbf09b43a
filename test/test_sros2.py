"""novic_node with SROS2 switched on (ROS_SECURITY_ENABLE=true, Enforce) where it cannot run: an
enclave missing from the keystore, or one whose files are not valid certificates (on the PyPI
wheels, whose Fast DDS has no security plugins, any keystore): exit 1 with one line naming what rcl
or the middleware said and what SROS2 needs, no traceback. What was and was not tested with SROS2 is
in README "Security"."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')
from ros_helpers import REPO  # noqa: E402

FILES = ('identity_ca.cert.pem', 'cert.pem', 'key.pem', 'permissions_ca.cert.pem', 'governance.p7s', 'permissions.p7s')


def run_node(tmp_path, enclave: str):
    env = dict(os.environ, ROS_SECURITY_ENABLE='true', ROS_SECURITY_STRATEGY='Enforce',
               ROS_SECURITY_KEYSTORE=str(tmp_path / 'keystore'), ROS_LOG_DIR=str(tmp_path / 'log'))
    return subprocess.run([sys.executable, '-m', 'novic_ros.ros.node', '--ros-args', '--enclave', enclave,
                           '-r', '__ns:=/sros', '-p', 'warmup:=false'], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_a_missing_enclave_is_one_line_and_exit_1(tmp_path):
    (tmp_path / 'keystore' / 'enclaves').mkdir(parents=True)
    done = run_node(tmp_path, '/sros/novic_node')
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert 'cannot start' in out and 'does not exist' in out and 'create_enclave' in out, out
    assert 'Traceback' not in out


def test_an_enclave_the_middleware_cannot_use_is_one_line_and_exit_1(tmp_path):
    enclave = tmp_path / 'keystore' / 'enclaves' / 'sros' / 'novic_node'
    enclave.mkdir(parents=True)
    for name in FILES:
        (enclave / name).write_text('not a certificate\n')
    done = run_node(tmp_path, '/sros/novic_node')
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert 'cannot start' in out and 'ROS_SECURITY_ENABLE is true' in out, out
    assert 'Traceback' not in out
