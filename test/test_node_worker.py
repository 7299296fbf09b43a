"""ros/worker.py, ros/throttled_log.py and ros/callback_guard.py without a running node: one failing
output costs only itself, an unexpected exception's traceback is logged once and then throttled; the
rate limit's sleep survives any rate and wakes on a change; a dead or stuck worker thread is
reported and replaced; wait_idle tells a batch in progress; a guarded callback logs, counts and returns."""
from __future__ import annotations

import math
import time
from types import SimpleNamespace

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
from novic_ros.ros import worker as worker_module  # noqa: E402
from novic_ros.ros import worker_watch  # noqa: E402
from novic_ros.ros.callback_guard import CallbackErrors, guard  # noqa: E402
from novic_ros.ros.worker import InferenceWorker, Publishers, period_s  # noqa: E402
from novic_ros.ros.worker_watch import parse_fault  # noqa: E402
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
    assert (
        log.warn_every('too large', 'a') and not log.warn_every('too large', 'b') and log.warn_every('undecodable', 'c')
    )
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


# --- the thread: rate limit, watch, restart -------------------------------------------------------

def wait_until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def set_rate(node, rate):
    """Any rate, past whatever bounds the parameter table sets: the worker's arithmetic must hold anyway."""
    node.live = SimpleNamespace(
        params=SimpleNamespace(rate_hz=rate, model=SimpleNamespace(batch_size=1, max_pixels=1 << 24, top_k=5)),
        classifier=node.live.classifier,
        finder=None,
    )


def running_worker(fault=None, rate=0.0):
    pubs = {'labels': Recorder(), 'label_outputs': Recorder(), 'overlay': Recorder()}
    node, logger, frames = FakeNode(Publishers(**pubs)), Logger(), LatestFrames()
    set_rate(node, rate)
    worker = InferenceWorker(node, frames, NodeStats(), ThrottledLog(logger), fault)
    worker.start()
    return worker, node, frames, pubs['labels'], logger


def published(labels):
    return [m[0].header.frame_id for m in labels.msgs]


@pytest.mark.parametrize('rate', [1e-300, 5e-324, 1e-6, -1.0, math.nan, math.inf, '3', None])
def test_any_rate_gives_a_finite_period(rate):
    p = period_s(rate)
    assert 0.0 <= p <= worker_module.MAX_PERIOD_S and math.isfinite(p)


@pytest.mark.parametrize('rate', [1e-300, 5e-324, 1e-6])
def test_a_sleeping_worker_wakes_at_once_when_the_rate_changes(rate, monkeypatch):
    monkeypatch.setattr(worker_module, 'MAX_WAIT_S', 5.0)    # without wake() it would sleep on for ~4 s
    worker, node, frames, labels, logger = running_worker(rate=rate)
    try:
        frames.put('cam', frame_msg(1, 'first'))
        assert wait_until(lambda: published(labels) == ['first'])
        frames.put('cam', frame_msg(2, 'second'))
        time.sleep(1.2)                      # two of its sleep slices: still asleep, and alive
        assert published(labels) == ['first'] and worker.health().state == 'sleeping (rate_hz)'
        changed = time.monotonic()
        set_rate(node, 0.0)
        worker.wake()                        # what assigning NovicNode.live does
        assert wait_until(lambda: published(labels) == ['first', 'second'], 10.0)
        print(f"rate {rate} -> 0: next frame published {time.monotonic() - changed:.3f} s after the change")
        assert time.monotonic() - changed < 1.0
        assert not worker.health().error and not [t for lvl, t in logger.lines if lvl == 'error']
    finally:
        worker.stop(1.0)


def test_a_dead_worker_is_reported_and_restarted():
    worker, node, frames, labels, logger = running_worker(fault=('worker_dies_after', 1))
    try:
        frames.put('cam', frame_msg(1, 'a'))
        assert wait_until(lambda: published(labels) == ['a'])
        frames.put('cam', frame_msg(2, 'b'))         # the thread dies taking this batch
        assert wait_until(lambda: not worker._thread.is_alive())
        worker.watch()
        health = worker.health()
        assert health.error and 'inference worker died (InjectedFault' in health.message and health.restarts == 1
        assert any('Traceback' in t and 'InjectedFault' in t for _, t in logger.lines)
        frames.put('cam', frame_msg(3, 'c'))         # the new thread labels again
        assert wait_until(lambda: published(labels)[-1:] == ['c'])
        assert worker.health(time.monotonic() + worker_watch.HEALTH_HOLD_S + 1).error is False
    finally:
        worker.stop(1.0)


