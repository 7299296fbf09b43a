"""novic_node as a managed lifecycle node, and live vocabulary switching: the real node process,
driven over the standard lifecycle services (<node>/change_state, <node>/get_state) and parameter
services, as a lifecycle manager and `ros2 param set` drive it."""
from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification, VisionInfo  # noqa: E402

from novic_ros.ros.memory import rss_mb  # noqa: E402
from novic_ros.training import toy_world  # noqa: E402
from ros_helpers import NODE_MODEL, NodeProcess, RosClient  # noqa: E402
from test_node import image_msg, renders  # noqa: E402

THREE = ['cup', 'bottle', 'keyboard']          # none of them a toy-world noun: the decoder never says them
assert not set(THREE) & set(toy_world.NOUNS)
INFO_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    client = RosClient('novic_lifecycle_test')
    yield client
    client.close()
    rclpy.try_shutdown()


def wait(fut, timeout=120.0):
    end = time.monotonic() + timeout
    while not fut.done():
        if time.monotonic() > end:
            raise AssertionError(f"no answer within {timeout}s")
        time.sleep(0.02)
    return fut.result()


class Managed:
    """What a lifecycle manager does: change_state and get_state calls on the node's services."""

    def __init__(self, ros, node_name: str, node: NodeProcess):
        self.change = ros.node.create_client(ChangeState, f'{node_name}/change_state')
        self.get = ros.node.create_client(GetState, f'{node_name}/get_state')
        end = time.monotonic() + 90
        while not (self.change.service_is_ready() and self.get.service_is_ready()):
            assert node.alive() and time.monotonic() < end, node.log()
            time.sleep(0.05)

    def state(self) -> str:
        return wait(self.get.call_async(GetState.Request())).current_state.label

    def transition(self, transition_id: int) -> bool:
        req = ChangeState.Request()
        req.transition.id = transition_id
        return wait(self.change.call_async(req)).success


def publish_until(pub, out, frame, prefix, count, node, timeout=60.0):
    """Publish frames one by one until `count` answers with `prefix` ids arrived; the ids sent."""
    sent = []
    end = time.monotonic() + timeout
    while sum(m.header.frame_id.startswith(prefix) for m in out.items) < count:
        assert time.monotonic() < end, node.log()
        msg = image_msg(frame, frame_id=f'{prefix}{len(sent)}')
        pub.publish(msg)
        sent.append(msg.header.frame_id)
        time.sleep(0.1)
    return sent


