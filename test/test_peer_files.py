"""A careless or hostile peer on the domain against a real novic_node process: the files it names
through `labels_file` (outside labels_dirs, through a symlink, a FIFO, a device, a 2 GB sparse file,
bad JSONL) are refused at once with a reason that names the rule and the fix; absurd `rate_hz`
values are refused; the node keeps labelling; and nothing of those files' content appears in any
message the node publishes (every one of its topics, /diagnostics and /rosout, read as raw bytes)."""
from __future__ import annotations

import importlib
import os
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification, VisionInfo  # noqa: E402

from novic_ros.core.label_files import MAX_LABELS  # noqa: E402
from novic_ros.frames.conversion import rgb_to_raw  # noqa: E402
from novic_ros.ros.memory import rss_mb  # noqa: E402
from ros_helpers import NodeProcess, RosClient  # noqa: E402

NS = '/peer'
SECRET = 'SECRET-c0ffee-'          # in every file the node must not read out
CALL_S = 2.0                        # a refusal comes back at once: no read, no wait on a FIFO


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('peer')
    allowed, outside = tmp / 'allowed', tmp / 'outside'
    allowed.mkdir()
    outside.mkdir()
    rclpy.init()
    ros = RosClient('peer_test_client')
    # /dev among the folders: the file-type rule alone must keep devices out.
    node = NodeProcess(tmp, 'qos:=reliable', 'backend:=torch', f'labels_dirs:=[{allowed}, /dev]', 'warmup:=false',
                       namespace=NS)
    heard = Heard(ros)
    yield ros, node, allowed, outside, heard
    node.stop()
    ros.close()
    rclpy.try_shutdown()


class Heard:
    """Every message on /rosout and on each topic the node publishes, as serialized bytes."""

    def __init__(self, ros: RosClient):
        self.ros = ros
        self.raw: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self.ros.node.create_subscription(Log, '/rosout', self._add('/rosout'), QoSProfile(
            depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL), raw=True)

    def _add(self, topic):
        self.raw[topic] = []

        def cb(data: bytes):
            with self._lock:
                self.raw[topic].append(data)
        return cb

    def follow_node(self) -> None:
        for topic, types in self.ros.node.get_publisher_names_and_types_by_node('novic_node', NS):
            if topic in self.raw or topic == '/rosout' or topic.endswith('/transition_event'):
                continue
            pkg, _, name = types[0].split('/')
            msg_type = getattr(importlib.import_module(f'{pkg}.msg'), name)
            qos = QoSProfile(
                depth=100,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if 'info' in topic else DurabilityPolicy.VOLATILE,
            )
            self.ros.node.create_subscription(msg_type, topic, self._add(topic), qos, raw=True)

    def containing(self, needle: bytes) -> list[str]:
        with self._lock:
            return [t for t, msgs in self.raw.items() if any(needle in m for m in msgs)]


def image_msg(seed: int, frame_id: str) -> Image:
    rgb = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    data, step = rgb_to_raw(rgb, 'rgb8')
    msg = Image(height=48, width=64, encoding='rgb8', step=step, data=data)
    msg.header.frame_id = frame_id
    return msg


def client_for(ros):
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(ros.node, f'{NS}/novic_node')
    assert client.wait_for_services(timeout_sec=90)
    return client


def call(fut, timeout=30.0):
    end = time.monotonic() + timeout
    while not fut.done():
        assert time.monotonic() < end, 'no answer from the parameter service'
        time.sleep(0.005)
    return fut.result()


def set_one(client, name, value):
    """(result, seconds to the answer) of one SetParameters call."""
    t0 = time.monotonic()
    result = call(client.set_parameters([Parameter(name, value=value)])).results[0]
    return result, time.monotonic() - t0


def labelled(ros, node, out, tag: str, timeout: float = 60.0) -> None:
    """The node still labels: frames sent now (one per 0.1 s: the node labels the newest) come back."""
    if not hasattr(ros, 'peer_pub'):
        ros.peer_pub = ros.publisher(Image, f'{NS}/image')
    ros.wait_matched(ros.peer_pub, node)
    end, i = time.monotonic() + timeout, 0
    while not any(x.header.frame_id.startswith(tag + '-') for x in list(out.items)):
        assert time.monotonic() < end and node.alive(), node.log()
        ros.peer_pub.publish(image_msg(i, f'{tag}-{i}'))
        i += 1
        out.wait_for(lambda m: any(x.header.frame_id.startswith(tag + '-') for x in m), 0.1)


