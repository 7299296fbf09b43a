"""Our vision_msgs subset is wire-compatible with upstream vision_msgs 4.x: same type hashes."""
import json
import sys
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy')

# RIHS01 hashes of the upstream package (vision_msgs 4.1.1).
UPSTREAM = {
    'vision_msgs/msg/Classification': 'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'vision_msgs/msg/ObjectHypothesis': 'RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
}


def test_generated_type_descriptions_have_the_upstream_hashes():
    share = Path(sys.prefix) / 'share' / 'vision_msgs' / 'msg'
    for type_name, expected in UPSTREAM.items():
        desc = json.loads((share / f"{type_name.rsplit('/', 1)[1]}.json").read_text())
        hashes = {h['type_name']: h['hash_string'] for h in desc['type_hashes']}
        assert hashes[type_name] == expected


def test_a_live_publisher_announces_the_upstream_hash():
    from vision_msgs.msg import Classification, ObjectHypothesis
    rclpy.init()
    try:
        node = rclpy.create_node('hash_probe')
        node.create_publisher(Classification, 'hash_probe/labels', 1)
        node.create_publisher(ObjectHypothesis, 'hash_probe/hypothesis', 1)
        for topic, type_name in (('/hash_probe/labels', 'vision_msgs/msg/Classification'),
                                 ('/hash_probe/hypothesis', 'vision_msgs/msg/ObjectHypothesis')):
            info = node.get_publishers_info_by_topic(topic)
            assert len(info) == 1
            assert str(info[0].topic_type_hash) == UPSTREAM[type_name]
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_field_layout():
    from vision_msgs.msg import Classification, ObjectHypothesis
    assert Classification.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'results': 'sequence<vision_msgs/ObjectHypothesis>'}
    assert ObjectHypothesis.get_fields_and_field_types() == {'class_id': 'string', 'score': 'double'}
