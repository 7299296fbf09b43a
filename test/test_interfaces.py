"""Our message copies (vision_msgs, bond, foxglove_msgs, ffmpeg_image_transport_msgs) are wire-compatible
with upstream: same type hashes."""
import json
import sys
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')

# RIHS01 hashes of the upstream package (vision_msgs 4.1.1, ros-perception/vision_msgs tag 4.1.1, built
# unchanged with cmake against the same ROS wheels; read from its rosidl type-description JSON files).
UPSTREAM = {
    'vision_msgs/msg/Classification': 'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'vision_msgs/msg/ObjectHypothesis': 'RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'vision_msgs/msg/Point2D': 'RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247',
    'vision_msgs/msg/Pose2D': 'RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648',
    'vision_msgs/msg/BoundingBox2D': 'RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f',
    'vision_msgs/msg/ObjectHypothesisWithPose':
        'RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'vision_msgs/msg/Detection2D': 'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'vision_msgs/msg/Detection2DArray': 'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'vision_msgs/msg/VisionInfo': 'RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
    # LabelInfo and VisionClass: RIHS01 computed by rosbags (an implementation apart from rosidl's, which gives the
    # hashes above for the other nine) from upstream's .msg files at tag 4.1.1.
    'vision_msgs/msg/VisionClass': 'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
    'vision_msgs/msg/LabelInfo': 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
}
# foxglove_msgs 3.4.3 (foxglove-sdk tag ros-v3.4.3, the layout since 3.2.5: ImageAnnotations has a timestamp and
# metadata; 3.2.4 and older hash ImageAnnotations to RIHS01_47c6c089...) and ffmpeg_image_transport_msgs 1.2.2
# (ros-misc-utilities, tag 1.2.2): RIHS01 computed by rosbags from upstream's .msg files at those tags.
UPSTREAM_VIDEO = {
    'foxglove_msgs/msg/Color': 'RIHS01_ed1b16da40c954e6456b950c2ef4559c179e5cb98f1363cb28c3b90c6ee14120',
    'foxglove_msgs/msg/Point2': 'RIHS01_d85e823b78e2e88bc31629e305558bcdd2ecc9225f5f9390f96d91930f5696f0',
    'foxglove_msgs/msg/KeyValuePair': 'RIHS01_3a1aafc9b6c5876181434af49e3077c3e63174d48c4be9fbc8f65547c59aaded',
    'foxglove_msgs/msg/CircleAnnotation': 'RIHS01_8bd0a9869b14ed054b6e3fbfb09bd0dbaa90946083adcca96c964a20191fd99a',
    'foxglove_msgs/msg/PointsAnnotation': 'RIHS01_e151e5042d911c2949ff9ef427944596eefdf9672ff93d381e8d24e60addf8e6',
    'foxglove_msgs/msg/TextAnnotation': 'RIHS01_9678167e063be85463865db2383506c704498e5f8657f24c576a996e7f2ed2e4',
    'foxglove_msgs/msg/ImageAnnotations': 'RIHS01_bc4e578b1ef80953415d6f966a4cab305c8a44c8b64fc405312b6f06a08fc45e',
    'foxglove_msgs/msg/CompressedVideo': 'RIHS01_32039eafc3770e589c86c4dabff9c392ce9955ebffd43f5f60763011d43d8d1d',
    'ffmpeg_image_transport_msgs/msg/FFMPEGPacket':
        'RIHS01_648d84e0d33cbf76daf54b094d8f06154b8a24800a19c14371754df799fbaf79',
}
# bond (bond_core 4.0.0, ros2 branch, built unchanged the same way): the heartbeat nav2_lifecycle_manager expects.
UPSTREAM_BOND = {
    'bond/msg/Status': 'RIHS01_87eaccffa254ffffadc0b61600452e8251740f06c25659a2dbda4927fdb1f70a',
    'bond/msg/Constants': 'RIHS01_347874ac7a49af69eb313fc911d72cd59152a5a157b6577cafad31ad43a8d63e',
}
# The messages novic_ros publishes; the others are checked through the type descriptions above.
PUBLISHED = ('Classification', 'Detection2DArray', 'VisionInfo')


def test_generated_type_descriptions_have_the_upstream_hashes():
    for type_name, expected in {**UPSTREAM, **UPSTREAM_BOND, **UPSTREAM_VIDEO}.items():
        package, _, name = type_name.split('/')
        desc = json.loads((Path(sys.prefix) / 'share' / package / 'msg' / f"{name}.json").read_text())
        hashes = {h['type_name']: h['hash_string'] for h in desc['type_hashes']}
        assert hashes[type_name] == expected


