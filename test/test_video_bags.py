"""H.264 / H.265 in bags: make-bag writes toy-world sequences as foxglove_msgs/CompressedVideo or
ffmpeg_image_transport_msgs/FFMPEGPacket streams, and novic-eval offline labels them from the first
keyframe on, skipping what a lost packet damaged until the next keyframe."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from novic_ros.cli.eval import main as eval_main
from novic_ros.eval.bagio import (COMPRESSED_VIDEO, FFMPEG_PACKET, FrameDecoder, decode, new_bag, open_bag,
                                  typestore)
from novic_ros.frames.video import VideoEncoder, is_keyframe
from novic_ros.training import toy_world
from novic_ros.training.toy_sequences import Motion, render_sequence

NOUN = 'apple'
FRAMES = 30
SIZE = (240, 320)


@lru_cache(maxsize=1)
def apple_shot() -> tuple[np.ndarray, ...]:
    """A camera looking at an apple that drifts across it (30 frames, 10 Hz)."""
    side = int(SIZE[0] * 0.7)
    script = (Motion(1, toy_world.NOUNS.index(NOUN), side, 0, FRAMES - 1, (20.0, 30.0), (3.0, 0.5)),)
    return tuple(f.image for f in render_sequence(script, size=SIZE, frames=FRAMES, seed=0))


@pytest.fixture(scope='module')
def shot(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('shot') / 'frames'
    folder.mkdir()
    for i, rgb in enumerate(apple_shot()):
        Image.fromarray(rgb).save(folder / f"{i:03d}.png")
    (folder / 'labels.json').write_text(json.dumps({f"{i:03d}.png": NOUN for i in range(FRAMES)}))
    return folder


@pytest.mark.parametrize('transport,message', [('h264', 'foxglove'), ('h265', 'ffmpeg')])
def test_make_bag_writes_a_camera_stream(shot, tmp_path, transport, message):
    out = tmp_path / 'vbag'
    assert eval_main(['make-bag', str(shot), str(out), '--transport', transport, '--video-msg', message,
                      '--keyframe-interval', '10', '--frame-id', 'cam7', '--no-progress']) == 0
    topic = f'/camera/image_raw/{message}'
    with open_bag(out) as bag:
        assert bag.image_topics == {topic: COMPRESSED_VIDEO if message == 'foxglove' else FFMPEG_PACKET}
        frames = list(bag.frames())
    assert len(frames) == FRAMES and all(f.frame_id == 'cam7' for f in frames)
    assert len({f.stamp_ns for f in frames}) == FRAMES
    store = typestore()
    msgs = [store.deserialize_cdr(f.rawdata, f.msgtype) for f in frames]
    codec = transport
    keys = [i for i, m in enumerate(msgs) if is_keyframe(codec, np.asarray(m.data, np.uint8).tobytes())]
    assert keys == [0, 10, 20]
    if message == 'foxglove':
        assert {m.format for m in msgs} == {'h264'}
    else:
        assert {m.encoding for m in msgs} == {'libx265'} and (msgs[0].width, msgs[0].height) == (320, 240)
        assert [i for i, m in enumerate(msgs) if m.flags & 1] == keys and [m.pts for m in msgs] == list(range(FRAMES))
    # Every packet decodes, in order, to the picture it was made from.
    decoder = FrameDecoder()
    originals = apple_shot()
    for f, rgb in zip(frames, originals):
        assert np.abs(decoder(f).astype(int) - rgb).mean() < 12
    with pytest.raises(ValueError):
        decode(frames[0])          # a packet alone is no picture: decode() says to use FrameDecoder
    ann = out.parent / 'vbag.annotations.csv'
    assert ann.read_text().splitlines()[1] == f'{topic},0,{NOUN}'


def lossy_bag(path: Path, streams: dict[str, tuple[str, str]], join_at: int, lost: set[int]) -> Path:
    """The shot's stream on each topic of `streams` (topic -> (codec, message type)), as a recorder that
    joined at packet `join_at` and missed the `lost` ones saw it."""
    store = typestore()
    Time, Header = store.types['builtin_interfaces/msg/Time'], store.types['std_msgs/msg/Header']
    with new_bag(path, 'mcap') as writer:
        for topic, (codec, msgtype) in streams.items():
            conn = writer.add_connection(topic, msgtype, typestore=store)
            encoder = VideoEncoder(codec, SIZE[1], SIZE[0], keyframe_interval=10)
            for i, rgb in enumerate(apple_shot()):
                (packet,) = encoder.encode(rgb)
                if i < join_at or i in lost:
                    continue
                stamp = Time(sec=1000 + i // 10, nanosec=(i % 10) * 100_000_000)
                data = np.frombuffer(packet, np.uint8)
                if msgtype == COMPRESSED_VIDEO:
                    msg = store.types[msgtype](timestamp=stamp, frame_id=f'f{i}', data=data, format=codec)
                else:
                    msg = store.types[msgtype](header=Header(stamp=stamp, frame_id=f'f{i}'), width=SIZE[1],
                                               height=SIZE[0], encoding='libx264' if codec == 'h264' else 'hevc_nvenc',
                                               pts=i, flags=int(is_keyframe(codec, packet)), is_bigendian=False,
                                               data=data)
                writer.write(conn, 1_000_000_000 * (1000 + i // 10) + (i % 10) * 100_000_000,
                             store.serialize_cdr(msg, msgtype))
    return path


def test_offline_labels_from_the_first_keyframe_and_recovers_after_a_loss(tmp_path):
    """Two cameras in one bag, H.264 as CompressedVideo and H.265 as FFMPEGPacket, each decoded on its own."""
    streams = {'/cam/foxglove': ('h264', COMPRESSED_VIDEO), '/cam/ffmpeg': ('h265', FFMPEG_PACKET)}
    bag = lossy_bag(tmp_path / 'lossy', streams, join_at=3, lost={13})
    out = tmp_path / 'report'
    assert eval_main(['offline', str(bag), '--out', str(out), '--backend', 'torch', '--device', 'cpu',
                      '--no-progress']) == 0
    rows = [json.loads(line) for line in (out / 'labels.jsonl').read_text().splitlines()]
    summaries = {s['topic']: s for s in json.loads((out / 'summary.json').read_text())['topics']}
    for topic in streams:
        by_frame = {r['frame_id']: r for r in rows if r['topic'] == topic}
        assert len(by_frame) == FRAMES - 3 - 1
        before = [by_frame[f'f{i}'] for i in range(3, 10)]
        damaged = [by_frame[f'f{i}'] for i in range(14, 20)]
        good = [by_frame[f'f{i}'] for i in (*range(10, 13), *range(20, 30))]
        assert all(r['reason'] == 'before the first keyframe' and not r['labels'] for r in before)
        assert all(r['reason'] == 'waiting for a keyframe after a loss' and not r['labels'] for r in damaged)
        assert all(r['labels'] and not r.get('error') for r in good)
        tops = [r['labels'][0]['label'] for r in good]
        assert tops.count(NOUN) >= 0.8 * len(tops), tops          # and the pictures are the apple's
        s = summaries[topic]
        assert s['skipped'] == {'before the first keyframe': 7, 'waiting for a keyframe after a loss': 6}
        assert s['labelled'] == 13


def test_live_starts_the_node_with_the_transport_of_the_bag():
    pytest.importorskip('rclpy')
    from novic_ros.eval.bagio import COMPRESSED, IMAGE
    from novic_ros.eval.live import node_inputs
    assert node_inputs({'/a/image_raw/foxglove': COMPRESSED_VIDEO, '/b/foxglove': COMPRESSED_VIDEO}) == (
        ['/a/image_raw', '/b'], 'foxglove')
    assert node_inputs({'/cam/ffmpeg': FFMPEG_PACKET}) == (['/cam'], 'ffmpeg')
    assert node_inputs({'/cam/compressed': COMPRESSED}) == (['/cam'], 'compressed')
    assert node_inputs({'/cam/image_raw': IMAGE}) == (['/cam/image_raw'], 'raw')
    with pytest.raises(ValueError, match='--topics'):
        node_inputs({'/cam/image_raw': IMAGE, '/cam/foxglove': COMPRESSED_VIDEO})
