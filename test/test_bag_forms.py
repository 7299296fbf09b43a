"""Bags as robot teams record them, each written by the tools that write them in the field (the
rosbags writers for ROS 1 and ROS 2, the reference mcap writer, rosbags-convert), never by our own
make-bag: ROS 1 .bag files (uncompressed, bz2, lz4), ROS 2 bags compressed per message, per file
and per chunk, legacy type names, split bags with a file missing, a cut .mcap passed alone, and
bags whose messages cannot be read. Checked: exact per-topic frame counts and indices, pixels, and
what the user is told."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from novic_ros.cli.eval import main as eval_main
from novic_ros.eval.bagio import IMAGE, BagError, decode, message_bytes_limit, open_bag, typestore
from novic_ros.eval.make_bag import make_bag

STORE = typestore()
ROS1_STORE = get_typestore(Stores.ROS1_NOETIC)
T0 = 1_700_000_000


def gray(i: int, h: int = 12, w: int = 16) -> np.ndarray:
    """A mono8 frame that differs from every other i."""
    return ((np.arange(h * w).reshape(h, w) * 7 + i * 31) % 256).astype(np.uint8)


def mono_cdr(i: int, frame_id: str = 'cam', h: int = 12, w: int = 16) -> bytes:
    Image, Header, Time = (STORE.types[t] for t in (IMAGE, 'std_msgs/msg/Header', 'builtin_interfaces/msg/Time'))
    msg = Image(header=Header(stamp=Time(sec=T0 + i, nanosec=i), frame_id=frame_id), height=h, width=w,
                encoding='mono8', is_bigendian=0, step=w, data=gray(i, h, w).reshape(-1))
    return bytes(STORE.serialize_cdr(msg, IMAGE))


def stamp(i: int) -> int:
    return (T0 + i) * 1_000_000_000 + i


def read_all(path, topics=None):
    with open_bag(path, topics) as bag:
        frames = list(bag.frames())
        return frames, list(bag.warnings), bag


def by_topic(frames) -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = {}
    for f in frames:
        out.setdefault(f.topic, []).append(f.index)
    return out


def assert_pixels(frames, numbers: dict[str, list[int]]) -> None:
    """Each frame decodes to gray(i) in all three channels, i its message number."""
    for topic, ns in numbers.items():
        mine = [f for f in frames if f.topic == topic]
        assert [f.stamp_ns for f in mine] == [stamp(i) for i in ns]
        for f, i in zip(mine, ns):
            assert np.array_equal(decode(f), np.repeat(gray(i)[..., None], 3, axis=2))


# Two cameras, interleaved as a recorder sees them: (topic, message number) in bag order.
TWO_CAMERAS = [('/left/image_raw', 0), ('/right/image_raw', 1), ('/left/image_raw', 2), ('/left/image_raw', 3),
               ('/right/image_raw', 4)]


def write_ros1(path: Path, plan, compression=None) -> Path:
    w = Ros1Writer(path)
    if compression:
        w.set_compression(compression)
    w.open()
    conns = {}
    for topic, i in plan:
        if topic not in conns:
            conns[topic] = w.add_connection(topic, 'sensor_msgs/msg/Image', typestore=ROS1_STORE)
        w.write(conns[topic], stamp(i), bytes(STORE.cdr_to_ros1(mono_cdr(i), IMAGE)))
    w.close()
    return path


def write_ros2(path: Path, plan, *, storage='mcap', mode=None, msgtype=IMAGE, payload=mono_cdr) -> Path:
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3)
    if mode:
        w.set_compression(mode, CompressionFormat.ZSTD)
    w.open()
    conns = {}
    msgdef, _ = STORE.generate_msgdef(IMAGE, ros_version=2)
    for topic, i in plan:
        if topic not in conns:
            # A legacy name ('sensor_msgs/Image') is written with the definition spelled out, as old tools do.
            conns[topic] = w.add_connection(topic, msgtype, msgdef=msgdef, rihs01=STORE.hash_rihs01(IMAGE))
        w.write(conns[topic], stamp(i), payload(i))
    w.close()
    return path


# -- ROS 1 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('compression', [None, Ros1Writer.CompressionFormat.BZ2, Ros1Writer.CompressionFormat.LZ4])
def test_ros1_bags_are_read_directly(tmp_path, compression):
    bag = write_ros1(tmp_path / 'cameras.bag', TWO_CAMERAS, compression)
    frames, warnings, opened = read_all(bag)
    assert warnings == [] and opened.describe() == 'ROS 1 bag'
    assert by_topic(frames) == {'/left/image_raw': [0, 1, 2], '/right/image_raw': [0, 1]}
    assert_pixels(frames, {'/left/image_raw': [0, 2, 3], '/right/image_raw': [1, 4]})
    assert {t: (x.expected, x.read, x.frames) for t, x in opened.tallies.items()} == {
        '/left/image_raw': (3, 3, 3), '/right/image_raw': (2, 2, 2)}


def test_ros1_frames_match_what_rosbags_convert_makes(tmp_path):
    """The oracle: the ROS 2 bag rosbags-convert writes from the same file holds the same CDR bytes."""
    bag = write_ros1(tmp_path / 'cameras.bag', TWO_CAMERAS, Ros1Writer.CompressionFormat.LZ4)
    subprocess.run([sys.executable, '-m', 'rosbags.convert', '--src', str(bag), '--dst', str(tmp_path / 'converted')],
                   check=True, capture_output=True)
    direct, _, _ = read_all(bag)
    converted, _, _ = read_all(tmp_path / 'converted')
    assert [(f.topic, f.index, f.stamp_ns, f.frame_id, f.rawdata) for f in direct] == \
           [(f.topic, f.index, f.stamp_ns, f.frame_id, f.rawdata) for f in converted]


def test_a_folder_of_ros1_split_files_reads_in_order(tmp_path):
    folder = tmp_path / 'split'
    folder.mkdir()
    # rosbag record --split numbers files without padding: _10 comes after _2.
    plans = {2: [('/cam', 1), ('/cam', 2)], 10: [('/cam', 3)], 1: [('/cam', 0)]}
    for n, plan in plans.items():
        write_ros1(folder / f'session_{n}.bag', plan)
    frames, _, opened = read_all(folder)
    assert [(f.index, f.stamp_ns) for f in frames] == [(i, stamp(i)) for i in range(4)]
    assert opened.describe() == 'ROS 1 bag, 3 files'



def test_ros1_bag_offline_labels_every_frame_like_its_conversion(tmp_path, capsys):
    bag = write_ros1(tmp_path / 'cameras.bag', TWO_CAMERAS)
    subprocess.run([sys.executable, '-m', 'rosbags.convert', '--src', str(bag), '--dst', str(tmp_path / 'converted')],
                   check=True, capture_output=True)
    rows = {}
    for name in ('cameras.bag', 'converted'):
        out = tmp_path / f'report-{name}'
        assert (
            eval_main(['offline', str(tmp_path / name), '--out', str(out), '--backend', 'torch', '--no-progress']) == 0
        )
        summary = json.loads((out / 'summary.json').read_text())
        assert summary['labelled'] == summary['frames'] == len(TWO_CAMERAS)
        rows[name] = [json.loads(line) for line in (out / 'labels.jsonl').read_text().splitlines()]
    strip = lambda rs: [(r['topic'], r['index'], r['stamp_ns'], [l['label'] for l in r['labels']]) for r in rs]
    assert strip(rows['cameras.bag']) == strip(rows['converted'])
    assert '/left/image_raw: 3 read, 0 skipped, 3 labelled' in capsys.readouterr().out


def test_live_plays_a_ros1_bag_and_says_when_frames_share_a_stamp(tmp_path):
    """A camera driver that repeats a stamp: the live run warns that those labels cannot be told apart."""
    bag = tmp_path / 'cam.bag'
    w = Ros1Writer(bag)
    w.open()
    conn = w.add_connection('/cam', 'sensor_msgs/msg/Image', typestore=ROS1_STORE)
    for bag_time, i in [(0, 0), (1, 1), (2, 2), (3, 2)]:            # the last two share the header of message 2
        w.write(conn, stamp(bag_time), bytes(STORE.cdr_to_ros1(mono_cdr(i), IMAGE)))
    w.close()
    out = tmp_path / 'live'
    assert eval_main(['live', str(bag), '--start-node', '--out', str(out), '--speed', '4',
                      '--node-param', 'backend:=torch', '--no-progress']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['live']['sent'] == 4 and summary['labelled'] == 4
    assert any('share frame_id and stamp' in w for w in summary['warnings'])
    assert summary['recorded as'] == 'ROS 1 bag'


# -- ROS 2 compression -------------------------------------------------------------------------

@pytest.mark.parametrize('storage,mode', [('mcap', CompressionMode.MESSAGE), ('mcap', CompressionMode.FILE),
                                          ('mcap', CompressionMode.STORAGE), ('sqlite3', CompressionMode.MESSAGE),
                                          ('sqlite3', CompressionMode.FILE)])
def test_compressed_ros2_bags(tmp_path, storage, mode):
    bag = write_ros2(tmp_path / 'bag', TWO_CAMERAS, storage=storage, mode=mode)
    frames, warnings, opened = read_all(bag)
    assert warnings == []
    assert by_topic(frames) == {'/left/image_raw': [0, 1, 2], '/right/image_raw': [0, 1]}
    assert_pixels(frames, {'/left/image_raw': [0, 2, 3], '/right/image_raw': [1, 4]})
    if mode == CompressionMode.FILE:
        assert (bag / f'bag.{"mcap" if storage == "mcap" else "db3"}.zstd').is_file()
        single, _, _ = read_all(next(bag.glob('*.zstd')))           # the compressed file passed alone
        assert [f.rawdata for f in single] == [f.rawdata for f in frames]
    # A copy of the bag with labels holds the frames uncompressed and reads back the same.
    labelled = tmp_path / 'labelled'
    from novic_ros.eval.offline import write_labels_bag
    from novic_ros.eval.run_results import FrameResult
    with open_bag(bag) as b:
        results = [FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns, (('thing', 0.5),))
                   for f in b.frames()]
        assert write_labels_bag(b, labelled, results) == []
    again, _, _ = read_all(labelled)
    assert [f.rawdata for f in again] == [f.rawdata for f in frames]


def test_mcap_with_lz4_chunks_and_ros1_messages(tmp_path):
    """What `mcap convert x.bag x.mcap` and other non-rosbag2 writers make: profile ros1, legacy type
    names, ROS 1 serialised messages, lz4-compressed chunks."""
    path = tmp_path / 'converted.mcap'
    with open(path, 'wb') as f:
        w = McapWriter(f, compression=CompressionType.LZ4, chunk_size=1024)
        w.start(profile='ros1', library='test')
        schema = w.register_schema('sensor_msgs/Image', 'ros1msg', ROS1_STORE.generate_msgdef(IMAGE)[0].encode())
        channels = {t: w.register_channel(t, 'ros1', schema) for t in ('/left/image_raw', '/right/image_raw')}
        for topic, i in TWO_CAMERAS:
            w.add_message(channels[topic], log_time=stamp(i), data=bytes(STORE.cdr_to_ros1(mono_cdr(i), IMAGE)),
                          publish_time=stamp(i))
        w.finish()
    with open(path, 'rb') as f:
        assert {c.compression for c in make_reader(f).get_summary().chunk_indexes} == {'lz4'}
    frames, warnings, _ = read_all(path)
    assert warnings == [] and by_topic(frames) == {'/left/image_raw': [0, 1, 2], '/right/image_raw': [0, 1]}
    assert_pixels(frames, {'/left/image_raw': [0, 2, 3], '/right/image_raw': [1, 4]})


def test_an_unknown_compression_format_is_named(tmp_path, capsys):
    bag = write_ros2(tmp_path / 'bag', TWO_CAMERAS, mode=CompressionMode.MESSAGE)
    meta = bag / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('compression_format: zstd', 'compression_format: lz4'))
    assert eval_main(['offline', str(bag), '--model', 'no-such-model']) == 1
    assert "compression format 'lz4'" in capsys.readouterr().err


# -- split, cut and damaged bags ---------------------------------------------------------------

SPLIT_PARTS = [[('/left', 0), ('/right', 1), ('/left', 2)],       # file 0
               [('/left', 3), ('/right', 4), ('/right', 5), ('/left', 6)],
               [('/right', 7), ('/left', 8), ('/right', 9)]]


def write_split(folder: Path, parts=SPLIT_PARTS, **kw) -> Path:
    """A split rosbag2 bag: each file written by the rosbags writer, the metadata merged the way
    rosbag2 writes it for a split recording."""
    folder.mkdir()
    metas = []
    for n, plan in enumerate(parts):
        single = write_ros2(folder.parent / f'{folder.name}_{n}', plan, **kw)
        storage = next(p for p in single.iterdir() if p.name != 'metadata.yaml')
        storage.rename(folder / storage.name)
        metas.append(yaml.safe_load((single / 'metadata.yaml').read_text())['rosbag2_bagfile_information'])
        shutil.rmtree(single)
    merged = dict(metas[0])
    merged['relative_file_paths'] = [p for m in metas for p in m['relative_file_paths']]
    merged['files'] = [f for m in metas for f in m['files']]
    merged['message_count'] = sum(m['message_count'] for m in metas)
    totals: dict[str, dict] = {}
    for m in metas:
        for t in m['topics_with_message_count']:
            entry = totals.setdefault(t['topic_metadata']['name'], {**t, 'message_count': 0})
            entry['message_count'] += t['message_count']
    merged['topics_with_message_count'] = list(totals.values())
    (folder / 'metadata.yaml').write_text(yaml.safe_dump({'rosbag2_bagfile_information': merged}))
    return folder


def test_split_bag_with_a_file_missing_legacy_types_and_message_compression(tmp_path, capsys):
    """The issue's first recording: mcap, zstd per message, 'sensor_msgs/Image' without /msg/, one
    file of a split bag missing. The missing file's counts follow from metadata.yaml, so later
    indices are exact."""
    bag = write_split(tmp_path / 'rec', msgtype='sensor_msgs/Image', mode=CompressionMode.MESSAGE)
    assert 'type: sensor_msgs/Image\n' in (bag / 'metadata.yaml').read_text()
    (bag / 'rec_1.mcap').unlink()
    frames, warnings, opened = read_all(bag)
    assert by_topic(frames) == {'/left': [0, 1, 4], '/right': [0, 3, 4]}
    assert_pixels(frames, {'/left': [0, 2, 8], '/right': [1, 7, 9]})
    assert any('rec_1' in w and 'missing' in w for w in warnings)
    assert opened.describe() == 'ROS 2 bag (mcap), 2 of 3 files, zstd compression per message'
    assert {t: (x.expected, x.read) for t, x in opened.tallies.items()} == {'/left': (5, 3), '/right': (5, 3)}
    # Through the CLI: annotations by index hit the right frames after the gap, and the warning about
    # the missing file reaches the user.
    ann = tmp_path / 'ann.csv'
    ann.write_text('topic,frame,nouns\n/left,4,dog\n/right,3,cat\n/left,2,horse\n')
    out = tmp_path / 'r'
    assert eval_main(['offline', str(bag), '--out', str(out), '--annotations', str(ann), '--backend', 'torch',
                      '--no-progress']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['score']['n'] == 2           # frame 2 of /left was in the missing file
    assert [(t['topic'], t['listed'], t['read'], t['labelled']) for t in summary['topics']] == [
        ('/left', 5, 3, 3), ('/right', 5, 3, 3)]
    err = capsys.readouterr().err
    assert 'missing' in err and 'line 4: frame 2' in err


def test_split_bag_missing_two_files_leaves_later_indices_unknown(tmp_path):
    bag = write_split(tmp_path / 'rec')
    for n in (0, 1):
        (bag / f'rec_{n}.mcap').unlink()
    frames, warnings, _ = read_all(bag)
    assert by_topic(frames) == {'/right': [None, None], '/left': [None]}
    assert any('indices after' in w and 'header stamp' in w for w in warnings)
    # Annotations by stamp still find them.
    from novic_ros.eval.annotations import Annotation, FrameKey, match_annotations
    matched, _ = match_annotations([Annotation(FrameKey('/left', None, stamp(8)), ('dog',), 2)], frames)
    assert list(matched) == [1]


def test_a_cut_mcap_file_passed_alone_is_salvaged(tmp_path):
    """A recorder killed mid-file leaves an mcap without summary or footer. Frames of the chunks
    that were written whole are read; big frames make the rosbags writer close a chunk (1 MiB)."""
    plan = [('/cam', i) for i in range(6)]
    big = lambda i: mono_cdr(i, h=480, w=640)
    write_ros2(tmp_path / 'rec', plan, payload=big)
    intact = tmp_path / 'rec' / 'rec.mcap'
    data = intact.read_bytes()
    cut = int(len(data) * 0.8)
    with open(intact, 'rb') as f:
        complete = [c for c in make_reader(f).get_summary().chunk_indexes
                    if c.chunk_start_offset + c.chunk_length <= cut]
    whole = sum(any(c.message_start_time <= stamp(i) <= c.message_end_time for c in complete) for _, i in plan)
    assert 0 < whole < len(plan)
    lone = tmp_path / 'cut.mcap'
    lone.write_bytes(data[:cut])
    frames, warnings, opened = read_all(lone)
    assert [f.index for f in frames] == list(range(whole))
    assert [f.stamp_ns for f in frames] == [stamp(i) for i in range(whole)]
    assert any('no readable index' in w for w in warnings)
    assert opened.tallies['/cam'].expected is None


def damaged_payload(bad: set[int]):
    return lambda i: b'\x00\x01\x00\x00' + b'\xff' * 12 if i in bad else mono_cdr(i)


def test_skipped_messages_keep_later_indices_and_are_counted(tmp_path, capsys):
    plan = [('/cam', i) for i in range(5)]
    bag = write_ros2(tmp_path / 'bag', plan, payload=damaged_payload({1, 3}))
    ann = tmp_path / 'ann.csv'
    ann.write_text('topic,frame,nouns\n,4,dog\n,1,cat\n')
    out = tmp_path / 'r'
    assert eval_main(['offline', str(bag), '--out', str(out), '--annotations', str(ann), '--backend', 'torch',
                      '--no-progress']) == 0
    rows = [json.loads(line) for line in (out / 'labels.jsonl').read_text().splitlines()]
    assert [(r['index'], r['stamp_ns']) for r in rows] == [(0, stamp(0)), (2, stamp(2)), (4, stamp(4))]
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['topics'] == [{'topic': '/cam', 'msgtype': IMAGE, 'listed': 5, 'read': 5,
                                  'skipped': {'cannot be deserialised': 2}, 'labelled': 3, 'unanswered': 0,
                                  'skipped_total': 2}]
    assert summary['score']['n'] == 1
    captured = capsys.readouterr()
    assert 'message 1:' in captured.err and 'message 3:' in captured.err and 'message 0' not in captured.err
    assert '/cam: 5 read, 2 skipped (2 cannot be deserialised), 3 labelled' in captured.out
    assert (
        '| /cam | sensor_msgs/msg/Image | 5 | 5 | 2 (2 cannot be deserialised) | 3 |' in (out / 'report.md').read_text()
    )


def test_a_bag_of_unreadable_messages_fails_clearly(tmp_path, capsys):
    """Every image message fails to deserialise, in a split bag with a file missing: exit 1 with the
    reason, and the warning about the missing file is not lost with the error."""
    bag = write_split(tmp_path / 'rec', payload=damaged_payload(set(range(10))))
    (bag / 'rec_2.mcap').unlink()
    for mode, extra in (('offline', ['--backend', 'torch']), ('live', ['--start-node'])):
        assert eval_main([mode, str(bag), '--out', str(tmp_path / mode), '--no-progress', *extra]) == 1
        err = capsys.readouterr().err
        assert 'no image message of bag' in err and '3 cannot be deserialised' in err
        assert 'rec_2.mcap is missing' in err
    with pytest.raises(BagError, match='no image message'):
        read_all(bag)


@pytest.mark.parametrize('case', ['missing', 'not-a-bag', 'ros1-unindexed', 'no-images'])
def test_what_cannot_be_read_is_said_before_the_model_loads(tmp_path, capsys, case):
    """--model names no model: these must fail on the bag, never reach the model."""
    if case == 'missing':
        path, expect = tmp_path / 'nope', 'does not exist'
    elif case == 'not-a-bag':
        path, expect = tmp_path / 'notes.txt', 'rosbags-convert'
        path.write_text('hi')
    elif case == 'ros1-unindexed':
        full = write_ros1(tmp_path / 'full.bag', TWO_CAMERAS).read_bytes()
        path, expect = tmp_path / 'crashed.bag.active', 'rosbag reindex'
        path.write_bytes(full[:len(full) // 2])
    else:
        path, expect = tmp_path / 'chatter', 'no sensor_msgs/Image or CompressedImage topic'
        w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        w.open()
        conn = w.add_connection('/chatter', 'std_msgs/msg/String', typestore=STORE)
        w.write(conn, 1, STORE.serialize_cdr(STORE.types['std_msgs/msg/String'](data='hi'), 'std_msgs/msg/String'))
        w.close()
    assert eval_main(['offline', str(path), '--model', 'no-such-model']) == 1
    err = capsys.readouterr().err
    assert expect in err and 'no-such-model' not in err


# -- make-bag ------------------------------------------------------------------------------------

def image_folder(tmp_path: Path, labels, widths=(16, 16, 16)) -> Path:
    from PIL import Image
    folder = tmp_path / 'imgs'
    folder.mkdir()
    for i, w in enumerate(widths):
        Image.fromarray(np.repeat(gray(i, 12, w)[..., None], 3, axis=2)).save(folder / f'{i:02d}.png')
    (folder / 'labels.json').write_text(json.dumps(labels))
    return folder


def test_make_bag_takes_a_noun_or_a_list_per_image(tmp_path):
    folder = image_folder(tmp_path, {'00.png': 'red apple', '02.png': ['golden retriever', 'dog']})
    res = make_bag(folder, tmp_path / 'bag', progress=False)
    assert res.annotations.read_text().splitlines() == [
        'topic,frame,nouns', '/camera/image_raw,0,red apple', '/camera/image_raw,2,golden retriever;dog']


@pytest.mark.parametrize('labels,expect', [({'00.png': 3}, 'a noun or a list'), ({'00.png': []}, 'a noun or a list'),
                                           ({'07.png': 'dog'}, 'not images'), (['dog'], 'must map')])
def test_make_bag_checks_labels_before_writing(tmp_path, labels, expect):
    folder = image_folder(tmp_path, labels)
    with pytest.raises(BagError, match=expect):
        make_bag(folder, tmp_path / 'bag', progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['imgs']
    (folder / 'labels.json').write_text(json.dumps({'00.png': 'dog'}))      # fixed: the same command now works
    assert make_bag(folder, tmp_path / 'bag', progress=False).frames == 3


def test_make_bag_failing_midway_leaves_nothing(tmp_path):
    folder = image_folder(tmp_path, {'00.png': 'dog'}, widths=(16, 16, 15))     # 4:2:2 needs an even width
    with pytest.raises(ValueError, match='odd width'):
        make_bag(folder, tmp_path / 'bag', encoding='yuv422', progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['imgs']


def test_a_message_that_decompresses_past_the_frame_bound_is_skipped_not_expanded(tmp_path):
    """Message-level zstd: a 2000x2000 frame compresses to a few kB. With max_pixels 100,000 the
    decompression stops at the bound (16 bytes a pixel + 1 MiB), the message is skipped as 'too
    large' under its own index, and the frames around it are read."""
    big = lambda i: mono_cdr(i, h=2000, w=2000) if i == 2 else mono_cdr(i)
    bag = write_ros2(tmp_path / 'bag', [('/cam', i) for i in range(4)], mode=CompressionMode.MESSAGE, payload=big)
    with open_bag(bag, max_pixels=100_000) as opened:
        assert opened.max_message_bytes == message_bytes_limit(100_000) < 2000 * 2000
        frames = list(opened.frames())
        assert [f.index for f in frames] == [0, 1, 3]
        assert opened.tallies['/cam'].skipped == {'too large': 1}
        assert 'message 2:' in opened.tallies['/cam'].examples['too large'][0]
    assert_pixels(frames, {'/cam': [0, 1, 3]})
    with open_bag(bag) as opened:                  # the default bound (4K frames) lets it through
        assert [f.index for f in opened.frames()] == [0, 1, 2, 3]
