"""novic_node's input side: one subscription per camera topic, with the reliability its publishers
offer (`qos: auto`, followed as publishers come and go) or the one the `qos` parameter names; frames
lost in transport and incompatible QoS counted and explained (input_health says what to tell the
user); a warning when a topic has publishers but sends no frame.

Frame callbacks only stamp the arrival and hand the message to LatestFrames (the inference worker
converts it: frame_from_msg). Video cameras (transport foxglove / ffmpeg, video_input.py) are the
exception: every packet is decoded in its callback, in order, and only the newest picture is handed
on; a loss the middleware reports makes that camera's decoder wait for the next keyframe. The callbacks and the 4
Hz watch timer run on the node's executor;
the state they share with the diagnostics is guarded by one lock.
"""
from __future__ import annotations

import threading
import time

import numpy as np
try:
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:      # Humble (rclpy 3.x): the same classes lived in rclpy.qos_event until Iron
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from sensor_msgs.msg import CompressedImage, Image

from ..core.errors import FrameError
from ..frames.conversion import compressed_to_rgb, raw_to_rgb
from ..params import DEFAULT_MAX_PIXELS
from .input_health import BEST_EFFORT, RELIABLE, TopicHealth, describe_publishers
from .latest_frames import LatestFrames
from .node_stats import NodeStats
from .throttled_log import WARN_THROTTLE_S, ThrottledLog
from .video_input import MIN_QUEUE_DEPTH, VIDEO_TRANSPORTS, DecodedPicture, VideoInputs

LOSS_WARN_THROTTLE_S = 30.0     # frames lost in transport: one warning per topic per 30 s
INPUT_CHECK_S = 0.25            # publishers re-read (qos: auto follows them) and silence checked this often
_RELIABILITY = {RELIABLE: ReliabilityPolicy.RELIABLE, BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT}


