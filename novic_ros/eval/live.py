"""novic-eval live: play a bag into the running novic_node at the recorded timing (times a speed
factor), record what it publishes, and measure per-frame end-to-end latency, output rate and
frames dropped or never answered. Messages are published as the bag's CDR bytes, unchanged."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .bagio import BagFrame, read_frames
from .results import FrameResult, LiveStats

log = logging.getLogger(__name__)


def _qos(kind: str, depth: int = 10):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    if kind == 'sensor_data':
        return qos_profile_sensor_data
    if kind == 'reliable':
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    raise ValueError(f"qos must be reliable or sensor_data, got {kind!r}")


def _msg_class(msgtype: str):
    from sensor_msgs.msg import CompressedImage, Image
    return CompressedImage if msgtype.endswith('CompressedImage') else Image


def play_and_record(frames: list[BagFrame], *, labels_topic: str = '/novic/labels', speed: float = 1.0,
                    qos: str = 'reliable', drain_s: float = 5.0, match_timeout_s: float = 120.0,
                    node_alive=lambda: True, progress: bool = True) -> tuple[list[FrameResult], LiveStats]:
    """Publish `frames` at their recorded timing and collect the labels the node publishes.
    Requires rclpy to be initialised by the caller."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from vision_msgs.msg import Classification
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    node = rclpy.create_node('novic_eval_live')
    received: dict[tuple[str, int], tuple[float, object]] = {}
    lock = threading.Lock()

    def on_labels(msg):
        now = time.perf_counter()
        key = (msg.header.frame_id, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        with lock:
            received.setdefault(key, (now, msg))
    node.create_subscription(Classification, labels_topic, on_labels, 50)
    pubs = {t: node.create_publisher(_msg_class(f.msgtype), t, _qos(qos))
            for t, f in {f.topic: f for f in frames}.items()}
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    sent_at: dict[int, float] = {}
    try:
        deadline = time.monotonic() + match_timeout_s
        while any(p.get_subscription_count() == 0 for p in pubs.values()):
            if not node_alive():
                raise RuntimeError("novic_node exited before subscribing")
            if time.monotonic() > deadline:
                missing = [t for t, p in pubs.items() if p.get_subscription_count() == 0]
                raise RuntimeError(f"no subscriber on {', '.join(missing)} after {match_timeout_s:.0f} s: "
                                   "is novic_node running with these topics (image_topics, namespace)?")
            time.sleep(0.05)
        time.sleep(0.5)      # let discovery settle in both directions
        t0_bag, t0 = frames[0].timestamp_ns, time.perf_counter()
        for i, f in enumerate(tqdm(frames, desc='live', unit='frame', disable=not progress)):
            due = t0 + (f.timestamp_ns - t0_bag) / 1e9 / speed
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent_at[i] = time.perf_counter()
            pubs[f.topic].publish(f.rawdata)           # serialized CDR, as recorded
        end = time.perf_counter() + drain_s
        while time.perf_counter() < end:
            with lock:
                if all(f.key in received for f in frames):
                    break
            time.sleep(0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
    results, latencies, recv_times = [], [], []
    for i, f in enumerate(frames):
        got = received.get(f.key)
        if got is None:
            results.append(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns, answered=False))
            continue
        t, msg = got
        latency = (t - sent_at[i]) * 1e3
        latencies.append(latency)
        recv_times.append(t)
        results.append(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns,
                                   tuple((r.class_id, float(r.score)) for r in msg.results), latency_ms=latency))
    stats = LiveStats(sent=len(frames), answered=len(latencies))
    if len(sent_at) > 1:
        span = max(sent_at.values()) - min(sent_at.values())
        stats.input_rate_hz = (len(sent_at) - 1) / span if span > 0 else 0.0
    if len(recv_times) > 1:
        span = max(recv_times) - min(recv_times)
        stats.output_rate_hz = (len(recv_times) - 1) / span if span > 0 else 0.0
    if latencies:
        stats.latency_p50_ms, stats.latency_p95_ms = (float(np.percentile(latencies, q)) for q in (50, 95))
        stats.latency_max_ms = float(max(latencies))
    stats.extra = {'speed': speed, 'qos': qos, 'labels_topic': labels_topic,
                   'unmatched_outputs': len(set(received) - {f.key for f in frames})}
    return results, stats


def run_live(bag: str | Path, *, topics: list[str] | None = None, **kw) -> tuple[list[FrameResult], LiveStats, list[str]]:
    frames, warnings = read_frames(bag, topics)
    if not frames:
        raise ValueError(f"bag {bag} has no readable image messages")
    keys = [f.key for f in frames]
    if len(set(keys)) < len(keys):
        warnings.append("some frames share frame_id and stamp: their labels cannot be told apart, "
                        "latency is attributed to the first of each")
    results, stats = play_and_record(frames, **kw)
    return results, stats, warnings
