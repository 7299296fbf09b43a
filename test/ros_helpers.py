"""Helpers for tests that talk to a real novic_node process over DDS (localhost only)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Sequence

from conftest import TORCH_FREE_BUNDLE
from novic_ros.ros import node_process as novic_node_process

REPO = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO / 'config' / 'novic.yaml'
# What the node tests' nodes run: the toy variant on torch, or in the torch-free run (make test-jazzy)
# the same variant exported to a bundle, on onnxruntime.
NODE_MODEL, NODE_BACKEND = (TORCH_FREE_BUNDLE, 'onnxruntime') if TORCH_FREE_BUNDLE else ('toy', 'torch')


def node_args(overrides: Sequence[str]) -> list[str]:
    """The tests' parameter overrides as the node gets them. They are written for the venv with torch
    ('model:=toy', 'backend:=torch', or neither: config/novic.yaml's toy); in the torch-free run the
    toy variant becomes its bundle and the torch backend onnxruntime. Other models stay as written."""
    if not TORCH_FREE_BUNDLE:
        return list(overrides)
    out = [{'model:=toy': f'model:={NODE_MODEL}', 'backend:=torch': f'backend:={NODE_BACKEND}'}.get(o, o)
           for o in overrides]
    if not any(o.startswith('model:=') for o in out):
        out.append(f'model:={NODE_MODEL}')
    return out


class NodeProcess(novic_node_process.NodeProcess):
    """novic_node as its own process (the package's launcher, as the demo, novic-eval and make bench start
    it), `-p name:=value` overrides over config/novic.yaml, logging to a file under tmp_path. Every test
    that runs the node starts it through this class; the overrides pass through node_args."""

    def __init__(self, tmp_path: Path, *overrides: str, params_file: Path = PARAMS_FILE, namespace: str = '/novic',
                 remaps: tuple[str, ...] | list[str] = (), env: dict | None = None):
        log_name = f"node-{namespace.strip('/').replace('/', '-')}-{time.time_ns()}.log"
        super().__init__(node_args(overrides), params_file=params_file, namespace=namespace, remaps=remaps,
                         log_path=tmp_path / log_name, env=env)

    def wait_exit(self, timeout: float = 90) -> int:
        """The exit code once the node exits by itself (a start-up that fails)."""
        return self.proc.wait(timeout)


class Collector:
    """Thread-safe list of received messages with their arrival times."""

    def __init__(self):
        self.items: list = []
        self.times: list[float] = []
        self._cond = threading.Condition()

    def __call__(self, msg):
        with self._cond:
            self.items.append(msg)
            self.times.append(time.monotonic())
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.items):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def __len__(self):
        with self._cond:
            return len(self.items)


class RosClient:
    """An rclpy node in the test process, spun by a background executor."""

    def __init__(self, name: str = 'novic_test_client'):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def subscribe(self, msg_type, topic: str, qos=10) -> Collector:
        c = Collector()
        self.node.create_subscription(msg_type, topic, c, qos)
        return c

    def publisher(self, msg_type, topic: str, qos=None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        return self.node.create_publisher(
            msg_type, topic, qos or QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        )

    def wait_matched(self, pub, node: NodeProcess | None = None, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while pub.get_subscription_count() == 0:
            if node is not None and not node.alive():
                raise AssertionError(f"novic_node exited early:\n{node.log()}")
            if time.monotonic() > end:
                raise AssertionError(f"no subscriber on {pub.topic_name} after {timeout}s" +
                                     (f"; node log:\n{node.log()}" if node else ''))
            time.sleep(0.05)
        time.sleep(0.3)   # let discovery settle both ways

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