def test_files_a_peer_names_are_refused_and_never_read_out(world):
    ros, node, allowed, outside, heard = world
    client = client_for(ros)
    out = ros.subscribe(Classification, f'{NS}/labels')
    labelled(ros, node, out, 'before')
    heard.follow_node()

    (outside / 'secret.txt').write_text(''.join(f'{SECRET}outside-{i}\n' for i in range(5)))
    (allowed / 'link.txt').symlink_to(outside / 'secret.txt')
    fifo = allowed / 'fifo.txt'
    os.mkfifo(fifo)
    sparse = allowed / 'huge.txt'
    with open(sparse, 'wb') as f:
        f.truncate(2 << 30)
    (allowed / 'bad.jsonl').write_text(f'{{"label": "{SECRET}jsonl"}}\n{{"label": 5}}\n')
    cases = {
        '/etc/passwd': 'outside the allowed folders',
        str(outside / 'secret.txt'): 'outside the allowed folders',
        str(allowed / 'link.txt'): 'outside the allowed folders',      # the symlink is resolved
        str(allowed / '..' / 'outside' / 'secret.txt'): 'outside the allowed folders',
        str(fifo): 'not a regular file',
        '/dev/zero': 'not a regular file',
        '/dev/null': 'not a regular file',
        str(sparse): f'{2 << 30} bytes, more than',
    }
    for path, rule in cases.items():
        for mode in ('generate', 'prompted'):
            result = call(client.set_parameters_atomically([Parameter('labels_file', value=path),
                                                            Parameter('mode', value=mode)])).result
            assert not result.successful and rule in result.reason, (path, result.reason)
            assert SECRET not in result.reason and 'root:' not in result.reason
        result, took = set_one(client, 'labels_file', path)
        assert not result.successful and rule in result.reason and took < CALL_S, (path, result.reason, took)
    assert (
        'labels_dirs' in call(client.set_parameters([Parameter('labels_file', value='/etc/passwd')])).results[0].reason
    )
    # Bad JSONL: refused naming the line (the path passes; the content does not), never a crash.
    bad = call(client.set_parameters_atomically([Parameter('labels_file', value=str(allowed / 'bad.jsonl')),
                                                 Parameter('mode', value='prompted')])).result
    assert not bad.successful and 'line 2' in bad.reason and SECRET not in bad.reason, bad.reason
    assert node.alive()
    labelled(ros, node, out, 'after')
    values = call(client.get_parameters(['labels_file', 'mode'])).values
    assert values[0].string_value == '' and values[1].string_value == 'generate'      # nothing changed

    # A good list of 40 labels: VisionInfo and the log give its count, hash and first labels, not all
    # (LabelInfo's class map and the labels themselves carry the list: an allowed file is the vocabulary).
    good = allowed / 'good.txt'
    good.write_text(''.join(f'label{i:02d}\n' for i in range(40)))
    info = ros.subscribe(VisionInfo, f'{NS}/vision_info', QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ok = call(client.set_parameters_atomically([Parameter('labels_file', value=str(good)),
                                                Parameter('mode', value='prompted')])).result
    assert ok.successful, ok.reason
    assert info.wait_for(lambda m: any('label list of 40 labels' in x.database_location for x in m), 30)
    location = [x.database_location for x in info.items if 'label list' in x.database_location][-1]
    assert 'sha256' in location and 'label00' in location and 'label03' not in location and str(good) in location
    labelled(ros, node, out, 'prompted')
    assert call(client.set_parameters([Parameter('mode', value='generate')])).results[0].successful
    time.sleep(1.5)             # a diagnostics period, and /rosout's last lines
    for needle in (SECRET.encode(), b'root:x:0'):
        assert heard.containing(needle) == [], f"{needle} heard on {heard.containing(needle)}"
    assert len(heard.raw) >= 4 and heard.raw['/rosout'], sorted(heard.raw)     # we did listen
    assert [t for t in heard.containing(b'label39') if not t.endswith(('/label_info', '/labels'))] == []
    assert SECRET not in node.log() and 'root:x:0' not in node.log() and 'label39' not in node.log()


def test_absurd_rates_are_refused_and_labelling_goes_on(world):
    ros, node, _, _, _ = world
    client = client_for(ros)
    out = ros.subscribe(Classification, f'{NS}/labels')
    for value in (1e-300, 1e-6, 0.009, -1.0, 1e9, float('inf'), float('nan')):
        result, took = set_one(client, 'rate_hz', value)
        assert not result.successful and took < CALL_S, (value, result.reason)
    assert 'at least 0.01' in set_one(client, 'rate_hz', 1e-300)[0].reason
    assert not set_one(client, 'rate_hz', 'fast')[0].successful          # wrong type
    assert call(client.get_parameters(['rate_hz'])).values[0].double_value == 0.0
    labelled(ros, node, out, 'rate')
    assert node.alive()


def test_a_million_labels_are_refused_and_a_long_unused_list_is_not_embedded(world):
    """A million labels are refused by the count cap. rclpy turns the request into Python objects
    before the node's callback sees it: that heap stays with the process for reuse, so a second such
    request costs (almost) nothing more. 100,000 labels in generate mode are accepted at once but
    neither kept in the classifier's options nor embedded."""
    ros, node, _, _, _ = world
    client = client_for(ros)
    out = ros.subscribe(Classification, f'{NS}/labels')
    rss = [rss_mb(node.proc.pid)]
    for i in range(2):
        result, _ = set_one(client, 'labels', [f'noun {i} {j}' for j in range(1_000_000)])
        assert not result.successful and f'more than the {MAX_LABELS} allowed' in result.reason
        time.sleep(0.5)
        rss.append(rss_mb(node.proc.pid))
    result, took = set_one(client, 'labels', [f'noun {i}' for i in range(MAX_LABELS)])
    assert result.successful and took < 10 * CALL_S, (result.reason, took)    # 100k strings over DDS
    labelled(ros, node, out, 'million')
    time.sleep(0.5)
    rss.append(rss_mb(node.proc.pid))
    print(f"\nRSS {' -> '.join(f'{r:.0f}' for r in rss)} MB (1M labels refused twice, then 100k accepted in "
          f"generate mode in {took:.2f} s)")
    assert rss[2] - rss[1] < 50 and rss[3] - rss[2] < 50, rss        # not per request, not per label
    assert all(not r.class_id.startswith('noun ') for m in out.items for r in m.results)
    assert set_one(client, 'labels', ['cup'])[0].successful