def test_a_live_publisher_announces_the_upstream_hash():
    import vision_msgs.msg
    rclpy.init()
    try:
        node = rclpy.create_node('hash_probe')
        for name in PUBLISHED:
            node.create_publisher(getattr(vision_msgs.msg, name), f'hash_probe/{name.lower()}', 1)
        for name in PUBLISHED:
            info = node.get_publishers_info_by_topic(f'/hash_probe/{name.lower()}')
            assert len(info) == 1
            assert str(info[0].topic_type_hash) == UPSTREAM[f'vision_msgs/msg/{name}']
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_rosbags_hashes_our_copies_as_upstream():
    """The .msg text itself (what novic-eval registers with rosbags to read and write bags) gives the
    upstream hashes, independently of the rosidl build."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    root = Path(__file__).resolve().parent.parent / 'interfaces'
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for type_name in UPSTREAM_VIDEO | {
        t: UPSTREAM[t] for t in ('vision_msgs/msg/VisionClass', 'vision_msgs/msg/LabelInfo')
    }:
        package, _, name = type_name.split('/')
        types.update(get_types_from_msg((root / package / 'msg' / f"{name}.msg").read_text(), type_name))
    store.register(types)
    for type_name in types:
        assert store.hash_rihs01(type_name) == {**UPSTREAM, **UPSTREAM_VIDEO}[type_name], type_name


def test_video_and_annotation_publishers_announce_the_upstream_hash():
    from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
    from foxglove_msgs.msg import CompressedVideo, ImageAnnotations
    from vision_msgs.msg import LabelInfo

    types = {
        'foxglove_msgs/msg/ImageAnnotations': ImageAnnotations,
        'foxglove_msgs/msg/CompressedVideo': CompressedVideo,
        'ffmpeg_image_transport_msgs/msg/FFMPEGPacket': FFMPEGPacket,
        'vision_msgs/msg/LabelInfo': LabelInfo,
    }
    rclpy.init()
    try:
        node = rclpy.create_node('video_hash_probe')
        for i, msg_type in enumerate(types.values()):
            node.create_publisher(msg_type, f'video_hash_probe/t{i}', 1)
        for i, type_name in enumerate(types):
            (info,) = node.get_publishers_info_by_topic(f'/video_hash_probe/t{i}')
            assert str(info.topic_type_hash) == {**UPSTREAM, **UPSTREAM_VIDEO}[type_name]
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_video_and_annotation_layout():
    from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
    from foxglove_msgs.msg import CompressedVideo, ImageAnnotations, PointsAnnotation, TextAnnotation
    from vision_msgs.msg import LabelInfo, VisionClass
    assert ImageAnnotations.get_fields_and_field_types() == {
        'timestamp': 'builtin_interfaces/Time', 'circles': 'sequence<foxglove_msgs/CircleAnnotation>',
        'points': 'sequence<foxglove_msgs/PointsAnnotation>', 'texts': 'sequence<foxglove_msgs/TextAnnotation>',
        'metadata': 'sequence<foxglove_msgs/KeyValuePair>'}
    assert PointsAnnotation.get_fields_and_field_types() == {
        'timestamp': 'builtin_interfaces/Time', 'type': 'uint8', 'points': 'sequence<foxglove_msgs/Point2>',
        'outline_color': 'foxglove_msgs/Color', 'outline_colors': 'sequence<foxglove_msgs/Color>',
        'fill_color': 'foxglove_msgs/Color', 'thickness': 'double', 'metadata': 'sequence<foxglove_msgs/KeyValuePair>'}
    assert (PointsAnnotation.POINTS, PointsAnnotation.LINE_LOOP, PointsAnnotation.LINE_LIST) == (1, 2, 4)
    assert TextAnnotation.get_fields_and_field_types() == {
        'timestamp': 'builtin_interfaces/Time', 'position': 'foxglove_msgs/Point2', 'text': 'string',
        'font_size': 'double', 'text_color': 'foxglove_msgs/Color', 'background_color': 'foxglove_msgs/Color',
        'metadata': 'sequence<foxglove_msgs/KeyValuePair>'}
    assert CompressedVideo.get_fields_and_field_types() == {
        'timestamp': 'builtin_interfaces/Time', 'frame_id': 'string', 'data': 'sequence<uint8>', 'format': 'string'}
    assert FFMPEGPacket.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'width': 'int32', 'height': 'int32', 'encoding': 'string', 'pts': 'uint64',
        'flags': 'uint8', 'is_bigendian': 'boolean', 'data': 'sequence<uint8>'}
    assert LabelInfo.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'class_map': 'sequence<vision_msgs/VisionClass>', 'threshold': 'float'}
    assert VisionClass.get_fields_and_field_types() == {'class_id': 'uint16', 'class_name': 'string'}


def test_bond_status_announces_the_upstream_hash_and_layout():
    from bond.msg import Constants, Status
    assert Status.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'id': 'string', 'instance_id': 'string', 'active': 'boolean',
        'heartbeat_timeout': 'float', 'heartbeat_period': 'float'}
    assert (Constants.DEFAULT_HEARTBEAT_TIMEOUT, Constants.DEFAULT_CONNECT_TIMEOUT) == (4.0, 10.0)
    rclpy.init()
    try:
        node = rclpy.create_node('bond_hash_probe')
        node.create_publisher(Status, 'bond', 1)
        (info,) = [i for i in node.get_publishers_info_by_topic('/bond') if i.node_name == 'bond_hash_probe']
        assert str(info.topic_type_hash) == UPSTREAM_BOND['bond/msg/Status']
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_field_layout():
    from vision_msgs.msg import Classification, ObjectHypothesis
    assert Classification.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'results': 'sequence<vision_msgs/ObjectHypothesis>'}
    assert ObjectHypothesis.get_fields_and_field_types() == {'class_id': 'string', 'score': 'double'}


def test_detection_layout():
    from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose, VisionInfo
    assert Detection2DArray.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'detections': 'sequence<vision_msgs/Detection2D>'}
    assert Detection2D.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
        'bbox': 'vision_msgs/BoundingBox2D', 'id': 'string'}
    assert BoundingBox2D.get_fields_and_field_types() == {
        'center': 'vision_msgs/Pose2D', 'size_x': 'double', 'size_y': 'double'}
    assert ObjectHypothesisWithPose.get_fields_and_field_types() == {
        'hypothesis': 'vision_msgs/ObjectHypothesis', 'pose': 'geometry_msgs/PoseWithCovariance'}
    assert VisionInfo.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'method': 'string', 'database_location': 'string', 'database_version': 'int32'}
