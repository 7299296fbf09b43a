"""The /novic/labels node: camera frames in, open-vocabulary labels out.

Thin on purpose: subscription callbacks only hand messages to LatestFrames; one worker
thread converts, classifies (novic_ros.core) and publishes vision_msgs/Classification with
the input header. Bad frames are counted, warned about (throttled) and skipped.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Classification, ObjectHypothesis

from ..core.errors import NovicError
from ..params import DEFAULT_NAMESPACE, NODE_NAME, NodeParams
from ..pipeline import build_classifier, classify_in_batches
from .image_conversion import compressed_to_rgb, raw_to_rgb
from .latest_frames import LatestFrames
from .node_stats import NodeStats
from .overlay import draw_labels
from .ros_params import declare_all

WARN_THROTTLE_S = 5.0


def frame_from_msg(msg) -> np.ndarray:
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg.format, msg.data)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


class NovicNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, namespace=kwargs.pop('namespace', DEFAULT_NAMESPACE), **kwargs)
        self.params = NodeParams.from_mapping(declare_all(self))      # ValueError names the bad parameter
        self.classifier = build_classifier(self.params.model)           # ModelLoadError says what was looked for where
        self.get_logger().info(f"loaded {self.classifier.describe()}")
        if self.params.warmup:
            self.classifier.classify(np.zeros((64, 64, 3), np.uint8))
        self.frames = LatestFrames()
        self.stats = NodeStats()
        self._last_warning: dict[str, float] = {}
        self._stop = threading.Event()
        self.pub = self.create_publisher(Classification, self.params.labels_topic, 10)
        self.overlay_pub = self.create_publisher(Image, '~/image_labeled', 2) if self.params.publish_overlay else None
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.subs = [self._subscribe(t) for t in self.params.image_topics]
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(1.0, self._publish_diagnostics)
        self.worker = threading.Thread(target=self._work, name='novic-inference', daemon=True)
        self.worker.start()

    # --- input ---

    def _qos(self) -> QoSProfile:
        if self.params.qos == 'sensor_data':
            q = qos_profile_sensor_data
            return QoSProfile(depth=self.params.qos_depth, reliability=q.reliability, history=q.history,
                              durability=q.durability)
        return QoSProfile(depth=self.params.qos_depth, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)

    def _subscribe(self, topic: str):
        if self.params.transport == 'compressed':
            # image_transport convention: the compressed stream of `base` is `base/compressed`. Resolve
            # (and remap) the base first, so remapping `image` moves both, as with image_transport.
            base = self.resolve_topic_name(topic)
            topic = base if base.endswith('/compressed') else base.rstrip('/') + '/compressed'
            msg_type = CompressedImage
        else:
            msg_type = Image
        self.get_logger().info(f"subscribing to {self.resolve_topic_name(topic)} ({msg_type.__name__}, {self.params.qos})")
        return self.create_subscription(msg_type, topic, lambda msg, t=topic: self._on_frame(t, msg), self._qos())

    def _on_frame(self, camera: str, msg) -> None:
        stamp = msg.header.stamp
        age = None
        if stamp.sec or stamp.nanosec:   # unstamped frames say nothing about their age
            age = self.get_clock().now().nanoseconds * 1e-9 - (stamp.sec + stamp.nanosec * 1e-9)
        self.stats.arrived(age)
        self.frames.put(camera, msg)

    # --- inference worker ---

    def _work(self) -> None:
        next_start = 0.0
        while not self._stop.is_set():
            rate = self.params.rate_hz
            if rate > 0:
                wait = next_start - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
            items = self.frames.take(self.params.model.batch_size, timeout=0.5)
            if not items:
                continue
            next_start = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
            try:
                self._process(items)
            except Exception as e:  # keep the node alive whatever one batch does
                self.stats.error()
                self.get_logger().error(f"inference failed, batch skipped: {type(e).__name__}: {e}",
                                        throttle_duration_sec=WARN_THROTTLE_S)

    def _process(self, items) -> None:
        classifier = self.classifier          # one classifier (one set of settings) for the whole batch
        for c in classify_in_batches(classifier, items, lambda item: frame_from_msg(item.msg), len(items)):
            if c.error is not None:
                self._reject(c.item.camera, c.error)
                continue
            self.stats.processed_batch(1)
            out = Classification(header=c.item.msg.header)
            out.results = [ObjectHypothesis(class_id=l.text, score=float(l.score)) for l in c.labels.labels]
            self.pub.publish(out)
            self.stats.published_one(time.monotonic() - c.item.received, c.labels.per_frame_ms)
            if self.overlay_pub is not None:
                self._publish_overlay(c.item.msg.header, c.frame, c.labels)

    def _reject(self, camera: str, error: Exception) -> None:
        reason = getattr(error, 'reason', 'invalid frame')
        self.stats.rejected_one(reason)
        # Throttled per reason, so a flood of one problem cannot hide another.
        now = time.monotonic()
        if now - self._last_warning.get(reason, -1e9) >= WARN_THROTTLE_S:
            self._last_warning[reason] = now
            self.get_logger().warning(f"frame from {camera} rejected ({reason}): {error}")

    def _publish_overlay(self, header, frame, res) -> None:
        drawn = draw_labels(frame, [(l.text, l.score) for l in res.labels])
        h, w = drawn.shape[:2]
        self.overlay_pub.publish(Image(header=header, height=h, width=w, encoding='rgb8', is_bigendian=0,
                                       step=w * 3, data=drawn.tobytes()))

    # --- parameters and diagnostics ---

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Validate a change like a start would, build what it needs, then swap it in whole: the worker
        takes `self.classifier` once per batch, so every message is computed with one set of settings.
        Parameters that need a restart are declared read-only, and rclpy refuses them before this."""
        updates = {p.name: p.value for p in changes}
        try:
            new = self.params.updated(**updates)
            options = new.model.to_options()
            classifier = self.classifier if options == self.classifier.options else self.classifier.with_options(options)
        except (ValueError, NovicError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.params, self.classifier = new, classifier
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        s = self.stats.snapshot(self.frames.received, self.frames.dropped)
        level = DiagnosticStatus.OK
        message = 'classifying'
        if s.received == 0:
            level, message = DiagnosticStatus.WARN, 'no frames received yet'
        elif s.rejected or s.errors:
            level, message = DiagnosticStatus.WARN, f"{s.rejected} frames rejected, {s.errors} inference errors"
        backend = self.classifier.backend
        values = {
            'input_rate_hz': f"{s.input_rate_hz:.2f}", 'output_rate_hz': f"{s.output_rate_hz:.2f}",
            'latency_p50_ms': f"{s.latency_p50_ms:.1f}", 'latency_p95_ms': f"{s.latency_p95_ms:.1f}",
            'inference_p50_ms': f"{s.inference_p50_ms:.1f}", 'frame_age_p50_ms': f"{s.frame_age_p50_ms:.1f}",
            'frames_received': str(s.received),
            'frames_processed': str(s.processed), 'frames_published': str(s.published),
            'frames_dropped': str(s.dropped), 'frames_rejected': str(s.rejected),
            'inference_errors': str(s.errors), 'backend': backend.name, 'backend_detail': backend.describe(),
            'model': self.params.model.model, 'mode': self.params.model.mode, 'device': str(backend.device),
            **{f"rejected: {k}": str(v) for k, v in s.rejected_by_reason.items()},
        }
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: open-vocabulary classifier",
                                  message=message, hardware_id=str(backend.device),
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self.diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))

    def destroy_node(self):
        self._stop.set()
        self.frames.close()
        if self.worker.is_alive():
            self.worker.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        node = NovicNode()
    except (NovicError, ValueError, FileNotFoundError) as e:
        logger.fatal(f"cannot start: {e}")
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
