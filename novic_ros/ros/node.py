"""The /novic/labels node: camera frames in, open-vocabulary labels out. A lifecycle node
(rclpy.lifecycle) that composes the parts, each in its own module:

- inputs.py: the subscriptions (QoS following with `qos: auto`, frames lost in transport, silent
  topics); frame callbacks only hand messages to LatestFrames.
- worker.py: the inference thread: convert, classify (novic_ros.core through the pipeline) and
  publish, one try per output; worker_watch.py restarts it when it dies or sticks; messages.py builds
  every message it publishes.
- diagnostics.py: the 1 Hz /diagnostics status; node_reports.py: its timer, VisionInfo and LabelInfo
  (NodeReports, a mixin of the node); ros_log.py: novic_ros's Python logging in the node's ROS log.
- live_settings.py: live parameter changes, prepared whole and then swapped in; parameter_changes.py:
  the node's parameter callback, the settings thread's build step and the swap.
- object_outputs.py: the objects (tracked: core.tracks) and their Foxglove annotations;
  label_info.py: LabelInfo's class map, published with every VisionInfo version.
- node_main.py: the process around the node: rclpy, autostart, the executor's thread, the shutdown.

Lifecycle: configure loads and warms up the model and creates the (lifecycle) publishers, activate
subscribes and starts the worker, deactivate unsubscribes (frames are not delivered, so nothing
queues) and stops it, cleanup frees the model, shutdown works from any state. With `autostart`
(default) node_main.main() drives configure and activate itself.

Threads: node_main.main() spins a single-threaded executor on a thread of its own, so frame callbacks, timers
(input watch, diagnostics with the worker's watch, the stable labels' expiry, the bond), lifecycle
transitions and parameter callbacks run one at a time on the executor thread; inference runs on the
worker thread beside it, and changes that read a labels file or embed a label list are built on the
settings thread (live_settings.ChangeBuilder), so the executor never waits on them: frames keep
coming and being labelled with the old settings, and diagnostics keep flowing, until the new
settings are swapped in whole. The settings thread gives way to the worker: it embeds a label list
a few labels at a time and waits while a batch is being computed (_give_way), so a long list does
not slow frames down. The main thread waits for SIGINT or SIGTERM and then shuts the node
down (exit_signals.py: exit 0 in under 2 s). Every callback is guarded (callback_guard.py): an
exception is logged, counted in diagnostics, and the executor goes on. (The callback groups are kept
for a multi-threaded container.)
"""
from __future__ import annotations

if __name__ == '__main__':
    # python -m novic_ros.ros.node: the signal handlers go in before the imports below (1-2 s), and a
    # signal during them exits cleanly (exit_signals.run_node imports node_main and runs its main()).
    import sys
    from novic_ros.ros.exit_signals import run_node
    sys.exit(run_node())

import os
import sys
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, LabelInfo, VisionInfo

from ..core.errors import NovicError
from ..core.stable_labels import default_merge_key
from ..params import DEFAULT_NAMESPACE, NODE_NAME, NodeParams
from ..pipeline import build_classifier
from . import vision_info
from .bond import Bond
from .callback_guard import CallbackErrors, guard, place, report
from .inputs import INPUT_CHECK_S, CameraInputs
from .label_info import LabelMap
from .label_outputs import LabelOutputs
from .latest_frames import LatestFrames
from .lifecycle_service import refuse_impossible_transitions
from .live_settings import ChangeBuilder, LiveSettings, object_finder
from .memory import CollectorPauses, release_freed_memory, rss_mb, settle_loaded
from .node_stats import NodeStats
from .object_outputs import ObjectOutputs
from .param_declaration import declare_all
from .node_reports import NodeReports
from .parameter_changes import ParameterChanges
from .ros_log import RosLogHandler
from .throttled_log import ThrottledLog
from .worker import InferenceWorker, Publishers
from .worker_watch import parse_fault

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
# VisionInfo as vision_msgs intends it: the last one stays available to late subscribers.
VISION_INFO_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
# What configure and activate report without a traceback: a model, file or setting that is wrong.
EXPECTED_ERRORS = (NovicError, ValueError, OSError)


