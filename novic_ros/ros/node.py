"""The /novic/labels node: camera frames in, open-vocabulary labels out.

Thin on purpose: subscription callbacks only hand messages to LatestFrames; one worker
thread converts, classifies (novic_ros.core) and publishes vision_msgs/Classification with
the input header. Bad frames are counted, warned about (throttled) and skipped. The input
side watches each camera topic (input_health): it subscribes with the reliability its
publishers offer (`qos: auto`), counts frames the middleware lost, and says why and what to
do when publishers are there but frames are not.

A lifecycle node (rclpy.lifecycle): configure loads and warms up the model and creates the
(lifecycle) publishers, activate subscribes and starts the worker, deactivate unsubscribes (frames
are not delivered, so nothing queues) and stops it, cleanup frees the model, shutdown works from
any state. With `autostart` (default) main() drives configure and activate itself.

Threads: a multi-threaded executor. The lifecycle and parameter services share the node's default
(mutually exclusive) callback group, so transitions and parameter changes happen one at a time;
frame callbacks and diagnostics have groups of their own, so they go on while a parameter change
embeds a new label list. Following the publishers (qos: auto) runs in the default group, so a
resubscription never meets a transition; the input state it shares with frame and event
callbacks is guarded by one lock.
"""
from __future__ import annotations

import logging
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Classification, Detection2DArray, ObjectHypothesis, VisionInfo

from ..core.errors import NovicError
from ..core.variants import get_variant
from ..params import DEFAULT_MAX_PIXELS, DEFAULT_NAMESPACE, NODE_NAME, NodeParams
from ..pipeline import build_classifier, build_object_finder, classify_in_batches
from . import vision_info
from .bond import Bond
from .detections import detections_message
from ..frames.conversion import compressed_to_rgb, raw_to_rgb
from .input_health import BEST_EFFORT, RELIABLE, TopicHealth, describe_publishers
from .label_outputs import LabelOutputs
from .latest_frames import LatestFrames
from .memory import release_freed_memory, rss_mb
from .node_stats import NodeStats
from ..frames.overlay import draw_labels
from .param_declaration import declare_all

WARN_THROTTLE_S = 5.0
LOSS_WARN_THROTTLE_S = 30.0     # frames lost in transport: one warning per topic per 30 s
INPUT_CHECK_S = 0.25            # publishers re-read (qos: auto follows them) and silence checked this often
_RELIABILITY = {RELIABLE: ReliabilityPolicy.RELIABLE, BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT}
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
# VisionInfo as vision_msgs intends it: the last one stays available to late subscribers.
VISION_INFO_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)


def frame_from_msg(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg.format, msg.data, max_pixels)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian, max_pixels)


class RosLogHandler(logging.Handler):
    """Python logging of novic_ros (model loading, image decoding) into the node's ROS log."""

    def __init__(self, logger):
        super().__init__()
        self.ros_logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        else:
            self.ros_logger.info(text)


class NovicNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, namespace=kwargs.pop('namespace', DEFAULT_NAMESPACE), **kwargs)
        self.params = NodeParams.from_mapping(declare_all(self))      # ValueError names the bad parameter
        self.classifier = None                  # set by configure, dropped by cleanup
        self.method = ''                        # VisionInfo.method of the loaded model
        self.vocabulary = vision_info.VocabularyVersion()
        self.frames = LatestFrames()
        self.stats = NodeStats()
        self._last_warning: dict[str, float] = {}
        self._stop = threading.Event()
        self.worker: threading.Thread | None = None
        self.state = 'unconfigured'
        self.subs: dict[str, object] = {}       # camera topic -> its subscription, while active
        self.health: dict[str, TopicHealth] = {}
        self._inputs_lock = threading.Lock()
        self.pub = self.overlay_pub = self.info_pub = None
        self.label_outputs: LabelOutputs | None = None     # labels_stable, categories (configure to cleanup)
        self.overlays_published = 0
        self.objects_pub = self.finder = None      # objects parameter: the multi-object output
        self.objects_published = 0
        self.bond: Bond | None = None
        # Frame callbacks never wait for a transition where the node runs in a multi-threaded executor
        # (a composed container); main() spins it single-threaded, see there.
        self._frames_group = ReentrantCallbackGroup()
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(INPUT_CHECK_S, self._watch_inputs)     # default group: never during a transition

    # --- lifecycle ---

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            # The decoder is loaded in prompted mode too when the variant has one: a live switch to
            # generate or hybrid then needs no reconfigure.
            classifier = build_classifier(self.params.model, decoder_for_all_modes=True)
            if self.params.warmup:
                classifier.classify(np.zeros((64, 64, 3), np.uint8))
            variant = get_variant(self.params.model.model, self.params.model.models_file or None)
            label_outputs = LabelOutputs(self, self.params, lifecycle=True)    # WordNet; a bad category fails here
            finder = self._object_finder(classifier, self.params)      # bad object_* settings fail configure
        except Exception as e:  # noqa: BLE001 -- any load error is a FAILURE with its reason, never a crash
            self.get_logger().error(f"configure failed: {type(e).__name__}: {e}")
            return FAILURE
        self.classifier, self.label_outputs = classifier, label_outputs
        self.method = vision_info.method(variant, classifier.vocab is not None, classifier.backend.name)
        self.vocabulary.update(classifier.options)
        self.pub = self.create_lifecycle_publisher(Classification, self.params.labels_topic, 10)
        self.overlay_pub = (self.create_lifecycle_publisher(Image, '~/image_labeled', 2)
                            if self.params.publish_overlay else None)
        self.info_pub = self.create_lifecycle_publisher(VisionInfo, 'vision_info', VISION_INFO_QOS)
        self.finder = finder
        self.objects_pub = (self.create_lifecycle_publisher(Detection2DArray, self.params.objects_topic, 10)
                            if self.params.objects else None)
        self.get_logger().info(f"loaded {classifier.describe()}")
        self._log_label_embeddings(classifier)
        self.state = 'inactive'
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)     # enables the lifecycle publishers before any frame comes
        try:
            self._stop = threading.Event()
            self.worker = threading.Thread(target=self._work, name='novic-inference', daemon=True)
            self.worker.start()
            for topic in self.params.image_topics:
                self._subscribe(topic)
        except Exception as e:  # noqa: BLE001 -- e.g. an image topic name that does not resolve
            self.get_logger().error(f"activate failed: {type(e).__name__}: {e}")
            self._unsubscribe_and_stop()
            super().on_deactivate(state)
            return FAILURE
        self.state = 'active'
        self._publish_vision_info()
        if self.params.bond_heartbeat_period > 0:
            # What nav2's managed nodes do on activation (the manager bonds right after activating us).
            self.bond = Bond(self, self.get_name(), self.params.bond_heartbeat_period,
                             callback_group=MutuallyExclusiveCallbackGroup())
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe_and_stop()
        self.state = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        before = rss_mb()
        self._release_model()
        self.get_logger().info(f"cleaned up: model freed, resident memory {before:.0f} -> {rss_mb():.0f} MB")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe_and_stop()
        self._release_model()
        self.state = 'finalized'
        self.get_logger().info("shut down (finalized); stop the process to exit")
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}; back to unconfigured")
        self._unsubscribe_and_stop()
        self._release_model()
        return SUCCESS

    def _log_label_embeddings(self, classifier) -> None:
        labels = classifier.prompt_labels
        if labels:
            cache = classifier.text_cache
            where = cache.disk.dir if cache.disk is not None else 'memory'
            self.get_logger().info(f"label embeddings: {len(labels)} labels, {cache.computed} computed, "
                                   f"{len(labels) - cache.computed} from the cache ({where})")

    def _unsubscribe_and_stop(self) -> None:
        if self.bond is not None:
            self.bond.close()
            self.bond = None
        with self._inputs_lock:
            subs, self.subs = list(self.subs.values()), {}
        for sub in subs:
            self.destroy_subscription(sub)
        self._stop.set()
        if self.worker is not None and self.worker.is_alive():
            self.worker.join(timeout=30.0)       # the batch in flight finishes (its labels are still valid)
        self.worker = None
        self.frames.take(1 << 30, timeout=0)     # frames that arrived but were not taken are ignored, not kept

    def _release_model(self) -> None:
        for pub in (self.pub, self.overlay_pub, self.info_pub, self.objects_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self.pub = self.overlay_pub = self.info_pub = self.objects_pub = self.finder = None
        if self.label_outputs is not None:
            self.label_outputs.destroy()
            self.label_outputs = None
        self.classifier = None
        self.state = 'unconfigured'
        release_freed_memory()

    def _publish_vision_info(self) -> None:
        classifier, info_pub = self.classifier, self.info_pub
        if classifier is None or info_pub is None:
            return
        info_pub.publish(vision_info.message(self.method, classifier.options, self.get_fully_qualified_name(),
                                             self.params.model.labels_file, self.vocabulary.version,
                                             self.get_clock().now().to_msg()))

    # --- input: subscriptions, QoS, lost and missing frames ---

    def _input_topic(self, topic: str):
        """The name and type to subscribe for camera `topic`."""
        if self.params.transport == 'compressed':
            # image_transport convention: the compressed stream of `base` is `base/compressed`. Resolve
            # (and remap) the base first, so remapping `image` moves both, as with image_transport.
            base = self.resolve_topic_name(topic)
            return (base if base.endswith('/compressed') else base.rstrip('/') + '/compressed'), CompressedImage
        return topic, Image

    def _offered(self, name: str) -> list[str]:
        """The reliability each publisher on `name` offers."""
        return [RELIABLE if p.qos_profile.reliability == ReliabilityPolicy.RELIABLE else BEST_EFFORT
                for p in self.get_publishers_info_by_topic(name)]

    def _subscribe(self, topic: str) -> None:
        """Subscribe camera `topic` with the reliability the qos parameter and its publishers call for."""
        name, msg_type = self._input_topic(topic)
        resolved = self.resolve_topic_name(name)
        offered = self._offered(resolved)
        with self._inputs_lock:
            health = self.health.setdefault(topic, TopicHealth(resolved, self.params.qos))
            health.publishers(offered, time.monotonic())
            reliability = health.wanted()
        sub = self._create_input_subscription(topic, name, msg_type, reliability)
        with self._inputs_lock:
            self.subs[topic] = sub
            health.subscribed(reliability, time.monotonic())
        self.get_logger().info(f"subscribing to {resolved} ({msg_type.__name__}, {reliability.replace('_', ' ')}; "
                               f"qos: {self.params.qos}, {describe_publishers(offered)} found)")

    def _create_input_subscription(self, topic: str, name: str, msg_type, reliability: str):
        qos = QoSProfile(depth=self.params.qos_depth, reliability=_RELIABILITY[reliability],
                         history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
        events = SubscriptionEventCallbacks(message_lost=lambda info, t=topic: self._on_frames_lost(t, info),
                                            incompatible_qos=lambda info, t=topic: self._on_incompatible_qos(t, info))
        callback = lambda msg, t=topic: self._on_frame(t, msg)  # noqa: E731
        try:
            return self.create_subscription(msg_type, name, callback, qos, event_callbacks=events,
                                            callback_group=self._frames_group)
        except UnsupportedEventTypeError:
            self.get_logger().info("this middleware does not report lost messages: frames lost in transport "
                                   "are not counted", once=True)
            events.message_lost = None
            return self.create_subscription(msg_type, name, callback, qos, event_callbacks=events,
                                            callback_group=self._frames_group)

    def _resubscribe(self, topic: str) -> None:
        with self._inputs_lock:
            health = self.health[topic]
            sub = self.subs.pop(topic)
            text = (f"{health.topic} now has {describe_publishers(health.offered)}: subscribing "
                    f"{health.wanted().replace('_', ' ')} instead of {health.reliability.replace('_', ' ')} (qos: auto)")
        self.get_logger().info(text)
        self.destroy_subscription(sub)
        self._subscribe(topic)

    def _watch_inputs(self) -> None:
        """Timer: follow the publishers (qos: auto), and warn once when publishers are there but frames are not."""
        for topic in list(self.subs):
            health = self.health[topic]
            offered = self._offered(health.topic)
            with self._inputs_lock:
                now = time.monotonic()
                health.publishers(offered, now)
                switching = health.switching()
                warning = health.silence(now, self.params.frame_timeout_s)
            if switching:
                self._resubscribe(topic)
            if warning:
                self.get_logger().warning(warning)

    def _on_frames_lost(self, topic: str, info) -> None:
        """message_lost event: the middleware saw frames it could not deliver (fragments overwritten)."""
        health = self.health[topic]
        offered = self._offered(health.topic)
        with self._inputs_lock:
            now = time.monotonic()
            health.frames_lost(info.total_count_change, now)
            health.publishers(offered, now)
            # While qos: auto is about to subscribe reliable (which ends the loss), there is nothing to say.
            warning = None if health.switching() else health.loss_warning()
        if warning:
            self._warn_throttled(f"lost:{topic}", warning, LOSS_WARN_THROTTLE_S)

    def _on_incompatible_qos(self, topic: str, info) -> None:
        health = self.health[topic]
        with self._inputs_lock:
            health.incompatible += info.total_count_change
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        if self.params.qos == 'auto':
            self.get_logger().info(f"a publisher on {health.topic} offers incompatible {policy}; "
                                   "qos: auto resubscribes to match it")
        else:
            self._warn_throttled(f"incompatible:{topic}", (
                f"a publisher on {health.topic} offers QoS incompatible with this subscription ({policy}; "
                f"subscribed {health.reliability.replace('_', ' ')}, qos: {self.params.qos}); no frame of it "
                "will arrive: set qos: auto, which matches the publishers"), WARN_THROTTLE_S)

    def _on_frame(self, camera: str, msg) -> None:
        stamp = msg.header.stamp
        age = None
        if stamp.sec or stamp.nanosec:   # unstamped frames say nothing about their age
            age = self.get_clock().now().nanoseconds * 1e-9 - (stamp.sec + stamp.nanosec * 1e-9)
        self.stats.arrived(age)
        with self._inputs_lock:
            self.health[camera].frame(time.monotonic())
        self.frames.put(camera, msg)

    def _warn_throttled(self, key: str, text: str, every_s: float) -> None:
        now = time.monotonic()
        with self._inputs_lock:
            if now - self._last_warning.get(key, -1e9) < every_s:
                return
            self._last_warning[key] = now
        self.get_logger().warning(text)

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
        classifier, finder = self.classifier, self.finder     # one set of settings for the whole batch
        outputs = self.label_outputs
        found = []
        # Drawing costs a copy and text rendering per frame: only while someone subscribes to the overlay.
        overlay = self.overlay_pub if self.overlay_pub is not None and self.overlay_pub.get_subscription_count() else None
        max_pixels = self.params.model.max_pixels
        for c in classify_in_batches(classifier, items, lambda item: frame_from_msg(item.msg, max_pixels), len(items)):
            if c.error is not None:
                self._reject(c.item.camera, c.error)
                continue
            self.stats.processed_batch(1)
            out = Classification(header=c.item.msg.header)
            out.results = [ObjectHypothesis(class_id=l.text, score=float(l.score)) for l in c.labels.labels]
            self.pub.publish(out)
            outputs.publish(c.item.camera, c.item.msg.header, c.labels, c.item.received)
            self.stats.published_one(time.monotonic() - c.item.received, c.labels.per_frame_ms)
            if overlay is not None:
                self._publish_overlay(overlay, c.item.msg.header, c.frame, c.labels)
            found.append(c)
        if finder is not None and self.objects_pub is not None and found:
            # All windows of all the batch's frames go through the encoder and decoder in one call.
            for c, objects in zip(found, finder.classify([c.frame for c in found])):
                self.objects_pub.publish(detections_message(c.item.msg.header, objects))
                self.objects_published += 1

    @staticmethod
    def _object_finder(classifier, params: NodeParams):
        """The multi-object finder over `classifier` with the object_* settings (None without `objects`);
        ValueError names a setting that cannot work with the loaded model."""
        return build_object_finder(classifier, params.model) if params.objects else None

    def _reject(self, camera: str, error: Exception) -> None:
        reason = getattr(error, 'reason', 'invalid frame')
        self.stats.rejected_one(reason)
        # Throttled per reason, so a flood of one problem cannot hide another.
        self._warn_throttled(reason, f"frame from {camera} rejected ({reason}): {error}", WARN_THROTTLE_S)

    def _publish_overlay(self, pub, header, frame, res) -> None:
        drawn = draw_labels(frame, [(l.text, l.score) for l in res.labels])
        h, w = drawn.shape[:2]
        pub.publish(Image(header=header, height=h, width=w, encoding='rgb8', is_bigendian=0,
                          step=w * 3, data=drawn.tobytes()))
        self.overlays_published += 1

    # --- parameters and diagnostics ---

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Validate a change like a start would, build what it needs, then swap it in whole: the worker
        takes `self.classifier` once per batch, so every message is computed with one set of settings.
        Parameters that need a restart are declared read-only, and rclpy refuses them before this.

        Building a classifier for a new label list embeds the labels not yet cached (seconds for a
        large uncached list). That runs here, on the parameter service's thread: frames keep being
        labelled with the old settings meanwhile, and the request is answered once the new settings
        are in use (so `ros2 param set` reports success when they apply, and VisionInfo's version
        goes up at that moment). Unconfigured, a change is only validated and stored."""
        updates = {p.name: p.value for p in changes}
        current = self.classifier
        try:
            new = self.params.updated(**updates)
            options = new.model.to_options()
            classifier = current if current is None or options == current.options else current.with_options(options)
            finder = None if classifier is None else self._object_finder(classifier, new)
            outputs = self.label_outputs
            apply_outputs = outputs.prepare(new) if outputs is not None else None
        except (ValueError, NovicError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        self.params, self.classifier, self.finder = new, classifier, finder
        if apply_outputs is not None:
            apply_outputs()
        if classifier is not None and self.vocabulary.update(options):
            self.get_logger().info(f"vocabulary {self.vocabulary.version}: "
                                   f"{vision_info.database_location(options, self.get_fully_qualified_name())}")
            self._publish_vision_info()
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        s = self.stats.snapshot(self.frames.received, self.frames.dropped)
        classifier = self.classifier
        with self._inputs_lock:
            now = time.monotonic()
            inputs = {self.health[t].topic: self.health[t].status(now, self.params.frame_timeout_s) for t in self.subs}
            lost = sum(h.lost for h in self.health.values())
        problems = [line for bad, line in inputs.values() if bad]
        level = DiagnosticStatus.OK
        message = 'classifying'
        if self.state != 'active' or classifier is None:
            message = f"{self.state}: not labelling"
        elif problems:
            level, message = DiagnosticStatus.WARN, '; '.join(problems)
        elif s.received == 0:
            level, message = DiagnosticStatus.WARN, 'no frames received yet'
        elif s.rejected or s.errors:
            level, message = DiagnosticStatus.WARN, f"{s.rejected} frames rejected, {s.errors} inference errors"
        backend = classifier.backend if classifier is not None else None
        values = {
            'input_rate_hz': f"{s.input_rate_hz:.2f}", 'output_rate_hz': f"{s.output_rate_hz:.2f}",
            'latency_p50_ms': f"{s.latency_p50_ms:.1f}", 'latency_p95_ms': f"{s.latency_p95_ms:.1f}",
            'inference_p50_ms': f"{s.inference_p50_ms:.1f}", 'frame_age_p50_ms': f"{s.frame_age_p50_ms:.1f}",
            'frames_received': str(s.received),
            'frames_processed': str(s.processed), 'frames_published': str(s.published),
            'frames_dropped': str(s.dropped), 'frames_rejected': str(s.rejected), 'frames_lost': str(lost),
            'inference_errors': str(s.errors), 'overlays_published': str(self.overlays_published),
            'objects_published': str(self.objects_published),
            'backend': backend.name if backend else '-', 'backend_detail': backend.describe() if backend else '-',
            'model': self.params.model.model, 'mode': self.params.model.mode,
            'device': str(backend.device) if backend else '-',
            'lifecycle_state': self.state, 'vocabulary_version': str(self.vocabulary.version),
            **{f"rejected: {k}": str(v) for k, v in s.rejected_by_reason.items()},
            **{f"input {topic}": line for topic, (_, line) in inputs.items()},
        }
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: open-vocabulary classifier",
                                  message=message, hardware_id=str(backend.device) if backend else '',
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self.diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))

    def destroy_node(self):
        self._unsubscribe_and_stop()
        self.frames.close()
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    py_log = logging.getLogger('novic_ros')
    py_log.addHandler(RosLogHandler(logger))
    py_log.setLevel(logging.INFO)
    py_log.propagate = False        # open_clip's root-logger calls install a stderr handler there
    try:
        node = NovicNode()
    except (NovicError, ValueError, FileNotFoundError) as e:
        logger.fatal(f"cannot start: {e}")
        rclpy.try_shutdown()
        return 1
    # Single-threaded: rclpy's MultiThreadedExecutor kept its main thread at 100% CPU in its wait
    # loop while frames flowed (top -H), holding the GIL against the inference thread: some frames
    # waited 0.3-6 s. Inference runs in the node's own worker thread, so one executor thread loses
    # nothing; the callback groups stay for a multi-threaded container.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.params.autostart:
            # As `ros2 run` users expect: labelling from the start. A model that cannot be loaded is
            # one clear error (logged by configure) and a non-zero exit, not a node left unconfigured.
            if node.trigger_configure() != SUCCESS or node.trigger_activate() != SUCCESS:
                logger.fatal("cannot start: see the error above (autostart:=false leaves the node unconfigured "
                             "for a lifecycle manager instead)")
                return 1
        else:
            logger.info("unconfigured, waiting for a lifecycle manager (autostart is false)")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
