"""ros/label_outputs.py with a recording stand-in for the node: streams, stamps, live changes, no WordNet."""
from __future__ import annotations

import time

import pytest

pytest.importorskip('rclpy')
from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from novic_ros.core.frame_labels import FrameLabels, Label  # noqa: E402
from novic_ros.lexicon.wordnet import ROOT_ENV, WordNet  # noqa: E402
from novic_ros.params import NodeParams  # noqa: E402
from novic_ros.ros.label_outputs import CATEGORIES_TOPIC, STABLE_TOPIC, LabelOutputs  # noqa: E402
from conftest import needs_wordnet  # noqa: E402


class Recorder:
    def __init__(self, topic):
        self.topic, self.msgs = topic, []

    def publish(self, msg):
        self.msgs.append(msg)


class Logger:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(('info', text))

    def warning(self, text):
        self.lines.append(('warning', text))

    def debug(self, text):
        self.lines.append(('debug', text))


class FakeNode:
    """What LabelOutputs uses of a node: a logger, publishers and a timer."""

    def __init__(self):
        self.logger, self.pubs, self.timers, self.destroyed = Logger(), {}, [], []

    def get_logger(self):
        return self.logger

    def create_publisher(self, msg_type, topic, depth):
        self.pubs[topic] = Recorder(topic)
        return self.pubs[topic]

    def create_timer(self, period, callback):
        self.timers.append(callback)
        return callback

    def destroy_timer(self, timer):
        self.destroyed.append(timer)

    def destroy_publisher(self, pub):
        self.destroyed.append(pub)


class FakeLifecycleNode(FakeNode):
    """A lifecycle node's publishers are its own kind, made and destroyed through their own calls."""

    def create_publisher(self, *args):
        raise AssertionError("a lifecycle node's outputs must be lifecycle publishers")

    def create_lifecycle_publisher(self, msg_type, topic, depth):
        return FakeNode.create_publisher(self, msg_type, topic, depth)

    def destroy_lifecycle_publisher(self, pub):
        self.destroyed.append(('lifecycle', pub))


def header(frame_id, sec=0, nanosec=0):
    return Header(frame_id=frame_id, stamp=Time(sec=sec, nanosec=nanosec))


def labels(*pairs):
    return FrameLabels(tuple(Label(t, s) for t, s in pairs))


@pytest.fixture
def loaded(monkeypatch, wordnet):
    """LabelOutputs loads WordNet itself; hand it the session's copy instead of reading it again."""
    monkeypatch.setattr(WordNet, 'load', classmethod(lambda cls, root=None: wordnet))


@needs_wordnet
def test_streams_are_topic_and_frame_id_and_headers_are_copied(loaded):
    node = FakeNode()
    out = LabelOutputs(node, NodeParams())
    stable, cats = node.pubs[STABLE_TOPIC], node.pubs[CATEGORIES_TOPIC]
    t0 = time.monotonic()    # the expiry timer compares receipt times with the monotonic clock
    for i in range(5):      # two cameras multiplexed on one topic, one on another
        now = t0 + i / 10
        out.publish('/cam', header('left', 100, i * 100_000_000), labels(('dog', 0.6), ('wolf', 0.3), ('cat', 0.1)),
                    now, 2)
        out.publish('/cam', header('right', 100, i * 100_000_000), labels(('tractor', 0.9)), now, 2)
        out.publish('/other', header('left', 100, i * 100_000_000), labels(('pizza', 0.8)), now, 2)
    firsts = [m.results[0].class_id for m in stable.msgs[-3:]]
    assert firsts == ['dog', 'tractor', 'pizza']
    assert [m.header.frame_id for m in stable.msgs[-3:]] == ['left', 'right', 'left']
    assert stable.msgs[-3].header.stamp.nanosec == 400_000_000
    assert [r.class_id for r in stable.msgs[-3].results] == ['dog', 'wolf']            # top_k = 2
    assert [(r.class_id, round(r.score, 6)) for r in cats.msgs[-3].results] == [('animal', 1.0)]
    assert sorted(out.labeler.streams()) == [('/cam', 'left'), ('/cam', 'right'), ('/other', 'left')]
    # the timer drops streams that went quiet (by the clock the frames were received on)
    node.timers[0]()
    assert len(out.labeler.streams()) == 3
    out.labeler.expire(t0 + 0.4 + out.labeler.options.timeout_s + 0.1)
    assert out.labeler.streams() == []


