"""novic_node's process as a robot runs it, from a separate client process: SIGINT and SIGTERM at any
moment exit 0 with no traceback in under 2 s (while importing, in configure, with the bond waiting
for a manager, with a fake nav2 manager holding the bond, mid-frame, during a parameter change), and
an inference worker that dies inside the node (NOVIC_FAULT, a test hook in the process environment)
turns /diagnostics ERROR with the cause, is restarted, and labelling goes on; a change of rate_hz
wakes a worker asleep for the rate limit at once. The node processes start in parallel."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')
from bond.msg import Status  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from ros_helpers import NodeProcess, RosClient  # noqa: E402
from test_node import image_msg, renders  # noqa: E402

EXIT_S = 2.0
BOND_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    client = RosClient('novic_exit_test')
    yield client
    client.close()
    rclpy.try_shutdown()


def signal_and_time(node: NodeProcess, sig: int) -> tuple[int, float]:
    """Send `sig`; the exit code and the seconds until the process was gone."""
    start = time.monotonic()
    node.proc.send_signal(sig)
    code = node.proc.wait(30)
    return code, time.monotonic() - start


def assert_clean(node: NodeProcess, code: int, took: float, what: str) -> None:
    log = node.log()
    assert code == 0, f"{what}: exit code {code}\n{log[-4000:]}"
    assert 'Traceback' not in log and 'RCLError' not in log, f"{what}:\n{log[-4000:]}"
    assert took < EXIT_S, f"{what}: {took:.2f} s to exit\n{log[-2000:]}"


def last_line(node: NodeProcess) -> str:
    lines = [line for line in node.log().splitlines() if line.startswith('[')]
    return lines[-1][:100] if lines else '(nothing logged yet: importing or loading)'


def test_a_signal_at_1_3_and_12_s_after_start(tmp_path):
    """Six processes at once: SIGINT and SIGTERM 1 s (importing), 3 s (rclpy, configure) and 12 s (configure
    or active, the bond waiting for a manager) after start."""
    plan = [(delay, sig) for delay in (1.0, 3.0, 12.0) for sig in (signal.SIGINT, signal.SIGTERM)]
    nodes = [NodeProcess(tmp_path, 'backend:=torch', namespace=f'/sig{i}') for i in range(len(plan))]
    started = time.monotonic()
    results = []
    try:
        for (delay, sig), node in sorted(zip(plan, nodes), key=lambda p: p[0][0]):
            time.sleep(max(0.0, started + delay - time.monotonic()))
            doing = last_line(node)
            code, took = signal_and_time(node, sig)
            results.append((delay, signal.Signals(sig).name, code, took, doing, node))
    finally:
        for node in nodes:
            node.stop()
    for delay, name, code, took, doing, node in results:
        print(f"{name} at {delay:.0f} s: exit {code} in {took:.2f} s; was at: {doing}")
        assert_clean(node, code, took, f"{name} at {delay:.0f} s")


def wait_log(node: NodeProcess, text: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while text not in node.log():
        assert node.alive() and time.monotonic() < end, f"waiting for {text!r}:\n{node.log()[-4000:]}"
        time.sleep(0.1)


class Frames:
    """Publishes toy frames to `topic` at ~20 Hz until stopped."""

    def __init__(self, ros, topic: str):
        self.pub = ros.publisher(Image, topic)
        self._stop = threading.Event()
        self._frame = renders(1)[0]
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.pub.publish(image_msg(self._frame, frame_id=f'f{self.sent}'))
            self.sent += 1
            time.sleep(0.05)

    def stop(self):
        self._stop.set()


def ours(diag, ns: str):
    return [(s, time.monotonic()) for m in diag.items for s in m.status if s.name.startswith(f'{ns}/')]


def value(status, key: str) -> str:
    return next((kv.value for kv in status.values if kv.key == key), '')


def test_exits_clean_holding_a_bond_mid_frame_and_mid_change_and_a_dead_worker_is_restarted(ros, tmp_path):
    """Two nodes at once. /held: a fake nav2 manager holds its bond and frames flow, SIGINT mid-frame:
    exit 0 and the bond ends with `active: false`. /faulty: NOVIC_FAULT kills its worker thread after 3
    batches: /diagnostics ERROR with the cause within seconds, the worker restarted, labels again;
    rate_hz 0.01 -> 0 wakes it at once; then SIGTERM while a change to 3000 prompted labels is built."""
    held = NodeProcess(tmp_path, 'backend:=torch', 'qos:=reliable', 'warmup:=false', namespace='/held')
    faulty = NodeProcess(tmp_path, 'backend:=torch', 'qos:=reliable', 'warmup:=false',
                         f'text_cache_dir:={tmp_path}/cache', namespace='/faulty',
                         env={**os.environ, 'NOVIC_FAULT': 'worker_dies_after=3'})
    # The manager's side of the bond, as nav2_lifecycle_manager (bondcpp) keeps it: Status on `bond` in
    # the node's namespace, id = node name, its own instance id, active, at its heartbeat period.
    heard = ros.subscribe(Status, '/held/bond', BOND_QOS)
    manager = ros.node.create_publisher(
        Status, '/held/bond', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    beater = ros.node.create_timer(0.1, lambda: manager.publish(
        Status(id='novic_node', instance_id='fake-manager', active=True, heartbeat_timeout=4.0, heartbeat_period=0.1)))
    diag = ros.subscribe(DiagnosticArray, '/diagnostics', 50)
    held_out = ros.subscribe(Classification, '/held/labels')
    faulty_out = ros.subscribe(Classification, '/faulty/labels')
    streams = [Frames(ros, '/held/image'), Frames(ros, '/faulty/image')]
    try:
        wait_log(held, 'bond novic_node formed with the lifecycle manager')
        assert held_out.wait_for(lambda ms: len(ms) >= 5, 60), held.log()[-3000:]
        code, took = signal_and_time(held, signal.SIGINT)
        assert_clean(held, code, took, 'SIGINT with a manager holding the bond, mid-frame')
        # A clean end of the bond, which the manager takes for a shutdown, not a crash.
        assert heard.wait_for(lambda ms: any(m.instance_id != 'fake-manager' and not m.active for m in ms), 5)
        print(f"bond held, frames flowing: exit {code} in {took:.2f} s after {len(held_out)} labels, active false sent")

        wait_log(faulty, 'NOVIC_FAULT is set')
        assert diag.wait_for(
            lambda ms: any(s.level == DiagnosticStatus.ERROR for s, _ in ours(diag, '/faulty')), 120
        ), faulty.log()[-4000:]
        error, seen = next((s, t) for s, t in ours(diag, '/faulty') if s.level == DiagnosticStatus.ERROR)
        assert 'inference worker died (InjectedFault' in error.message, error.message
        died = faulty_out.times[2]          # the thread dies taking its 4th batch, right after the 3rd label
        print(f"worker death: /diagnostics ERROR {seen - died:.2f} s after the last label before it: {error.message}")
        assert seen - died < 5.0
        count = len(faulty_out)
        assert faulty_out.wait_for(lambda ms: len(ms) >= count + 3, 10), faulty.log()[-3000:]   # restarted
        assert faulty.log().count('Traceback') == 1 and 'InjectedFault' in faulty.log()     # the cause, once

        # rate_hz: a worker asleep for 100 s wakes as soon as the limit is lifted.
        client = AsyncParameterClient(ros.node, '/faulty/novic_node')
        assert client.wait_for_services(timeout_sec=30)
        assert wait_future(client.set_parameters([Parameter('rate_hz', value=0.01)])).results[0].successful
        time.sleep(1.5)
        count = len(faulty_out)
        time.sleep(1.0)
        assert len(faulty_out) <= count + 1                    # asleep: at most one label in 1 s
        count = len(faulty_out)
        lifted = time.monotonic()
        assert wait_future(client.set_parameters([Parameter('rate_hz', value=0.0)])).results[0].successful
        assert faulty_out.wait_for(lambda ms: len(ms) >= count + 2, 10)
        woke = faulty_out.times[count] - lifted
        print(f"rate_hz 0.01 -> 0: labels again {woke:.2f} s after the change was sent")
        assert woke < 1.0

        labels = [f'thing number {i}' for i in range(3000)]         # seconds of text embedding
        client.set_parameters_atomically([Parameter('mode', value='prompted'), Parameter('labels', value=labels)])
        time.sleep(0.5)
        code, took = signal_and_time(faulty, signal.SIGTERM)
        log = faulty.log()
        assert code == 0 and took < EXIT_S, (code, took, log[-3000:])
        assert log.count('Traceback') == 1, log[-4000:]     # only the injected death's
        print(f"mid-change: exit {code} in {took:.2f} s")
    finally:
        ros.node.destroy_timer(beater)
        for s in streams:
            s.stop()
        held.stop()
        faulty.stop()


def wait_future(fut, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while not fut.done():
        assert time.monotonic() < end, 'no answer'
        time.sleep(0.02)
    return fut.result()