def test_lifecycle_transitions_gate_the_labels(ros, tmp_path):
    """configure, activate, deactivate, activate, deactivate, cleanup, shutdown over the services: labels
    flow only while active, frames sent while inactive are never answered, cleanup frees the model."""
    node = NodeProcess(tmp_path, 'autostart:=false', 'qos:=reliable', 'backend:=torch', 'mode:=prompted',
                       f'labels:=[{", ".join(THREE)}]', 'publish_overlay:=true', f'text_cache_dir:={tmp_path}/cache',
                       namespace='/lc')
    try:
        managed = Managed(ros, '/lc/novic_node', node)
        out = ros.subscribe(Classification, '/lc/labels')
        diag = ros.subscribe(DiagnosticArray, '/diagnostics')
        pub = ros.publisher(Image, '/lc/image')
        frame = renders(1)[0]
        assert managed.state() == 'unconfigured'
        for i in range(3):
            pub.publish(image_msg(frame, frame_id=f'unconfigured-{i}'))
        rss_unconfigured = rss_mb(node.proc.pid)
        assert managed.transition(Transition.TRANSITION_CONFIGURE), node.log()
        assert managed.state() == 'inactive'
        rss_configured = rss_mb(node.proc.pid)
        # What the configure loaded is frozen out of the collector's scans (memory.settle_loaded): a full
        # collection over it (WordNet, the models) held the interpreter lock for 200 ms.
        assert diag.wait_for(lambda ms: any(_value(s, 'lifecycle_state') == 'inactive' and
                                            int(_value(s, 'gc_frozen_objects')) > 10_000
                                            for m in ms for s in _ours(m)), 10), node.log()
        for i in range(5):                                      # inactive: no subscription, nothing answered
            pub.publish(image_msg(frame, frame_id=f'inactive-{i}'))
            time.sleep(0.1)
        assert pub.get_subscription_count() == 0

        assert managed.transition(Transition.TRANSITION_ACTIVATE)
        assert managed.state() == 'active'
        ros.wait_matched(pub, node)
        publish_until(pub, out, frame, 'active1-', 3, node)
        assert all(sorted(r.class_id for r in m.results) == sorted(THREE) for m in out.items)
        # Nobody watches ~/image_labeled yet: nothing drawn. Then a subscriber gets overlays.
        assert diag.wait_for(lambda ms: any(_value(s, 'lifecycle_state') == 'active' and
                                            int(_value(s, 'frames_published')) >= 3 for m in ms for s in _ours(m)), 10)
        last = [s for m in diag.items for s in _ours(m)][-1]
        assert _value(last, 'overlays_published') == '0'
        overlay = ros.subscribe(Image, '/lc/novic_node/image_labeled')
        end = time.monotonic() + 30
        while not overlay.items and time.monotonic() < end:
            pub.publish(image_msg(frame, frame_id='watched'))
            time.sleep(0.2)
        assert overlay.items and overlay.items[0].encoding == 'rgb8'

        # A node started in prompted mode switches to the open vocabulary live: its decoder was loaded.
        client = AsyncParameterClient(ros.node, '/lc/novic_node')
        assert client.wait_for_services(timeout_sec=30)
        assert wait(client.set_parameters([Parameter('mode', value='generate')])).results[0].successful
        publish_until(pub, out, frame, 'generate-', 2, node)
        assert not {
            r.class_id for m in out.items if m.header.frame_id.startswith('generate-') for r in m.results
        } & set(THREE)

        assert managed.transition(Transition.TRANSITION_DEACTIVATE)
        assert managed.state() == 'inactive'
        answered = len(out)
        for i in range(5):
            pub.publish(image_msg(frame, frame_id=f'paused-{i}'))
            time.sleep(0.1)
        assert managed.transition(Transition.TRANSITION_ACTIVATE)
        ros.wait_matched(pub, node)
        publish_until(pub, out, frame, 'active2-', 2, node)
        ids = [m.header.frame_id for m in out.items]
        # Frames sent while inactive were ignored, not queued for later.
        assert not [i for i in ids if i.startswith(('unconfigured-', 'inactive-', 'paused-'))]
        assert any(i.startswith('active2-') for i in ids[answered:])

        assert managed.transition(Transition.TRANSITION_DEACTIVATE)
        assert not managed.transition(Transition.TRANSITION_ACTIVATE + 100)     # no such transition: refused
        assert managed.transition(Transition.TRANSITION_CLEANUP)
        assert managed.state() == 'unconfigured'
        rss_cleaned = rss_mb(node.proc.pid)
        print(f"VmRSS unconfigured {rss_unconfigured:.0f} MB, configured {rss_configured:.0f} MB, "
              f"after cleanup {rss_cleaned:.0f} MB")
        assert 'cleaned up: model freed, resident memory' in node.log()
        assert rss_cleaned < rss_configured
        assert diag.wait_for(lambda ms: any(_value(s, 'lifecycle_state') == 'unconfigured' and
                                            _value(s, 'gc_frozen_objects') == '0' for m in ms for s in _ours(m)), 10)

        # Shutdown from unconfigured; configure again first, to shut down from inactive too would need a
        # second process: the finalized state is final.
        assert managed.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert managed.state() == 'finalized'
        assert node.alive()
    finally:
        node.stop()


def test_shutdown_from_active_and_failed_configure(ros, tmp_path):
    bad = NodeProcess(tmp_path, 'autostart:=false', 'model:=no_such_variant', namespace='/lcbad')
    good = NodeProcess(tmp_path, 'qos:=reliable', 'backend:=torch', namespace='/lcgood')     # autostart
    try:
        managed = Managed(ros, '/lcbad/novic_node', bad)
        assert not managed.transition(Transition.TRANSITION_CONFIGURE)
        assert managed.state() == 'unconfigured' and bad.alive()
        assert 'configure failed' in bad.log() and 'no_such_variant' in bad.log()

        started = Managed(ros, '/lcgood/novic_node', good)
        end = time.monotonic() + 90
        while started.state() != 'active':
            assert time.monotonic() < end, good.log()
            time.sleep(0.2)
        assert started.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert started.state() == 'finalized'
    finally:
        bad.stop()
        good.stop()


