"""A camera as robots have one, for tests and benchmarks: its own process, default middleware
settings (no Fast DDS profile unless asked for), and the QoS camera drivers use (the ROS default
QoS, which is reliable, or the sensor-data profile, which is best effort).

It plays a list of streams one after another. Each stream gets its own publisher, which waits for a
subscriber that can take its frames, publishes `count` frames at `rate_hz` (each with a unique
frame_id, `<tag>-<index>`, and its publish time as the header stamp, so a listener can match labels
to frames and measure latency), waits until reliable subscribers acknowledged every frame, and is
destroyed, so the next stream's publisher is the only one on the topic. One JSON line per stream goes
to stdout.

    python -m novic_ros.ros.stock_camera --topic /novic/image --streams '[{"tag": "vga", "width": 640, ...}]'

`start_stock_camera` starts it the way a robot's camera driver is started: with the caller's
environment minus any Fast DDS profile (or with our profile, when asked). rclpy is imported
only by the functions that run in the camera process: the launcher, Stream and smooth_pattern serve
processes that need no ROS set-up (the rule of node_process too).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..paths import use_large_frames_profile, without_fastdds_profile
from ..frames.conversion import encode_compressed, rgb_to_raw

RELIABILITIES = ('reliable', 'best_effort')


@dataclass(frozen=True)
class Stream:
    tag: str                        # frame_ids are '<tag>-<index>'
    width: int = 640
    height: int = 480
    encoding: str = 'rgb8'          # raw encoding, or the compressed format (jpeg, png)
    rate_hz: float = 10.0           # 0 = as fast as the publisher can
    count: int = 100
    transport: str = 'raw'  # raw: sensor_msgs/Image on the topic; compressed: CompressedImage on <topic>/compressed
    reliability: str = 'reliable'   # reliable: ROS default QoS; best_effort: the sensor-data QoS

    def __post_init__(self):
        if self.reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {RELIABILITIES}, got {self.reliability!r}")
        if self.transport not in ('raw', 'compressed'):
            raise ValueError(f"transport must be raw or compressed, got {self.transport!r}")


def smooth_pattern(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture (compresses like a camera frame, unlike noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    out = np.empty((height, width, 3), np.uint8)
    for c in range(3):
        out[..., c] = (127.5 + 127.5 * np.sin(x / (37 + 11 * c) + y / (53 - 7 * c) + phase[c])).astype(np.uint8)
    return out


def _message(stream: Stream):
    from sensor_msgs.msg import CompressedImage, Image
    rgb = smooth_pattern(stream.height, stream.width)
    if stream.transport == 'compressed':
        return CompressedImage(format=stream.encoding, data=encode_compressed(rgb, stream.encoding))
    data, step = rgb_to_raw(rgb, stream.encoding)
    return Image(height=stream.height, width=stream.width, encoding=stream.encoding, step=step, data=data)


def _qos(reliability: str):
    from rclpy.qos import qos_profile_sensor_data
    # The default QoS of create_publisher(..., 10): reliable, volatile, keep last 10.
    return 10 if reliability == 'reliable' else qos_profile_sensor_data


def _wait_for_subscriber(node, pub, topic: str, reliability: str, timeout: float) -> bool:
    """A reliable publisher waits for a reliable subscriber (a node on `qos: auto` switches to reliable
    once it sees this publisher); a best-effort one (or reliability 'any') for any subscriber."""
    import rclpy
    from rclpy.qos import ReliabilityPolicy
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
        if pub.get_subscription_count() == 0:
            continue
        if reliability != 'reliable' or any(s.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                                               for s in node.get_subscriptions_info_by_topic(topic)):
            return True
    return False


def play(node, topic: str, stream: Stream, wait_s: float = 60.0, settle_s: float = 0.5,
         any_subscriber: bool = False) -> dict:
    import rclpy
    from rclpy.duration import Duration
    from sensor_msgs.msg import CompressedImage, Image
    msg_type = CompressedImage if stream.transport == 'compressed' else Image
    if stream.transport == 'compressed':
        topic = topic.rstrip('/') + '/compressed'
    pub = node.create_publisher(msg_type, topic, _qos(stream.reliability))
    try:
        wanted = 'any' if any_subscriber else stream.reliability
        if not _wait_for_subscriber(node, pub, topic, wanted, wait_s):
            return {'tag': stream.tag, 'error': f"no {wanted} subscriber on {topic} after {wait_s} s"}
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        msg = _message(stream)
        t0 = last = time.monotonic()
        gaps = []
        for i in range(stream.count):
            if stream.rate_hz > 0:
                # On schedule, but never two frames closer than half a period: a camera late by a
                # stall of this process sends its next frame, not a burst of the ones it owes.
                delay = max(t0 + i / stream.rate_hz, last + 0.5 / stream.rate_hz) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            msg.header.frame_id = f"{stream.tag}-{i}"
            msg.header.stamp = node.get_clock().now().to_msg()
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            pub.publish(msg)
        duration = time.monotonic() - t0
        if stream.reliability == 'reliable':
            pub.wait_for_all_acked(Duration(seconds=5))
        return {'tag': stream.tag, 'sent': stream.count, 'seconds': round(duration, 3), 'topic': topic,
                'gap_ms': [round(min(gaps[1:] or [0]) * 1e3, 1), round(max(gaps[1:] or [0]) * 1e3, 1)]}
    finally:
        node.destroy_publisher(pub)


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='python -m novic_ros.ros.stock_camera', description=__doc__.split('\n\n')[0])
    p.add_argument('--topic', required=True, help='raw topic; compressed streams publish on <topic>/compressed')
    p.add_argument('--streams', required=True, help='JSON list of Stream fields')
    p.add_argument('--wait', type=float, default=60.0, help='seconds to wait for a subscriber per stream')
    p.add_argument('--any-subscriber', action='store_true',
                   help='start on any matched subscriber, also a best-effort one for a reliable stream')
    args = p.parse_args(argv)
    streams = [Stream(**s) for s in json.loads(args.streams)]
    import rclpy
    rclpy.init(args=[])
    node = rclpy.create_node(f'stock_camera_{os.getpid()}')
    try:
        for s in streams:
            print(json.dumps(play(node, args.topic, s, args.wait, any_subscriber=args.any_subscriber)), flush=True)
            # Let the graph see this publisher go before the next one appears.
            time.sleep(0.3)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def camera_env(profile: bool = False, base: dict | None = None) -> dict:
    """The environment a camera driver has: the caller's, without a Fast DDS profile, or with ours."""
    env = dict(os.environ if base is None else base)
    without_fastdds_profile(env)
    if profile:
        use_large_frames_profile(env)
    return env


def start_stock_camera(topic: str, streams: Sequence[Stream], *, profile: bool = False, wait_s: float = 60.0,
                       any_subscriber: bool = False) -> subprocess.Popen:
    """Start the camera process; read its JSON lines from .stdout (text)."""
    spec = json.dumps([dataclasses.asdict(s) for s in streams])
    cmd = [sys.executable, '-m', __name__, '--topic', topic, '--streams', spec, '--wait', str(wait_s)]
    return subprocess.Popen(cmd + ['--any-subscriber'] * any_subscriber, stdout=subprocess.PIPE, text=True,
                            env=camera_env(profile))


def results(proc: subprocess.Popen, timeout: float) -> list[dict]:
    """The per-stream summaries of a finished camera process."""
    out, _ = proc.communicate(timeout=timeout)
    return [json.loads(line) for line in out.splitlines() if line.startswith('{')]


if __name__ == '__main__':
    sys.exit(_main())
