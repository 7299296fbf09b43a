"""A video camera as robots stream one, for the tests (test_video_node): its own process, default middleware
settings and QoS, publishing the H.264/H.265 packets of a bag's video topic (foxglove_msgs/
CompressedVideo or ffmpeg_image_transport_msgs/FFMPEGPacket, as `novic-eval make-bag --transport h264`
writes them) in order at `rate_hz`, with frame_id `tag` (one camera, as a driver sends it) and its publish time as
stamp; the stamps sent go to stdout, so a listener can match labels to packets by stamp.

`start` and `lost` shape what a subscriber sees: packets before index `start` are never sent (a
subscriber that joined late), and those listed in `lost` are skipped (lost on the way). One JSON
line goes to stdout at the end: `sent`, [packet index, stamp in ns] of each packet sent.

    python test/video_camera.py --bag BAG --topic /novic/image/foxglove --start 3 --lost 13
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

# Run as a script (its own process): the tree the tests import comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from novic_ros.ros.stock_camera import _wait_for_subscriber, camera_env


def _packets(bag: str):
    """(msgtype, message) of the bag's first video topic, in bag order, as rclpy messages."""
    from novic_ros.eval.bagio import COMPRESSED_VIDEO, VIDEO_TYPES, open_bag, typestore
    from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
    from foxglove_msgs.msg import CompressedVideo
    store = typestore()
    with open_bag(bag) as b:
        topic = next(t for t, m in b.image_topics.items() if m in VIDEO_TYPES)
        for f in b.frames():
            if f.topic != topic:
                continue
            m = store.deserialize_cdr(f.rawdata, f.msgtype)
            if f.msgtype == COMPRESSED_VIDEO:
                yield f.msgtype, CompressedVideo(frame_id=m.frame_id, data=m.data.tobytes(), format=m.format)
            else:
                yield f.msgtype, FFMPEGPacket(width=m.width, height=m.height, encoding=m.encoding, pts=m.pts,
                                              flags=m.flags, is_bigendian=m.is_bigendian, data=m.data.tobytes())


def play(bag: str, topic: str, tag: str, rate_hz: float, start: int, lost: set[int], wait_s: float) -> dict:
    import rclpy
    from rclpy.duration import Duration

    from novic_ros.eval.bagio import COMPRESSED_VIDEO
    rclpy.init(args=[])
    node = rclpy.create_node(f'video_camera_{os.getpid()}')
    try:
        packets = list(_packets(bag))
        msg_type = type(packets[0][1])
        pub = node.create_publisher(msg_type, topic, 10)        # the ROS default QoS: reliable, keep last 10
        if not _wait_for_subscriber(node, pub, topic, 'reliable', wait_s):
            return {'tag': tag, 'error': f"no reliable subscriber on {topic} after {wait_s} s"}
        time.sleep(0.5)
        sent = []
        t0 = time.monotonic()
        for i, (msgtype, msg) in enumerate(packets):
            if i < start or i in lost:
                continue
            delay = t0 + len(sent) / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = node.get_clock().now().to_msg()
            if msgtype == COMPRESSED_VIDEO:
                msg.frame_id, msg.timestamp = tag, stamp
            else:
                msg.header.frame_id, msg.header.stamp = tag, stamp
            pub.publish(msg)
            sent.append([i, stamp.sec * 1_000_000_000 + stamp.nanosec])
        pub.wait_for_all_acked(Duration(seconds=5))
        return {'tag': tag, 'topic': topic, 'sent': sent, 'packets': len(packets)}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='python test/video_camera.py', description=__doc__.split('\n\n')[0])
    p.add_argument('--bag', required=True)
    p.add_argument('--topic', required=True)
    p.add_argument('--tag', default='video')
    p.add_argument('--rate', type=float, default=10.0)
    p.add_argument('--start', type=int, default=0, help='first packet index sent')
    p.add_argument('--lost', type=int, nargs='*', default=[], help='packet indices not sent')
    p.add_argument('--wait', type=float, default=60.0, help='seconds to wait for a subscriber')
    args = p.parse_args(argv)
    print(
        json.dumps(play(args.bag, args.topic, args.tag, args.rate, args.start, set(args.lost), args.wait)), flush=True
    )
    return 0


def start_video_camera(bag, topic: str, *, tag: str = 'video', rate_hz: float = 10.0, start: int = 0,
                       lost: Sequence[int] = (), wait_s: float = 60.0) -> subprocess.Popen:
    """Start the camera process (the caller's environment minus a Fast DDS profile); read its JSON line
    from .stdout (stock_camera.results)."""
    cmd = [sys.executable, __file__, '--bag', str(bag), '--topic', topic, '--tag', tag, '--rate', str(rate_hz),
           '--start', str(start), '--wait', str(wait_s), '--lost', *map(str, lost)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=camera_env())


if __name__ == '__main__':
    sys.exit(_main())
