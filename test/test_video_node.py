"""novic_node on an H.264 camera: a toy-world shot encoded with PyAV, written into a bag by make-bag
and streamed as foxglove_msgs/CompressedVideo by a separate camera process that joins late and loses
a packet. The node labels the pictures from the first keyframe on and again from the keyframe after
the loss; it tracks the object (one id across the loss), draws it as ImageAnnotations (checked field
by field against the Detection2DArray of the same frame), and latches LabelInfo beside VisionInfo,
republished with it when the label list changes."""
from __future__ import annotations

import json
import time

import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from foxglove_msgs.msg import ImageAnnotations, PointsAnnotation  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from vision_msgs.msg import Classification, Detection2DArray, LabelInfo, VisionInfo  # noqa: E402

from novic_ros.cli.eval import main as eval_main  # noqa: E402
from novic_ros.ros.image_annotations import caption  # noqa: E402
from novic_ros.ros.stock_camera import results  # noqa: E402
from ros_helpers import NodeProcess, RosClient  # noqa: E402
from test_video_bags import FRAMES, NOUN, apple_shot  # noqa: E402
from video_camera import start_video_camera  # noqa: E402

NS = '/vid'
LABELS = [NOUN, 'pear', 'banana', 'car', 'dog', 'tomato']
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope='module')
def video_bag(tmp_path_factory):
    from PIL import Image
    folder = tmp_path_factory.mktemp('cam') / 'frames'
    folder.mkdir()
    for i, rgb in enumerate(apple_shot()):
        Image.fromarray(rgb).save(folder / f"{i:03d}.png")
    out = folder.parent / 'bag'
    assert eval_main(['make-bag', str(folder), str(out), '--transport', 'h264', '--keyframe-interval', '10',
                      '--no-progress']) == 0
    return out


def diag_values(msgs) -> dict[str, str]:
    values = {}
    for m in msgs:
        for st in m.status:
            if st.name.startswith(f'{NS}/novic_node'):
                values.update({kv.key: kv.value for kv in st.values})
    return values