class NovicNode(ParameterChanges, NodeReports, LifecycleNode):
    """The lifecycle node; its parameter side (callback, build, swap) is ParameterChanges'."""

    def __init__(self, **kwargs):
        # Before super(): rclpy creates its own subscriptions (/clock) through create_subscription.
        self.callback_errors = CallbackErrors()
        self.worker = None
        self._live = None
        super().__init__(NODE_NAME, namespace=kwargs.pop('namespace', DEFAULT_NAMESPACE), **kwargs)
        RosLogHandler.log_as(self.get_logger())
        refuse_impossible_transitions(self)       # Jazzy and Humble: lifecycle_service.py
        # What the worker reads once per batch, swapped whole (ValueError names a bad parameter).
        self.live = LiveSettings(NodeParams.from_mapping(declare_all(self)))
        self._live_lock = threading.Lock()      # one writer of `live` at a time (executor, settings thread)
        self._target = self.live.params         # the parameters as accepted (pending changes included)
        self._reverting = False
        self.method = ''                        # VisionInfo.method of the loaded model
        self.vocabulary = vision_info.VocabularyVersion()
        self.state = 'unconfigured'
        self.frames = LatestFrames()
        self.stats = NodeStats()
        self.log = ThrottledLog(self.get_logger())
        fault = parse_fault(os.environ.get('NOVIC_FAULT'))     # tests only: see worker.py
        if fault is not None:
            self.get_logger().warning(
                f"NOVIC_FAULT is set: the inference worker will fail on purpose ({fault[0]}={fault[1]})"
            )
        self.outputs: Publishers | None = None          # configure to cleanup
        self.info_pub = self.label_info_pub = None
        self.label_map = LabelMap()             # LabelInfo's class map (prompted and hybrid modes)
        self.gc_pauses = CollectorPauses()
        self._label_info_sent = 0.0
        self._label_info_lock = threading.Lock()
        self.bond: Bond | None = None
        # Frame callbacks never wait for a transition where the node runs in a multi-threaded executor
        # (a composed container); node_main.main() spins it single-threaded, see there.
        self.inputs = CameraInputs(self, self.frames, self.stats, self.log, callback_group=ReentrantCallbackGroup())
        self.worker = InferenceWorker(self, self.frames, self.stats, self.log, fault)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.changes = ChangeBuilder(self._build_change, lambda change: self._revert_guard.trigger(), self.log)
        self._revert_guard = self.create_guard_condition(self._guard(self._revert_failed_changes))
        self.add_on_set_parameters_callback(guard(
            self._on_set_parameters, 'parameter change', self.log, self.callback_errors,
            lambda e: SetParametersResult(successful=False, reason=f"internal error: {type(e).__name__}: {e}")))
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(INPUT_CHECK_S, self.inputs.watch)     # default group: never during a transition

    @property
    def live(self) -> LiveSettings:
        """What the worker reads once per batch; assigning it wakes a worker asleep for the rate limit."""
        return self._live

    @live.setter
    def live(self, settings: LiveSettings) -> None:
        self._live = settings
        if self.worker is not None:
            self.worker.wake()

    # Every timer and subscription callback, the node's own and its parts' (inputs, bond, outputs), guarded.
    def create_timer(self, timer_period_sec, callback, *args, **kwargs):
        return super().create_timer(timer_period_sec, self._guard(callback), *args, **kwargs)

    def create_subscription(self, msg_type, topic, callback, *args, **kwargs):
        events = kwargs.get('event_callbacks')
        if events is not None:
            for name, value in vars(events).items():
                if callable(value) and not getattr(value, 'novic_guarded', False):
                    setattr(events, name, self._guard(value))
        return super().create_subscription(msg_type, topic, self._guard(callback), *args, **kwargs)

    def _guard(self, callback):
        if getattr(callback, 'novic_guarded', False):
            return callback
        return guard(callback, place(callback), self.log, self.callback_errors)

    @property
    def params(self) -> NodeParams:
        return self.live.params

    @property
    def classifier(self):
        return self.live.classifier

    # --- lifecycle ---

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition('configure', self._configure, state)

    def _configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = self.params
        try:
            # The decoder is loaded in prompted mode too when the variant has one: a live switch to
            # generate or hybrid then needs no reconfigure.
            classifier = build_classifier(params.model, decoder_for_all_modes=True)
            if params.warmup:
                classifier.classify(np.zeros((64, 64, 3), np.uint8))
            label_outputs = LabelOutputs(self, params, lifecycle=True)    # WordNet; a bad category fails here
            finder = object_finder(classifier, params)      # bad object_* settings fail configure
        except Exception as e:  # noqa: BLE001 -- any load error is a FAILURE with its reason, never a crash
            self._transition_failed('configure', e)
            return FAILURE
        with self._live_lock:
            self.live = LiveSettings(params, classifier, finder)
        self.method = vision_info.method(classifier)
        self.vocabulary.update(classifier.options)
        self.outputs = Publishers(
            labels=self.create_lifecycle_publisher(Classification, params.labels_topic, 10),
            label_outputs=label_outputs,
            overlay=self.create_lifecycle_publisher(Image, '~/image_labeled', 2) if params.publish_overlay else None,
            # Tracks merge synonyms in each track's labels as labels_stable does (WordNet when installed).
            objects=(ObjectOutputs(self, params, label_outputs.senses.merge_key if label_outputs.senses is not None
                                   else default_merge_key) if params.objects else None),
            label_map=self.label_map)
        self.info_pub = self.create_lifecycle_publisher(VisionInfo, 'vision_info', VISION_INFO_QOS)
        self.label_info_pub = self.create_lifecycle_publisher(LabelInfo, 'label_info', VISION_INFO_QOS)
        self.label_map.reset(classifier.options)
        self.get_logger().info(f"loaded {classifier.describe()}")
        self._log_label_embeddings(classifier)
        settle_loaded()
        self.gc_pauses.reset()                  # what follows is what frames would wait for
        self.state = 'inactive'
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition('activate', self._activate, state)

    def _activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)     # enables the lifecycle publishers before any frame comes
        try:
            self.worker.start()
            self.inputs.subscribe_all()
        except Exception as e:  # noqa: BLE001 -- e.g. an image topic name that does not resolve
            self._transition_failed('activate', e)
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
        return self._transition('deactivate', self._deactivate, state)

    def _deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe_and_stop()
        self.state = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition('cleanup', self._cleanup, state)

    def _cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        before = rss_mb()
        self._release_model()
        self.get_logger().info(f"cleaned up: model freed, resident memory {before:.0f} -> {rss_mb():.0f} MB")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition('shutdown', self._shutdown, state)

    def _shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe_and_stop()
        self._release_model()
        self.state = 'finalized'
        self.get_logger().info("shut down (finalized); stop the process to exit")
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition('error', self._error, state)

    def _error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}; back to unconfigured")
        self._unsubscribe_and_stop()
        self._release_model()
        return SUCCESS

    def _transition(self, name: str, run, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition whose unexpected exception is logged and counted (rclpy turns it into ERROR
        silently); ERROR leads to on_error (back to unconfigured), as nav2 expects of a failing node.
        An error inside on_error itself returns FAILURE (rclpy then finalizes the node)."""
        try:
            return run(state)
        except Exception as e:  # noqa: BLE001
            self.callback_errors.count(f"transition {name}", e)
            report(self.log, f"{name} transition", e)
            return TransitionCallbackReturn.FAILURE if name == 'error' else TransitionCallbackReturn.ERROR

    def _transition_failed(self, transition: str, error: Exception) -> None:
        """A wrong model, file or setting in one line; anything else (a bug) with its traceback."""
        if isinstance(error, EXPECTED_ERRORS):
            self.get_logger().error(f"{transition} failed: {type(error).__name__}: {error}")
        else:
            self.log.unexpected(f"{transition} failed", error)

    def _unsubscribe_and_stop(self, bond_ack_s: float = 0.5) -> None:
        if self.bond is not None:
            self.bond.close(bond_ack_s)
            self.bond = None
        self.inputs.unsubscribe_all()
        self.worker.stop()
        self.frames.take(1 << 30, timeout=0)     # frames that arrived but were not taken are ignored, not kept

    def _release_model(self) -> None:
        # Under the lock: a change the settings thread swaps in meanwhile publishes on these.
        with self._live_lock:
            pubs, self.outputs = self.outputs, None
            for pub in ((pubs.labels, pubs.overlay) if pubs is not None else ()) + (self.info_pub, self.label_info_pub):
                if pub is not None:
                    self.destroy_lifecycle_publisher(pub)
            self.info_pub = self.label_info_pub = None
            if pubs is not None:
                pubs.label_outputs.destroy()
                if pubs.objects is not None:
                    pubs.objects.destroy()
            self.live = LiveSettings(self.params)
        self.state = 'unconfigured'
        release_freed_memory()

    def destroy_node(self):
        self.changes.close()
        self.gc_pauses.close()
        self._unsubscribe_and_stop()
        self.frames.close()
        return super().destroy_node()

    def stop_now(self, timeout: float) -> None:
        """Process exit: the worker stops within `timeout` (a batch in flight publishes nothing more),
        the bond ends cleanly while the context is still valid."""
        self.worker.stop(timeout)
        self._unsubscribe_and_stop(bond_ack_s=EXIT_BOND_ACK_S)


EXIT_BOND_ACK_S = 0.25  # the manager's acknowledgement of the bond's end, at exit
