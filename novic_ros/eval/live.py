"""novic-eval live: play a bag into the running novic_node at the recorded timing (times a speed
factor), record what it publishes, and measure per-frame end-to-end latency, output rate and
frames dropped or never answered. Messages are published as the bag's CDR bytes, unchanged
(converted to CDR first where the bag holds ROS 1 or compressed messages)."""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from tqdm import tqdm
from vision_msgs.msg import Classification

from ..params import DEFAULT_LABELS_TOPIC
from .bagio import COMPRESSED, COMPRESSED_VIDEO, FFMPEG_PACKET, Bag, BagFrame
from .run_results import FrameResult, LiveStats

log = logging.getLogger(__name__)


def _qos(kind: str, depth: int = 10):
    if kind == 'sensor_data':
        return qos_profile_sensor_data
    if kind == 'reliable':
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    raise ValueError(f"qos must be reliable or sensor_data, got {kind!r}")


@dataclass(frozen=True)
class _Sent:
    """A published frame, without its bytes (a long bag must not stay in memory)."""
    result: FrameResult
    key: tuple[str, int]
    sent_at: float


def play_and_record(frames: Iterable[BagFrame], topics: dict[str, str], *, labels_topic: str = DEFAULT_LABELS_TOPIC,
                    speed: float = 1.0, qos: str = 'reliable', drain_s: float = 5.0, match_timeout_s: float = 120.0,
                    node_alive: Callable[[], bool] = lambda: True, progress: bool = True,
                    total: int | None = None) -> tuple[list[FrameResult], LiveStats]:
    """Publish `frames` (of `topics`, topic -> message type) at their recorded timing and collect the
    labels the node publishes. Requires rclpy to be initialised by the caller."""
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
    pubs = {t: node.create_publisher(_message_type(m), t, _qos(qos)) for t, m in topics.items()}
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    sent: list[_Sent] = []
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
        t0_bag = t0 = None
        for f in tqdm(frames, desc='live', unit='frame', total=total, disable=not progress):
            if t0 is None:
                t0_bag, t0 = f.timestamp_ns, time.perf_counter()
            wait = t0 + (f.timestamp_ns - t0_bag) / 1e9 / speed - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent_at = time.perf_counter()
            pubs[f.topic].publish(f.rawdata)           # serialized CDR, as recorded
            sent.append(_Sent(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns), f.key, sent_at))
        end = time.perf_counter() + drain_s
        while time.perf_counter() < end:
            with lock:
                if all(s.key in received for s in sent):
                    break
            time.sleep(0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
    return _results(sent, received, speed, qos, labels_topic)


def _results(sent: list[_Sent], received: dict, speed: float, qos: str,
             labels_topic: str) -> tuple[list[FrameResult], LiveStats]:
    results, latencies, recv_times = [], [], []
    for s in sent:
        got = received.get(s.key)
        r = s.result
        if got is None:
            results.append(FrameResult(r.topic, r.index, r.stamp_ns, r.frame_id, r.timestamp_ns, answered=False))
            continue
        t, msg = got
        latency = (t - s.sent_at) * 1e3
        latencies.append(latency)
        recv_times.append(t)
        results.append(FrameResult(r.topic, r.index, r.stamp_ns, r.frame_id, r.timestamp_ns,
                                   tuple((h.class_id, float(h.score)) for h in msg.results), latency_ms=latency))
    stats = LiveStats(sent=len(sent), answered=len(latencies))
    if len(sent) > 1:
        span = sent[-1].sent_at - sent[0].sent_at
        stats.input_rate_hz = (len(sent) - 1) / span if span > 0 else 0.0
    if len(recv_times) > 1:
        span = max(recv_times) - min(recv_times)
        stats.output_rate_hz = (len(recv_times) - 1) / span if span > 0 else 0.0
    if latencies:
        stats.latency_p50_ms, stats.latency_p95_ms = (float(np.percentile(latencies, q)) for q in (50, 95))
        stats.latency_max_ms = float(max(latencies))
    stats.extra = {'speed': speed, 'qos': qos, 'labels_topic': labels_topic,
                   'unmatched_outputs': len(set(received) - {s.key for s in sent})}
    return results, stats


def _message_type(msgtype: str):
    if msgtype in (COMPRESSED_VIDEO, FFMPEG_PACKET):
        from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
        from foxglove_msgs.msg import CompressedVideo
        return CompressedVideo if msgtype == COMPRESSED_VIDEO else FFMPEGPacket
    return CompressedImage if msgtype == COMPRESSED else Image


# The transport a started node needs for a bag's topics, and the image_transport suffix it adds itself.
NODE_TRANSPORTS = {COMPRESSED: ('compressed', '/compressed'), COMPRESSED_VIDEO: ('foxglove', '/foxglove'),
                   FFMPEG_PACKET: ('ffmpeg', '/ffmpeg')}


def node_inputs(image_topics: dict[str, str]) -> tuple[list[str], str]:
    """(image_topics, transport) for a node started to play these bag topics (topic -> message type):
    raw topics as they are; compressed and video topics by their base name (the node appends the
    suffix). ValueError for a bag that mixes kinds (one node subscribes one transport)."""
    kinds = {NODE_TRANSPORTS.get(m, ('raw', ''))[0] for m in image_topics.values()}
    if len(kinds) > 1:
        raise ValueError(f"the bag's camera topics need different transports ({', '.join(sorted(kinds))}): play one "
                         "kind at a time with --topics")
    transport = kinds.pop()
    suffix = {k: s for k, s in NODE_TRANSPORTS.values()}.get(transport, '')
    topics = [t[:-len(suffix)] if suffix and t.endswith(suffix) else t for t in sorted(image_topics)]
    return topics, transport


def run_live(bag: Bag, *, start_node: Callable[[list[str]], object] | None = None, **play) -> tuple[
        list[FrameResult], LiveStats, list[str]]:
    """Play `bag` into novic_node and collect its labels: (results, stats, warnings). The first frame is
    read before anything starts, so a bag with no readable frame fails at once (BagError).
    `start_node(topics)` starts the node for the run (a NodeProcess: alive(), stop()) for the bag's
    camera topics (topic -> message type, see node_inputs); without it the node must already run. `play`: the
    keyword arguments of play_and_record."""
    frames = bag.frames()
    first = next(frames)
    node = start_node(bag.image_topics) if start_node else None
    rclpy.init(args=[])     # not sys.argv: the caller's flags are not ROS arguments
    try:
        results, stats = play_and_record(itertools.chain([first], frames), bag.image_topics,
                                         node_alive=node.alive if node else (lambda: True),
                                         total=bag.expected_frames, **play)
    finally:
        rclpy.try_shutdown()
        if node is not None:
            node.stop()
    warnings = list(bag.warnings)
    keys = [(r.frame_id, r.stamp_ns) for r in results]
    if len(set(keys)) < len(keys):
        warnings.append(
            f"{len(keys) - len(set(keys))} frames share frame_id and stamp with an earlier one: their labels "
            "cannot be told apart, and latency is attributed to the first of each"
        )
    return results, stats, warnings