def test_the_node_labels_tracks_and_annotates_an_h264_camera(video_bag, tmp_path):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    rclpy.init()
    ros = RosClient('video_test_client')
    node = NodeProcess(tmp_path, 'model:=toy', 'backend:=torch', 'transport:=foxglove', 'objects:=true',
                       'mode:=prompted', f"labels:={json.dumps(LABELS)}", 'min_score:=0.01', namespace=NS)
    camera = None
    try:
        labels = ros.subscribe(Classification, f'{NS}/labels', 50)
        objects = ros.subscribe(Detection2DArray, f'{NS}/objects', 50)
        annotations = ros.subscribe(ImageAnnotations, f'{NS}/annotations', 50)
        label_info = ros.subscribe(LabelInfo, f'{NS}/label_info', LATCHED)
        vision_info = ros.subscribe(VisionInfo, f'{NS}/vision_info', LATCHED)
        diagnostics = ros.subscribe(DiagnosticArray, '/diagnostics')

        # LabelInfo, latched beside VisionInfo: the label list in order, the threshold, one stamp.
        assert label_info.wait_for(len, 120) and vision_info.wait_for(len, 10), node.log()
        info = label_info.items[-1]
        assert [(c.class_id, c.class_name) for c in info.class_map] == list(enumerate(LABELS))
        assert info.threshold == pytest.approx(0.01) and info.header.stamp == vision_info.items[-1].header.stamp

        # The camera joins at packet 3 (frames 3-9 come before the first keyframe) and loses packet 13.
        camera = start_video_camera(video_bag, f'{NS}/image/foxglove', tag='cam', start=3, lost=[13], wait_s=120)
        (sent,) = results(camera, timeout=180)
        assert len(sent['sent']) == FRAMES - 4, sent
        index = {ns: i for i, ns in sent['sent']}
        expected = set(range(10, 13)) | set(range(20, 30))

        def packet(header) -> int:
            assert header.frame_id == 'cam'
            return index[header.stamp.sec * 1_000_000_000 + header.stamp.nanosec]
        labels.wait_for(lambda m: {packet(x.header) for x in m} >= expected, 30)
        got = {packet(m.header): m for m in labels.items}
        # Never a picture from before the first keyframe or from the damaged chain; the newest-picture
        # policy may skip a picture while the worker is busy, so nearly all, not all, of the good ones.
        assert set(got) <= expected, sorted(set(got) - expected)
        assert len(got) >= 0.8 * len(expected), sorted(got)
        tops = [m.results[0].class_id for m in got.values()]
        assert tops.count(NOUN) >= 0.8 * len(tops), tops

        # One track for the apple, through the loss (0.8 s without a picture < track_timeout_s).
        assert objects.wait_for(lambda m: len(m) >= len(got), 20)
        apple_ids = [d.id for m in objects.items for d in m.detections if d.results[0].hypothesis.class_id == NOUN]
        assert apple_ids and all(apple_ids)
        main_id = max(set(apple_ids), key=apple_ids.count)
        assert apple_ids.count(main_id) >= 0.8 * len(apple_ids), apple_ids
        seen = {packet(m.header) for m in objects.items if any(d.id == main_id for d in m.detections)}
        assert seen & {10, 11, 12} and seen & set(range(20, 30)), seen

        # ImageAnnotations, field by field against the detections of the same frame.
        assert annotations.wait_for(len, 10)
        by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in objects.items}
        checked = 0
        for a in annotations.items:
            det = by_stamp[(a.timestamp.sec, a.timestamp.nanosec)]
            assert [(kv.key, kv.value) for kv in a.metadata] == [('frame_id', det.header.frame_id)]
            assert len(a.points) == len(a.texts) == len(det.detections) and not a.circles
            for p, t, d in zip(a.points, a.texts, det.detections):
                b = d.bbox
                x0, y0 = b.center.position.x - b.size_x / 2, b.center.position.y - b.size_y / 2
                x1, y1 = x0 + b.size_x, y0 + b.size_y
                assert p.type == PointsAnnotation.LINE_LOOP and p.thickness > 0 and p.outline_color.a == 1.0
                corners = [c for q in p.points for c in (q.x, q.y)]
                assert corners == pytest.approx([x0, y0, x1, y0, x1, y1, x0, y1])
                assert p.timestamp == a.timestamp == t.timestamp
                assert {kv.key: kv.value for kv in p.metadata}['id'] == d.id
                hyp = d.results[0].hypothesis
                assert t.text == f"#{d.id} {hyp.class_id} {hyp.score:.2f}" == caption_of(d)
                assert t.position.x == pytest.approx(x0) and t.font_size >= 12
                bg, line = t.background_color, p.outline_color
                assert (bg.r, bg.g, bg.b) == (line.r, line.g, line.b) and 0.5 < bg.a < 1.0      # the track's colour
            checked += 1
        assert checked >= 5

        # Diagnostics count the stream's keyframe handling and the tracks.
        def counted(msgs):
            v = diag_values(msgs)
            return (v.get('video_before_keyframe') == '7' and v.get('video_recoveries') == '1'
                    and v.get('annotations_published') == str(len(annotations)))
        assert diagnostics.wait_for(counted, 10), diag_values(diagnostics.items)
        v = diag_values(diagnostics.items)
        assert int(v['video_losses']) == 1 and int(v['video_skipped_after_loss']) == 6
        assert int(v['tracks_started']) >= 1
        assert v['video decoder /vid/image/foxglove'].startswith('h264')

        # A new label list: a new vocabulary version, with its LabelInfo (same stamp).
        client = AsyncParameterClient(ros.node, f'{NS}/novic_node')
        assert client.wait_for_services(timeout_sec=30)
        fut = client.set_parameters([Parameter('labels', value=['kiwi', NOUN])])
        end = time.monotonic() + 60
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.05)
        assert fut.result().results[0].successful
        assert label_info.wait_for(lambda m: len(m) >= 2, 20) and vision_info.wait_for(lambda m: len(m) >= 2, 5)
        assert [c.class_name for c in label_info.items[-1].class_map] == ['kiwi', NOUN]
        assert vision_info.items[-1].database_version == vision_info.items[0].database_version + 1
        assert label_info.items[-1].header.stamp == vision_info.items[-1].header.stamp
    finally:
        if camera is not None and camera.poll() is None:
            camera.kill()
        node.stop()
        ros.close()
        rclpy.try_shutdown()


def caption_of(d) -> str:
    from novic_ros.ros.image_annotations import Annotated
    hyp = d.results[0].hypothesis
    return caption(Annotated((0, 0, 1, 1), hyp.class_id, hyp.score, d.id))


def test_label_map_numbers_the_list_or_the_labels_named_so_far():
    from novic_ros.params import ModelParams
    from novic_ros.ros.label_info import LabelMap
    stamp = VisionInfo().header.stamp
    m = LabelMap()
    m.reset(ModelParams(mode='prompted', labels=['cup', 'mug', 'cup'], min_score=0.2).to_options())
    assert m.active and not m.add(['jar'])                     # a list is fixed: nothing is added
    msg = m.message(stamp)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(0, 'cup'), (1, 'mug')]
    assert msg.threshold == pytest.approx(0.2)
    m.reset(ModelParams(mode='hybrid').to_options())
    assert len(m) == 0 and m.add(['dog', 'cat', 'dog']) and m.grown and not m.add(['cat', ''])
    assert [(c.class_id, c.class_name) for c in m.message(stamp).class_map] == [(0, 'dog'), (1, 'cat')]
    assert not m.grown                                          # published: nothing new since
    m.reset(ModelParams(mode='generate').to_options())
    assert not m.active and not m.add(['dog'])
