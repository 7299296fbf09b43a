"""Live parameter changes never hold up the executor (a real novic_node process, a client process):
a slow label change (a long list to read and embed in prompted mode) is answered at once and built
off the executor while frames keep being labelled with the old settings and diagnostics keep
flowing (measured), then swapped in whole with a new VisionInfo version; a change that fails while
being built leaves the old settings in force, puts the parameters back and says why; a half-applied
SetParameters says that parameters apply one at a time."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification, VisionInfo  # noqa: E402

from novic_ros.frames.conversion import rgb_to_raw  # noqa: E402
from ros_helpers import NodeProcess, RosClient  # noqa: E402

NS = '/live'
N_LABELS = 8000             # toy's text tower: seconds to embed on 2 shared cores
FRAME_PERIOD_S = 0.05       # frames offered at 20 Hz
ANSWER_S = 1.0              # the callback waits 50 ms for a change being built; the rest is the service round trip


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('live')
    rclpy.init()
    ros = RosClient('live_test_client')
    node = NodeProcess(tmp, 'qos:=reliable', 'backend:=torch', f'labels_dirs:=[{tmp}]', 'warmup:=false',
                       f'text_cache_dir:={tmp}/cache', namespace=NS)
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(ros.node, f'{NS}/novic_node')
    assert client.wait_for_services(timeout_sec=90), node.log()
    stream = Stream(ros, node)
    yield ros, node, client, tmp, stream
    stream.stop()
    node.stop()
    ros.close()
    rclpy.try_shutdown()


class Stream:
    """Frames at 20 Hz on the node's camera topic; labels and diagnostics collected with arrival times."""

    def __init__(self, ros, node):
        self.labels = ros.subscribe(Classification, f'{NS}/labels')
        self.diag = ros.subscribe(DiagnosticArray, '/diagnostics')
        self.info = ros.subscribe(VisionInfo, f'{NS}/vision_info', QoSProfile(
            depth=20, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.pub = ros.publisher(Image, f'{NS}/image')
        ros.wait_matched(self.pub, node)
        rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        data, step = rgb_to_raw(rgb, 'rgb8')
        self._msg = Image(height=48, width=64, encoding='rgb8', step=step, data=data)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.labels.wait_for(lambda m: len(m) >= 3, 60), node.log()

    def _run(self):
        i = 0
        while not self._stop.wait(FRAME_PERIOD_S):
            self._msg.header.frame_id = f'f{i}'
            self.pub.publish(self._msg)
            i += 1

    def stop(self):
        self._stop.set()
        self._thread.join()


def call(fut, timeout=30.0):
    end = time.monotonic() + timeout
    while not fut.done():
        assert time.monotonic() < end, 'no answer from the parameter service'
        time.sleep(0.002)
    return fut.result()


def timed(fut):
    t0 = time.monotonic()
    return call(fut), time.monotonic() - t0


def values(client, *names):
    return {n: v for n, v in zip(names, call(client.get_parameters(list(names))).values)}


def diag_values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def ours(msgs):
    return [(m, diag_values(s)) for m in msgs for s in m.status if s.name.startswith(f'{NS}/novic_node')]


def test_a_half_applied_request_says_parameters_apply_one_at_a_time(world):
    ros, node, client, tmp, stream = world
    results = call(client.set_parameters([Parameter('mode', value='prompted'),
                                          Parameter('labels', value=['cup', 'mug'])])).results
    assert not results[0].successful and 'needs a label list' in results[0].reason
    assert 'one at a time' in results[0].reason and 'set_parameters_atomically' in results[0].reason
    assert results[1].successful
    assert values(client, 'mode')['mode'].string_value == 'generate'
    assert call(client.set_parameters([Parameter('labels', Parameter.Type.STRING_ARRAY, [])])).results[0].successful


def test_a_change_that_fails_while_being_built_leaves_the_old_settings_and_says_why(world):
    ros, node, client, tmp, stream = world
    bad = tmp / 'long-bad.jsonl'
    good = 90000                # reading and parsing takes far longer than the callback waits (50 ms)
    bad.write_text(''.join(json.dumps({'label': f'noun {i}'}) + '\n' for i in range(good)) + '{"label": 5}\n')
    (result, took) = timed(client.set_parameters_atomically([Parameter('labels_file', value=str(bad)),
                                                            Parameter('mode', value='prompted')]))
    assert result.result.successful and took < ANSWER_S, (result.result.reason, took)     # accepted, pending
    line = f'line {good + 1}'

    def failed(msgs):
        return any(line in v.get('parameter_change_failed', '') for _, v in ours(msgs))
    assert stream.diag.wait_for(failed, 60), node.log()
    # The parameters are back to the settings in force, and the node labels on in generate mode.
    end = time.monotonic() + 10
    while values(client, 'mode')['mode'].string_value != 'generate':
        assert time.monotonic() < end, node.log()
        time.sleep(0.1)
    assert values(client, 'labels_file')['labels_file'].string_value == ''
    assert 'failed while being built' in node.log() and line in node.log()
    n = len(stream.labels)
    assert stream.labels.wait_for(lambda m: len(m) >= n + 3, 30)
    assert all(len(m.results) == 3 for m in stream.labels.items[n:])


def test_a_slow_label_change_does_not_stop_frames_or_diagnostics(world):
    ros, node, client, tmp, stream = world
    nouns = [f'thing number {i}' for i in range(N_LABELS)]
    (tmp / 'long.txt').write_text('\n'.join(nouns) + '\n')
    versions = [m.database_version for m in stream.info.items]
    before = max(versions)
    t_set = time.monotonic()
    result, took = timed(client.set_parameters_atomically([Parameter('labels_file', value=str(tmp / 'long.txt')),
                                                          Parameter('mode', value='prompted')]))
    assert result.result.successful and took < ANSWER_S, (result.result.reason, took)
    # While it is being built, an independent change (rate_hz) applies at once.
    rate, rate_took = timed(client.set_parameters([Parameter('rate_hz', value=100.0)]))
    assert rate.results[0].successful and rate_took < ANSWER_S
    assert stream.info.wait_for(lambda m: any(x.database_version > before for x in m), 180), node.log()
    t_applied = next(t for m, t in zip(stream.info.items, stream.info.times) if m.database_version > before)
    new = [m for m in stream.info.items if m.database_version > before][0]
    assert f'label list of {N_LABELS} labels' in new.database_location
    during = [(t, m) for m, t in zip(stream.labels.items, stream.labels.times) if t_set <= t <= t_applied]
    diag_during = [t for m, t in zip(stream.diag.items, stream.diag.times) if t_set <= t <= t_applied and ours([m])]
    pending_seen = any('pending for' in v['parameter_change'] for m, t in zip(stream.diag.items, stream.diag.times)
                       if t_set <= t <= t_applied for _, v in ours([m]))
    label_times = [t_set] + [t for t, _ in during] + [t_applied]
    diag_times = [t_set] + diag_during + [t_applied]
    gap = max(np.diff(label_times))
    diag_gap = max(np.diff(diag_times))
    print(f"\nslow change: {N_LABELS} labels built in {t_applied - t_set:.1f} s; answered in {took * 1000:.0f} ms "
          f"(rate_hz meanwhile: {rate_took * 1000:.0f} ms); {len(during)} frames labelled meanwhile, longest gap "
          f"between labels {gap:.2f} s, between diagnostics {diag_gap:.2f} s")
    assert t_applied - t_set > 1.0, "the change was too quick to tell anything: raise N_LABELS"
    assert pending_seen
    # Frames kept being labelled with the old settings (generate mode: not from the new list), and
    # diagnostics kept coming at 1 Hz. The settings thread gives way to the worker (it embeds a few
    # labels at a time and waits while a batch is computed; torch's text tower on one thread), so
    # nearly every frame offered is labelled and no gap comes near the 0.23-0.5 s measured before it
    # did (2 shared cores, load 5-8: 0.07-0.12 s). Loose bounds: CI's cores are shared too; the 100 ms
    # figure is novic-bench's (section lifecycle).
    offered = (t_applied - t_set) / FRAME_PERIOD_S
    assert len(during) >= offered / 2, (len(during), offered)
    assert all(not {r.class_id for r in m.results} <= set(nouns) for _, m in during[:-3])
    assert gap < 0.3 and diag_gap < 1.5, (gap, diag_gap)
    # Then the new list is in use.
    n = len(stream.labels)
    assert stream.labels.wait_for(lambda m: len(m) >= n + 3, 30)
    assert all({r.class_id for r in m.results} <= set(nouns) for m in stream.labels.items[n + 1:])
    assert values(client, 'rate_hz')['rate_hz'].double_value == 100.0