@needs_wordnet
def test_unstamped_frames_are_timed_by_receipt(loaded):
    node = FakeNode()
    out = LabelOutputs(node, NodeParams.from_mapping({'stable_dwell_s': 0.0, 'stable_margin': 0.1}))
    out.publish('/cam', header('c'), labels(('dog', 0.9)), received=10.0, top_k=3)
    # 5 s later by the receipt clock: the old score decays by exp(-5) and the cat wins at once
    out.publish('/cam', header('c'), labels(('cat', 0.9)), received=15.0, top_k=3)
    assert node.pubs[STABLE_TOPIC].msgs[-1].results[0].class_id == 'cat'
    # ...while 0.1 s later it would not have
    out.publish('/cam', header('d'), labels(('dog', 0.9)), received=20.0, top_k=3)
    out.publish('/cam', header('d'), labels(('cat', 0.9)), received=20.1, top_k=3)
    assert node.pubs[STABLE_TOPIC].msgs[-1].results[0].class_id == 'dog'


@needs_wordnet
def test_live_changes_are_checked_before_anything_applies(loaded):
    node = FakeNode()
    params = NodeParams()
    out = LabelOutputs(node, params)
    with pytest.raises(ValueError, match="parameter 'categories'.*'vehicel'"):
        out.prepare(params.updated(categories=['vehicel'], stable_margin=0.5))
    assert out.labeler.options.margin == params.stable_margin            # nothing applied
    apply = out.prepare(params.updated(categories=['dog', 'animal'], stable_margin=0.5))
    assert out.labeler.options.margin == params.stable_margin            # not before apply()
    apply()
    assert out.labeler.options.margin == 0.5
    out.publish('/cam', header('c', 1), labels(('golden retriever', 0.7), ('cat', 0.3)), 1.0, 1)
    assert [(r.class_id, r.score) for r in node.pubs[CATEGORIES_TOPIC].msgs[-1].results] == \
        [('dog', pytest.approx(0.7)), ('animal', pytest.approx(0.3))]
    assert len(node.pubs[STABLE_TOPIC].msgs[-1].results) == 1
    out.destroy()
    assert set(node.destroyed) == {node.timers[0], node.pubs[STABLE_TOPIC], node.pubs[CATEGORIES_TOPIC]}


@needs_wordnet
def test_bad_categories_stop_the_start_naming_the_parameter(loaded):
    with pytest.raises(ValueError, match=r"parameter 'categories': category 'plant.n.09': 'plant' has 4 noun senses"):
        LabelOutputs(FakeNode(), NodeParams.from_mapping({'categories': ['plant.n.09']}))


def test_without_wordnet_stable_labels_go_on_and_categories_are_off(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))          # an empty folder: no WordNet there
    node = FakeNode()
    out = LabelOutputs(node, NodeParams())
    (level, text), = [l for l in node.logger.lines if l[0] == 'warning']
    assert 'no categories' in text and 'wordnet-base' in text
    out.publish('/cam', header('c', 1), labels(('Car', 0.5), ('car', 0.2), ('truck', 0.6)), 1.0, 3)
    assert [(r.class_id, round(r.score, 6)) for r in node.pubs[STABLE_TOPIC].msgs[-1].results] == \
        [('Car', 0.7), ('truck', 0.6)]                     # spellings merge (synonyms cannot)
    assert node.pubs[CATEGORIES_TOPIC].msgs == []
    out.prepare(NodeParams().updated(categories=['animal']))()     # accepted: nothing to check it against



@needs_wordnet
def test_a_lifecycle_node_gets_lifecycle_publishers(loaded):
    node = FakeLifecycleNode()
    out = LabelOutputs(node, NodeParams(), lifecycle=True)
    out.publish('/cam', header('c', 1), labels(('dog', 0.9)), time.monotonic(), 3)
    assert node.pubs[STABLE_TOPIC].msgs and node.pubs[CATEGORIES_TOPIC].msgs
    out.destroy()                       # cleanup
    assert ('lifecycle', node.pubs[STABLE_TOPIC]) in node.destroyed and out.labeler.streams() == []