def test_switching_vocabularies_while_frames_stream(ros, tmp_path):
    """generate -> prompted (three labels) -> generate over the parameter service while frames stream:
    every frame sent after a switch came into use (VisionInfo's new version) is labelled with the new
    vocabulary, no message mixes
    them, VisionInfo's version goes up at each switch, and bad values are refused, changing nothing."""
    node = NodeProcess(tmp_path, 'qos:=reliable', 'backend:=torch', 'top_k:=3', f'text_cache_dir:={tmp_path}/cache',
                       namespace='/sw')
    client = AsyncParameterClient(ros.node, '/sw/novic_node')
    try:
        assert client.wait_for_services(timeout_sec=90), node.log()
        out = ros.subscribe(Classification, '/sw/labels')
        info = ros.subscribe(VisionInfo, '/sw/vision_info', INFO_QOS)
        pub = ros.publisher(Image, '/sw/image')
        ros.wait_matched(pub, node)
        assert info.wait_for(lambda m: len(m) >= 1, 30)
        assert info.items[0].database_version == 1 and 'open vocabulary' in info.items[0].database_location
        # Where the model came from: the toy variant's decoder folder, or its bundle (the torch-free run)
        said = ('variant toy', 'decoder') if NODE_MODEL == 'toy' else (f'bundle {NODE_MODEL}',)
        assert all(s in info.items[0].method for s in said), info.items[0].method

        frames = renders(4)
        phase = ['generate']                # what the node is known to use for frames sent now
        sent_in: dict[str, str] = {}
        stop = threading.Event()

        def stream():
            i = 0
            while not stop.is_set():
                fid = f'f-{i}'
                sent_in[fid] = phase[0]
                pub.publish(image_msg(frames[i % len(frames)], frame_id=fid))
                i += 1
                time.sleep(0.03)
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()

        def switch(**values):
            # A change that embeds labels may be answered before it is in use (README: What a change
            # costs): the new vocabulary is known to be in use when VisionInfo's version goes up.
            phase[0] = 'switching'
            version = max(m.database_version for m in info.items)
            result = wait(client.set_parameters_atomically([Parameter(k, value=v) for k, v in values.items()])).result
            if result.successful:
                assert info.wait_for(lambda m: max(x.database_version for x in m) > version, 60), node.log()
                phase[0] = values.get('mode', '?')
            return result

        def refused(name, value, type_=None):
            p = Parameter(name, type_, value) if type_ else Parameter(name, value=value)
            return wait(client.set_parameters([p])).results[0]

        try:
            before = len(out)
            assert out.wait_for(lambda m: len(m) >= before + 3, 60), node.log()
            assert switch(labels=THREE, mode='prompted').successful
            before = len(out)
            assert out.wait_for(lambda m: len(m) >= before + 5, 60), node.log()
            bad = {
                'mode': refused('mode', 'sorting'),
                'labels': refused('labels', [], Parameter.Type.STRING_ARRAY),       # empty list in prompted mode
                'prompt_template': refused('prompt_template', 'a photo of a thing'),
            }
            before = len(out)
            assert out.wait_for(lambda m: len(m) >= before + 3, 60)
            assert switch(mode='generate').successful
            before = len(out)
            assert out.wait_for(lambda m: len(m) >= before + 5, 60), node.log()
        finally:
            stop.set()
            streamer.join()

        assert not bad['mode'].successful and 'sorting' in bad['mode'].reason
        assert not bad['labels'].successful and 'label list' in bad['labels'].reason
        assert not bad['prompt_template'].successful and '{}' in bad['prompt_template'].reason
        kinds = {'generate': 0, 'prompted': 0}
        for m in out.items:
            got = {r.class_id for r in m.results}
            kind = 'prompted' if got == set(THREE) else 'generate' if not got & set(THREE) else 'mixed'
            assert kind != 'mixed', f"message computed with mixed settings: {got}"
            expected = sent_in.get(m.header.frame_id, 'switching')
            assert expected in ('switching', kind), f"{m.header.frame_id} sent in {expected}, labelled {kind}: {got}"
            kinds[kind] += 1
        assert kinds['prompted'] >= 5 and kinds['generate'] >= 8
        # The refused changes changed nothing: still the settings of the last good change.
        values = wait(client.get_parameters(['mode', 'labels', 'prompt_template'])).values
        assert values[0].string_value == 'generate' and list(values[1].string_array_value) == THREE
        assert values[2].string_value == 'a photo of a {}.'

        versions = [m.database_version for m in info.items]
        assert versions == [1, 2, 3], versions          # one per switch, none for the refused changes
        prompted_info = info.items[1].database_location
        assert 'label list of 3 labels' in prompted_info and all(l in prompted_info for l in THREE)
    finally:
        node.stop()


