"""ros/worker.py and ros/throttled_log.py without a running node: one failing output costs only
itself, an unexpected exception's traceback is logged once and then throttled."""
from __future__ import annotations

import pytest

pytest.importorskip('rclpy')
import numpy as np  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from novic_ros.core.frame_labels import FrameLabels, Label  # noqa: E402
from novic_ros.frames.conversion import rgb_to_raw  # noqa: E402
from novic_ros.params import NodeParams  # noqa: E402
from novic_ros.ros.latest_frames import LatestFrames, PendingFrame  # noqa: E402
from novic_ros.ros.live_settings import LiveSettings  # noqa: E402
from novic_ros.ros.node_stats import NodeStats  # noqa: E402
from novic_ros.ros.throttled_log import ThrottledLog  # noqa: E402
from novic_ros.ros.worker import InferenceWorker, Publishers  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


class Logger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(('warning', text))

    def error(self, text):
        self.lines.append(('error', text))


class Recorder:
    """A publisher; with `fail`, publish raises (a broken publisher, or a bug in what feeds it)."""

    def __init__(self, fail=False):
        self.msgs, self.fail = [], fail

    def publish(self, *args):
        if self.fail:
            raise RuntimeError('publisher is broken')
        self.msgs.append(args)

    def get_subscription_count(self):
        return 1


class Classifier:
    def classify(self, frames):
        return [FrameLabels((Label(f"thing{int(f[0, 0, 0])}", 0.9),)) for f in frames]


class FakeNode:
    def __init__(self, publishers):
        self.live = LiveSettings(NodeParams.from_mapping({}), Classifier(), None)
        self.outputs = publishers


def frame_msg(value: int, frame_id: str) -> Image:
    raw, step = rgb_to_raw(np.full((8, 8, 3), value, np.uint8), 'rgb8')
    return Image(header=Header(frame_id=frame_id), height=8, width=8, encoding='rgb8', step=step, data=raw)


def batch(n=3):
    return [PendingFrame(f"cam{i}", frame_msg(i, f"f{i}"), 0.0) for i in range(n)]


def worker_for(**pubs):
    pubs = {'labels': Recorder(), 'label_outputs': Recorder(), 'overlay': Recorder(), **pubs}
    logger = Logger()
    stats = NodeStats()
    worker = InferenceWorker(FakeNode(Publishers(**pubs)), LatestFrames(), stats, ThrottledLog(logger))
    return worker, pubs, logger, stats


def tracebacks(logger):
    return [text for level, text in logger.lines if level == 'error' and 'Traceback' in text]


def test_a_failing_labels_publisher_costs_only_the_labels():
    worker, pubs, logger, stats = worker_for(labels=Recorder(fail=True))
    worker.process(batch(3))
    # labels_stable/categories and the overlay of every frame of the batch still went out
    assert [args[1].frame_id for args in pubs['label_outputs'].msgs] == ['f0', 'f1', 'f2']
    assert len(pubs['overlay'].msgs) == 3 and worker.overlays_published == 3
    assert worker.output_errors == 3
    snap = stats.snapshot(0, 0)
    assert snap.processed == 3 and snap.published == 0 and snap.errors == 0
    # the traceback once (it names where it was raised), not once per frame
    assert len(tracebacks(logger)) == 1
    assert 'publishing labels failed: RuntimeError: publisher is broken' in tracebacks(logger)[0]
    assert 'in publish' in tracebacks(logger)[0]


def test_a_failing_label_outputs_leaves_the_labels_and_overlay():
    worker, pubs, logger, stats = worker_for(label_outputs=Recorder(fail=True))
    worker.process(batch(2))
    assert [m[0].header.frame_id for m in pubs['labels'].msgs] == ['f0', 'f1']
    assert [m[0].results[0].class_id for m in pubs['labels'].msgs] == ['thing0', 'thing1']
    assert len(pubs['overlay'].msgs) == 2
    assert stats.snapshot(0, 0).published == 2 and worker.output_errors == 2
    assert len(tracebacks(logger)) == 1 and 'labels_stable and categories' in tracebacks(logger)[0]


def test_a_failing_overlay_leaves_the_rest():
    worker, pubs, logger, _ = worker_for(overlay=Recorder(fail=True))
    worker.process(batch(2))
    assert len(pubs['labels'].msgs) == 2 and len(pubs['label_outputs'].msgs) == 2
    assert worker.overlays_published == 0 and worker.output_errors == 2


def test_rejected_frame_does_not_stop_the_batch():
    worker, pubs, logger, stats = worker_for()
    items = batch(3)
    bad = items[1].msg
    bad.encoding = 'no_such_encoding'
    worker.process(items)
    assert [m[0].header.frame_id for m in pubs['labels'].msgs] == ['f0', 'f2']
    assert sum(stats.snapshot(0, 0).rejected_by_reason.values()) == 1
    assert [level for level, _ in logger.lines] == ['warning'] and 'rejected' in logger.lines[0][1]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def raised(error):
    try:
        raise error
    except Exception as e:  # noqa: BLE001
        return e


def test_unexpected_traceback_once_then_throttled_per_place_and_type():
    logger, clock = Logger(), Clock()
    log = ThrottledLog(logger, clock)
    assert log.unexpected('inference failed', raised(KeyError('x')))
    assert not log.unexpected('inference failed', raised(KeyError('y')))        # within the period: silent
    assert log.unexpected('inference failed', raised(ValueError('z')))          # another type: its own traceback
    assert log.unexpected('publishing labels failed', raised(KeyError('x')))    # another place: its own
    clock.t += 5.0
    assert log.unexpected('inference failed', raised(KeyError('w')))            # after the period: one line
    texts = [text for _, text in logger.lines]
    assert [('Traceback' in t) for t in texts] == [True, True, True, False]
    assert texts[3].startswith("inference failed: KeyError: 'w'") and 'again' in texts[3]


def test_warnings_throttled_per_key():
    logger, clock = Logger(), Clock()
    log = ThrottledLog(logger, clock)
    assert log.warn_every('too large', 'a') and not log.warn_every('too large', 'b') and log.warn_every('undecodable', 'c')
    clock.t += 5.0
    assert log.warn_every('too large', 'd')
    assert [text for _, text in logger.lines] == ['a', 'c', 'd']


def test_label_outputs_take_top_k_from_the_batchs_live_settings():
    """top_k has one live copy (node.live): the worker hands it to the outputs it feeds."""
    worker, pubs, _, _ = worker_for()
    worker._node.live = LiveSettings(NodeParams.from_mapping({'top_k': 2}), Classifier(), None)
    worker.process(batch(2))
    assert [args[-1] for args in pubs['label_outputs'].msgs] == [2, 2]
    worker._node.live = LiveSettings(NodeParams.from_mapping({'top_k': 1, 'beam_width': 1}), Classifier(), None)
    worker.process(batch(1))
    assert pubs['label_outputs'].msgs[-1][-1] == 1