def test_dying_again_and_again_backs_off():
    worker, *_ = running_worker()
    try:
        now = time.monotonic()
        worker._running = True
        delays = []
        for _ in range(4):
            with worker._lock:
                worker._failed(now, 'test failure')
                delays.append(0.0 if worker._restart_at is None else worker._restart_at - now)
        assert delays == [0.0, 1.0, 2.0, 4.0]
        assert worker.health(now).error and 'restarting in' in worker.health(now).state
    finally:
        worker.stop(1.0)


def test_a_stuck_worker_is_replaced_while_frames_arrive(monkeypatch):
    monkeypatch.setattr(worker_watch, 'STALL_MIN_S', 0.3)
    worker, node, frames, labels, logger = running_worker(fault=('worker_hangs_after', 1))
    try:
        frames.put('cam', frame_msg(1, 'a'))
        assert wait_until(lambda: published(labels) == ['a'])
        frames.put('cam', frame_msg(2, 'b'))         # batch 2 hangs
        assert wait_until(lambda: worker.health().state.startswith('in a batch'))
        stuck = worker._thread
        time.sleep(0.4)
        worker.watch()
        assert not worker.health().error             # no frame arrived since: nothing waits, not reported
        frames.put('cam', frame_msg(3, 'c'))
        worker.watch()
        health = worker.health()
        assert health.error and 'stuck in one batch' in health.message and health.restarts == 1
        assert wait_until(lambda: published(labels)[-1:] == ['c'])
        assert 'b' not in published(labels)          # the abandoned batch publishes nothing
        assert wait_until(lambda: not stuck.is_alive())
    finally:
        worker.stop(1.0)


def test_stop_ends_a_sleep_and_a_wait_for_frames_at_once(monkeypatch):
    monkeypatch.setattr(worker_module, 'MAX_WAIT_S', 5.0)
    worker, *_ = running_worker(rate=1e-6)
    time.sleep(0.1)
    start = time.monotonic()
    worker.stop(5.0)
    assert time.monotonic() - start < 0.2


def test_fault_injection_is_parsed_strictly():
    assert parse_fault(None) is None and parse_fault('') is None
    assert parse_fault('worker_dies_after=3') == ('worker_dies_after', 3)
    with pytest.raises(ValueError, match='NOVIC_FAULT'):
        parse_fault('worker_dies_after=soon')


def test_a_guarded_callback_logs_counts_and_returns_the_fallback():
    logger, errors = Logger(), CallbackErrors()
    def boom(x):
        raise KeyError(x)
    guarded = guard(boom, 'CameraInputs.watch', ThrottledLog(logger), errors, fallback=lambda e: ('refused', str(e)))
    assert guarded('a') == ('refused', "'a'") and guarded('b') == ('refused', "'b'")
    assert errors.snapshot() == {'CameraInputs.watch': 2} and errors.last == 'CameraInputs.watch: KeyError'
    assert len(tracebacks(logger)) == 1 and 'CameraInputs.watch failed' in tracebacks(logger)[0]


def test_wait_idle_waits_while_a_batch_is_computed():
    # The settings thread gives way to the worker with wait_idle (NovicNode._give_way).
    worker, node, frames, labels, logger = running_worker(fault=('worker_hangs_after', 1))
    try:
        assert worker.wait_idle(0.0)                 # waiting for frames is idle
        frames.put('cam', frame_msg(1, 'a'))
        assert wait_until(lambda: published(labels) == ['a'])
        assert worker.wait_idle(0.0)
        frames.put('cam', frame_msg(2, 'b'))         # batch 2 hangs
        assert wait_until(lambda: worker.health().state.startswith('in a batch'))
        start = time.monotonic()
        assert not worker.wait_idle(0.2) and time.monotonic() - start >= 0.2
    finally:
        worker.stop(1.0)
    assert worker.wait_idle(1.0)                     # the batch ended with the worker