def frame_from_msg(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An Image, CompressedImage or decoded video picture as an HxWx3 uint8 RGB frame (FrameError names
    what is wrong)."""
    if isinstance(msg, DecodedPicture):          # decoded on arrival; max_pixels was checked there
        return msg.to_rgb()
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg.format, msg.data, max_pixels)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian, max_pixels)


class CameraInputs:
    """The subscriptions of a node (reads `node.params`; subscribes on `callback_group`)."""

    def __init__(self, node, frames: LatestFrames, stats: NodeStats, log: ThrottledLog, callback_group=None):
        self._node = node
        self._frames = frames
        self._stats = stats
        self._log = log
        self._group = callback_group
        self._lock = threading.Lock()
        self.subs: dict[str, object] = {}       # camera topic -> its subscription, while active
        self.health: dict[str, TopicHealth] = {}
        self.video: VideoInputs | None = None   # transport foxglove / ffmpeg: the cameras' decoders, while active

    @property
    def _logger(self):
        return self._node.get_logger()

    def subscribe_all(self) -> None:
        params = self._node.params
        if params.transport in VIDEO_TRANSPORTS:
            self.video = VideoInputs(params.video_decoding, params.model.max_pixels)
        for topic in params.image_topics:
            self._subscribe(topic)

    def unsubscribe_all(self) -> None:
        with self._lock:
            subs, self.subs = list(self.subs.values()), {}
        for sub in subs:
            self._node.destroy_subscription(sub)
        self.video = None           # a stream subscribed again starts at its next keyframe

    def status(self, now: float) -> tuple[dict[str, tuple[bool, str]], int]:
        """Per subscribed topic (is it a problem, the line for diagnostics), and the frames lost in all."""
        timeout = self._node.params.frame_timeout_s
        with self._lock:
            inputs = {self.health[t].topic: self.health[t].status(now, timeout) for t in self.subs}
            lost = sum(h.lost for h in self.health.values())
        return inputs, lost

    def _input_topic(self, topic: str):
        """The name and type to subscribe for camera `topic`."""
        transport = self._node.params.transport
        if transport == 'compressed' or transport in VIDEO_TRANSPORTS:
            # image_transport convention: the compressed stream of `base` is `base/compressed` (`base/foxglove`,
            # `base/ffmpeg`). Resolve (and remap) the base first, so remapping `image` moves both, as with
            # image_transport.
            msg_type, suffix = VIDEO_TRANSPORTS.get(transport, (CompressedImage, 'compressed'))
            base = self._node.resolve_topic_name(topic)
            return (base if base.endswith('/' + suffix) else base.rstrip('/') + '/' + suffix), msg_type
        return topic, Image

    def _offered(self, name: str) -> list[str]:
        """The reliability each publisher on `name` offers."""
        return [RELIABLE if p.qos_profile.reliability == ReliabilityPolicy.RELIABLE else BEST_EFFORT
                for p in self._node.get_publishers_info_by_topic(name)]

    def _subscribe(self, topic: str) -> None:
        """Subscribe camera `topic` with the reliability the qos parameter and its publishers call for."""
        params = self._node.params
        name, msg_type = self._input_topic(topic)
        resolved = self._node.resolve_topic_name(name)
        offered = self._offered(resolved)
        with self._lock:
            health = self.health.setdefault(topic, TopicHealth(resolved, params.qos))
            health.publishers(offered, time.monotonic())
            reliability = health.wanted()
        sub = self._create_subscription(topic, name, msg_type, reliability)
        with self._lock:
            self.subs[topic] = sub
            health.subscribed(reliability, time.monotonic())
        self._logger.info(f"subscribing to {resolved} ({msg_type.__name__}, {reliability.replace('_', ' ')}; "
                          f"qos: {params.qos}, {describe_publishers(offered)} found)")

    def _create_subscription(self, topic: str, name: str, msg_type, reliability: str):
        # Video: a packet dropped from a full queue costs every picture up to the next keyframe.
        depth = self._node.params.qos_depth
        qos = QoSProfile(depth=max(depth, MIN_QUEUE_DEPTH) if self.video is not None else depth,
                         reliability=_RELIABILITY[reliability],
                         history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
        events = SubscriptionEventCallbacks(message_lost=lambda info, t=topic: self._on_frames_lost(t, info),
                                            incompatible_qos=lambda info, t=topic: self._on_incompatible_qos(t, info))
        callback = lambda msg, t=topic: self._on_frame(t, msg)  # noqa: E731
        try:
            return self._node.create_subscription(msg_type, name, callback, qos, event_callbacks=events,
                                                  callback_group=self._group)
        except UnsupportedEventTypeError:
            self._logger.info("this middleware does not report lost messages: frames lost in transport "
                              "are not counted", once=True)
            events.message_lost = None
            return self._node.create_subscription(msg_type, name, callback, qos, event_callbacks=events,
                                                  callback_group=self._group)

    def _resubscribe(self, topic: str) -> None:
        with self._lock:
            health = self.health[topic]
            sub = self.subs.pop(topic)
            text = (
                f"{health.topic} now has {describe_publishers(health.offered)}: subscribing "
                f"{health.wanted().replace('_', ' ')} instead of {health.reliability.replace('_', ' ')} (qos: auto)"
            )
        self._logger.info(text)
        self._node.destroy_subscription(sub)
        if self.video is not None:
            self.video.lost(topic)      # packets may fall between the two subscriptions
        self._subscribe(topic)

    def watch(self) -> None:
        """Timer: follow the publishers (qos: auto), and warn once when publishers are there but frames are not."""
        for topic in list(self.subs):
            health = self.health[topic]
            offered = self._offered(health.topic)
            with self._lock:
                now = time.monotonic()
                health.publishers(offered, now)
                switching = health.switching()
                warning = health.silence(now, self._node.params.frame_timeout_s)
            if switching:
                self._resubscribe(topic)
            if warning:
                self._logger.warning(warning)

    def _on_frames_lost(self, topic: str, info) -> None:
        """message_lost event: the middleware saw frames it could not deliver (fragments overwritten)."""
        health = self.health[topic]
        offered = self._offered(health.topic)
        if self.video is not None:
            self.video.lost(topic)      # the pictures after a lost packet are damaged: wait for a keyframe
        with self._lock:
            now = time.monotonic()
            health.frames_lost(info.total_count_change, now)
            health.publishers(offered, now)
            # While qos: auto is about to subscribe reliable (which ends the loss), there is nothing to say.
            warning = None if health.switching() else health.loss_warning()
        if warning:
            self._log.warn_every(f"lost:{topic}", warning, LOSS_WARN_THROTTLE_S)

    def _on_incompatible_qos(self, topic: str, info) -> None:
        health = self.health[topic]
        with self._lock:
            health.incompatible += info.total_count_change
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        qos = self._node.params.qos
        if qos == 'auto':
            self._logger.info(f"a publisher on {health.topic} offers incompatible {policy}; "
                              "qos: auto resubscribes to match it")
        else:
            self._log.warn_every(f"incompatible:{topic}", (
                f"a publisher on {health.topic} offers QoS incompatible with this subscription ({policy}; "
                f"subscribed {health.reliability.replace('_', ' ')}, qos: {qos}); no frame of it "
                "will arrive: set qos: auto, which matches the publishers"), WARN_THROTTLE_S)

    def _on_frame(self, camera: str, msg) -> None:
        with self._lock:
            self.health[camera].frame(time.monotonic())     # a video packet counts too: the camera is there
        video = self.video
        if video is not None:
            # Every packet is decoded now, in order; only the newest picture waits for the worker.
            try:
                msg = video.packet(camera, msg)
            except FrameError as e:
                reason = e.reason
                self._stats.rejected_one(reason)
                self._log.warn_every(reason, f"video packet from {camera} rejected ({reason}): {e}")
                return
            if msg is None:             # before the first keyframe, or after a loss: counted by the decoder
                return
        stamp = msg.header.stamp
        age = None
        if stamp.sec or stamp.nanosec:   # unstamped frames say nothing about their age
            age = self._node.get_clock().now().nanoseconds * 1e-9 - (stamp.sec + stamp.nanosec * 1e-9)
        self._stats.arrived(age)
        self._frames.put(camera, msg)