def test_a_second_start_reads_the_label_embeddings_from_disk(ros, tmp_path):
    labels_file = tmp_path / 'labels.txt'
    labels_file.write_text('\n'.join(toy_world.NOUNS) + '\n')
    logs = []
    for run in range(2):
        node = NodeProcess(tmp_path, 'backend:=torch', 'mode:=prompted', f'labels_file:={labels_file}',
                           f'labels_dirs:=[{tmp_path}]',
                           f'text_cache_dir:={tmp_path}/cache', namespace=f'/cache{run}')
        try:
            end = time.monotonic() + 120
            while 'label embeddings:' not in node.log():
                assert node.alive() and time.monotonic() < end, node.log()
                time.sleep(0.2)
            logs.append(node.log())
        finally:
            node.stop()
    n = len(toy_world.NOUNS)
    assert f"label embeddings: {n} labels, {n} computed" in logs[0]
    assert f"label embeddings: {n} labels, 0 computed, {n} from the cache" in logs[1]


def test_bond_with_a_nav2_lifecycle_manager(ros, tmp_path):
    """What nav2_lifecycle_manager (bond_timeout > 0) does after activating a node: join the bond on
    `bond` in the node's namespace with id = node name and wait for it to form; deactivation ends it
    cleanly (active false) rather than by silence, which the manager would take for a crash."""
    from bond.msg import Status
    node = NodeProcess(tmp_path, 'autostart:=false', 'backend:=torch', namespace='/bd')
    heard = ros.subscribe(Status, '/bd/bond', QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    manager = ros.node.create_publisher(Status, '/bd/bond', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    stop = threading.Event()

    def heartbeat():                     # the manager's side, at nav2's default bond_heartbeat_period
        while not stop.is_set():
            manager.publish(Status(id='novic_node', instance_id='manager-1', active=True, heartbeat_timeout=4.0,
                                   heartbeat_period=0.25))
            time.sleep(0.25)
    beating = threading.Thread(target=heartbeat, daemon=True)
    ours = lambda msgs, active: [m for m in msgs if m.instance_id != 'manager-1' and m.active == active]  # noqa: E731
    try:
        managed = Managed(ros, '/bd/novic_node', node)
        beating.start()
        assert managed.transition(Transition.TRANSITION_CONFIGURE)
        time.sleep(1.0)
        assert not ours(heard.items, True)                      # no bond before activation
        assert managed.transition(Transition.TRANSITION_ACTIVATE)
        assert heard.wait_for(lambda m: len(ours(m, True)) >= 3, 30), node.log()
        beat = ours(heard.items, True)[0]
        assert beat.id == 'novic_node' and beat.heartbeat_timeout == pytest.approx(4.0)
        assert beat.heartbeat_period == pytest.approx(0.1) and beat.instance_id
        end = time.monotonic() + 30
        while 'bond novic_node formed with the lifecycle manager' not in node.log():
            assert time.monotonic() < end, node.log()
            time.sleep(0.1)
        assert managed.transition(Transition.TRANSITION_DEACTIVATE)
        assert heard.wait_for(lambda m: ours(m, False), 10)      # a clean end, not silence
        count = len(ours(heard.items, True))
        time.sleep(1.0)
        assert len(ours(heard.items, True)) == count             # and no heartbeats while inactive
    finally:
        stop.set()
        node.stop()


def _ours(msg):
    return [s for s in msg.status if s.name.startswith('/lc/')]


def _value(status, key: str) -> str:
    return next((kv.value for kv in status.values if kv.key == key), '')
