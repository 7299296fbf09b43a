"""make demo: start novic_node, play images to it over ROS 2 and print the labels it publishes.

Offline by default: the `toy` variant, shown freshly rendered toy-world pictures (it knows the
toy world's 162 nouns). With --model b32 (or any variant whose weights open_clip finds locally
or can download) it is shown real photographs instead: --images DIR, or the sample photos that
scikit-image and matplotlib ship.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ..frames.image_files import list_images, read_image
from ..params import DEFAULT_LABELS_TOPIC, DEFAULT_NAMESPACE, add_model_arguments
from ..paths import use_large_frames_profile
from ..ros.node_process import NodeProcess
from ..frames.sample_images import sample_photos
from ..training import toy_world

SUBSCRIBE_TIMEOUT_S = 180       # first start may export the model to ONNX
ANSWER_TIMEOUT_S = 60


def _images(args) -> list[tuple[str, np.ndarray, str | None]]:
    """(name, frame, true noun or None)."""
    if args.images:
        files = list_images(args.images)
        if not files:
            raise SystemExit(f"no images in {args.images}")
        return [(p.name, read_image(p), None) for p in files][:args.count]
    if args.model == 'toy':
        items = toy_world.render_set(1, (480, 640), seed=args.seed)
        rng = np.random.default_rng(args.seed)
        pick = rng.choice(len(items), size=min(args.count, len(items)), replace=False)
        return [(f"toy render of {items[i].label!r}", items[i].image, items[i].label) for i in pick]
    photos = [(name, read_image(path), None) for name, path, _ in sample_photos()]
    if not photos:
        raise SystemExit("no sample photos found; pass --images DIR")
    return photos[:args.count]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-demo', description=__doc__)
    p.add_argument('--images', default=None, help='folder of images to play (default: see above)')
    p.add_argument('--count', type=int, default=12, help='how many images to label (default 12)')
    p.add_argument('--seed', type=int, default=int(time.time()) % 1000,
                   help='random seed of the scenes drawn (default: from the clock, new pictures each run)')
    add_model_arguments(p, names=('model', 'backend'))
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if os.environ.get('ROS_DISTRO') == 'humble':      # Humble knows only the older switch
        os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')
    use_large_frames_profile()
    # rclpy and the message packages come from ROS (apt or the PyPI wheels), not from our requirements.
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification

    images = _images(args)
    print(f"starting novic_node (model {args.model}) ...", flush=True)
    node = NodeProcess({'model': args.model, 'backend': args.backend, 'qos': 'reliable'})
    rclpy.init(args=[])     # not sys.argv: our own flags are not ROS arguments
    client = rclpy.create_node('novic_demo')
    received: dict[str, tuple[Classification, float]] = {}
    client.create_subscription(Classification, DEFAULT_LABELS_TOPIC,
                               lambda m: received.setdefault(m.header.frame_id, (m, time.monotonic())), 10)
    image_topic = f"{DEFAULT_NAMESPACE}/image"
    pub = client.create_publisher(Image, image_topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
        while pub.get_subscription_count() == 0:
            if not node.alive():
                print(f"novic_node exited with code {node.proc.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"novic_node did not subscribe within {SUBSCRIBE_TIMEOUT_S} s", file=sys.stderr)
                return 1
            rclpy.spin_once(client, timeout_sec=0.1)
        print(f"playing {len(images)} images to {image_topic}, labels from {DEFAULT_LABELS_TOPIC}:\n", flush=True)
        latencies, correct = [], 0
        for i, (name, frame, truth) in enumerate(images):
            h, w = frame.shape[:2]
            msg = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=frame.tobytes())
            msg.header.frame_id = f'demo_{i}'
            msg.header.stamp = client.get_clock().now().to_msg()
            sent = time.monotonic()
            pub.publish(msg)
            while msg.header.frame_id not in received and time.monotonic() - sent < ANSWER_TIMEOUT_S:
                rclpy.spin_once(client, timeout_sec=0.05)
            if msg.header.frame_id not in received:
                print(f"  [{i + 1:2d}] {name:32s} -> (no answer within {ANSWER_TIMEOUT_S} s)")
                continue
            out, t = received[msg.header.frame_id]
            latencies.append((t - sent) * 1e3)
            labels = ', '.join(f"{r.class_id} {r.score:.2f}" for r in out.results) or '(none)'
            mark = '' if truth is None else ('  ok' if out.results and out.results[0].class_id == truth else '  x')
            correct += bool(mark == '  ok')
            print(f"  [{i + 1:2d}] {name:32s} -> {labels}   ({latencies[-1]:.0f} ms){mark}", flush=True)
        summary = (
            f"\n{len(latencies)}/{len(images)} labelled, median latency {np.median(latencies):.0f} ms"
            if latencies
            else ''
        )
        if any(t for _, _, t in images):
            summary += f", top-1 names the rendered noun for {correct}/{len(images)}"
        print(summary)
        return 0 if len(latencies) == len(images) else 1
    finally:
        client.destroy_node()
        rclpy.try_shutdown()
        node.stop()


if __name__ == '__main__':
    sys.exit(main())
