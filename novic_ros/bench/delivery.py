"""make bench, section delivery: how many frames of a stock camera novic_node labels, and how late.

A camera process (ros/stock_camera.py: default middleware settings, the QoS camera drivers use) plays
640x480 and 1280x720 rgb8 and 640x480 JPEG streams at 10 and 30 Hz into novic_node started with the
package's params file (qos: auto, the toy model, backend auto). Each case runs without and with the
Fast DDS profile on the camera; a last run shows the node's former default (qos: sensor_data) beside.
Latency is from the frame's header stamp (set when published) to its label arriving here.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass

from ..paths import without_fastdds_profile
from ..ros.node_process import NodeProcess
from ..ros.stock_camera import Stream, results, start_stock_camera
from .models import bench_dir
from .sections import _table

CAMERA = '/bench_camera/image_raw'


@dataclass(frozen=True)
class Case:
    stream: Stream
    profile: bool


class LabelListener:
    """Receipt times of labels by frame_id, and the node's frames_lost counter, from a background executor."""

    def __init__(self, namespace: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from vision_msgs.msg import Classification
        self.latency_ms: dict[str, float] = {}
        self.lost = 0
        self.node = rclpy.create_node('novic_bench_delivery')
        self.node.create_subscription(Classification, f'{namespace}/labels', self._on_label, 500)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', lambda m: self._on_diag(namespace, m), 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_label(self, msg) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.latency_ms.setdefault(msg.header.frame_id, (time.time() - stamp) * 1e3)

    def _on_diag(self, namespace: str, msg) -> None:
        for s in msg.status:
            if s.name.startswith(namespace + '/'):
                self.lost = int(next((kv.value for kv in s.values if kv.key == 'frames_lost'), 0))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _cases(frames: int) -> list[Case]:
    out = []
    for profile in (False, True):
        for w, h in ((640, 480), (1280, 720)):
            for rate in (10, 30):
                for rel in ('reliable', 'best_effort'):
                    tag = f"{w}x{h}-{rate}hz-{rel}-{'profile' if profile else 'stock'}"
                    out.append(Case(Stream(tag, w, h, 'rgb8', rate, frames, reliability=rel), profile))
    return out


def _run(
    namespace: str, node_params: dict, cases: list[Case], log_name: str, any_subscriber: bool = False
) -> list[list]:
    rows = []
    node = NodeProcess(node_params, namespace=namespace, remaps=[f'image:={CAMERA}'],
                       log_path=bench_dir() / log_name)
    listener = LabelListener(namespace)
    try:
        for c in cases:       # one camera process per case: its publisher is the only one on the topic
            lost_before = listener.lost
            cam = start_stock_camera(CAMERA, [c.stream], profile=c.profile, wait_s=300, any_subscriber=any_subscriber)
            summary = results(cam, timeout=900)[0]
            if 'error' in summary:
                raise RuntimeError(f"{c.stream.tag}: {summary['error']}; node log: {node.log_path}")
            time.sleep(2.0)    # late labels, and one more /diagnostics message
            lat = [v for k, v in listener.latency_ms.items() if k.rsplit('-', 1)[0] == c.stream.tag]
            p50, p95 = (statistics.median(lat), statistics.quantiles(lat, n=20)[18]) if len(lat) >= 2 else ('-', '-')
            rows.append([f"{c.stream.width}x{c.stream.height} {c.stream.encoding}", c.stream.rate_hz,
                         c.stream.reliability.replace('_', ' '), 'yes' if c.profile else 'no',
                         node_params.get('qos', 'auto'), summary['sent'],
                         f"{100 * len(lat) / summary['sent']:.0f}%", listener.lost - lost_before, p50, p95])
    finally:
        listener.close()
        node.stop()
    return rows


def delivery(frames: int = 60) -> str:
    """The delivery table (markdown)."""
    # rclpy only here (and in the node section): the other sections run without ROS.
    import rclpy
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    without_fastdds_profile()      # the node as a robot runs it; cameras choose
    rclpy.init(args=[])
    try:
        rows = _run('/bench_raw', {}, _cases(frames), 'delivery-raw.log')
        jpeg = [Case(Stream(f'jpeg-30hz-{rel}', 640, 480, 'jpeg', 30, frames, transport='compressed',
                            reliability=rel), False) for rel in ('reliable', 'best_effort')]
        rows += _run('/bench_jpeg', {'transport': 'compressed'}, jpeg, 'delivery-jpeg.log')
        former = [Case(Stream(f'former-{rel}', 640, 480, 'rgb8', 10, frames, reliability=rel), False)
                  for rel in ('reliable', 'best_effort')]
        rows += _run('/bench_former', {'qos': 'sensor_data'}, former, 'delivery-former.log', any_subscriber=True)
    finally:
        rclpy.try_shutdown()
    return _table(['frames', 'Hz', 'camera QoS', 'profile on camera', 'node qos', 'sent', 'labelled',
                   'lost (node count)', 'latency p50 ms', 'latency p95 ms'], rows)
