"""novic_node as a child process, started the way a robot starts it (its module entry point, a params
file, a namespace, `-p name:=value` overrides): one launcher for the demo, `novic-eval live
--start-node`, the benchmarks and the tests. Imports no rclpy: the parent may not be a ROS process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Mapping, Sequence

import yaml

from ..params import DEFAULT_NAMESPACE
from ..paths import config_path
from .exit_signals import block_in_child


def ros_value(value) -> str:
    """A parameter value as `-p` wants it: YAML, so lists stay lists and '5' stays a string."""
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip().removesuffix('\n...').strip()


def node_command(params: Mapping[str, object] | Sequence[str] = (), *, params_file: str | os.PathLike | None = None,
                 namespace: str = DEFAULT_NAMESPACE, remaps: Sequence[str] = (),
                 python: str = sys.executable) -> list[str]:
    """The command line; `params` is a mapping, or already formatted 'name:=value' strings."""
    cmd = [python, '-m', 'novic_ros.ros.node', '--ros-args',
           '--params-file', str(params_file or config_path('novic.yaml')), '-r', f'__ns:={namespace}']
    for r in remaps:
        cmd += ['-r', r]
    items = [f"{k}:={ros_value(v)}" for k, v in params.items()] if isinstance(params, Mapping) else list(params)
    for item in items:
        cmd += ['-p', item]
    return cmd


class NodeProcess:
    """A running novic_node. Output goes to `log_path` (readable with .log()) or, without one, to
    this process's own stdout/stderr."""

    def __init__(
        self,
        params: Mapping[str, object] | Sequence[str] = (),
        *,
        params_file=None,
        namespace: str = DEFAULT_NAMESPACE,
        remaps: Sequence[str] = (),
        log_path: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.cmd = node_command(params, params_file=params_file, namespace=namespace, remaps=remaps)
        self.log_path = Path(log_path) if log_path else None
        self._log: IO | None = open(self.log_path, 'w') if self.log_path else None
        # SIGINT/SIGTERM sent while the interpreter starts wait for the node's handlers (exit_signals).
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
                                     env=dict(env) if env is not None else None, preexec_fn=block_in_child)

    def log(self) -> str:
        if self._log is None:
            return ''
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (the node shuts down cleanly), SIGKILL if it does not exit within `timeout`."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> 'NodeProcess':
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
