"""Our vision_msgs subset is wire-compatible with upstream vision_msgs 4.x: same type hashes."""
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
    'vision_msgs/msg/ObjectHypothesisWithPose': 'RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'vision_msgs/msg/Detection2D': 'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'vision_msgs/msg/Detection2DArray': 'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'vision_msgs/msg/VisionInfo': 'RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
}
# bond (bond_core 4.0.0, ros2 branch, built unchanged the same way): the heartbeat nav2_lifecycle_manager expects.
UPSTREAM_BOND = {
    'bond/msg/Status': 'RIHS01_87eaccffa254ffffadc0b61600452e8251740f06c25659a2dbda4927fdb1f70a',
    'bond/msg/Constants': 'RIHS01_347874ac7a49af69eb313fc911d72cd59152a5a157b6577cafad31ad43a8d63e',
}
# The messages novic_ros publishes; the others are checked through the type descriptions above.
PUBLISHED = ('Classification', 'Detection2DArray', 'VisionInfo')


def test_generated_type_descriptions_have_the_upstream_hashes():
    for type_name, expected in {**UPSTREAM, **UPSTREAM_BOND}.items():
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
