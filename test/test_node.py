"""The real novic_node process: frames published over rclpy, Classification messages asserted."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from novic_ros.frames.conversion import compressed_to_rgb, encode_compressed, raw_to_rgb, rgb_to_raw  # noqa: E402
from novic_ros.training import toy_world  # noqa: E402
from ros_helpers import NODE_BACKEND, NODE_MODEL, NodeProcess, RosClient  # noqa: E402

TOP_K = 3


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    client = RosClient()
    yield client
    client.close()
    rclpy.try_shutdown()


def image_msg(rgb: np.ndarray, encoding='rgb8', padding=0, frame_id='cam', stamp=0) -> Image:
    data, step = rgb_to_raw(rgb, encoding, row_padding=padding)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=step, data=data)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp, 1234
    return msg


def renders(n, size=(120, 160), seed=0):
    return [x.image for x in toy_world.render_set(1, size, seed=seed, classes=list(range(0, 160, 160 // n))[:n])]


def by_frame_id(msgs):
    return {m.header.frame_id: m for m in msgs}


def assert_classification(msg, expected, frame_id, stamp):
    """Header copied, k sorted probabilities, and the same labels as the core for that frame."""
    assert msg.header.frame_id == frame_id and msg.header.stamp.sec == stamp and msg.header.stamp.nanosec == 1234
    scores = [r.score for r in msg.results]
    assert len(msg.results) == TOP_K
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert [r.class_id for r in msg.results] == [l.text for l in expected.labels]
    assert np.allclose(scores, [l.score for l in expected.labels], atol=1e-4)


@pytest.fixture(scope='module')
def raw_node(ros, tmp_path_factory):
    node = NodeProcess(tmp_path_factory.mktemp('raw'), 'qos:=reliable', 'model:=toy', 'backend:=torch',
                       f'top_k:={TOP_K}', 'publish_overlay:=true')
    yield node
    node.stop()


def test_raw_frames_in_every_encoding_with_row_padding(ros, raw_node, toy_classifier):
    out = ros.subscribe(Classification, '/novic/labels')
    overlay = ros.subscribe(Image, '/novic/novic_node/image_labeled')
    pub = ros.publisher(Image, '/novic/image')
    ros.wait_matched(pub, raw_node)
    encodings = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', 'yuv422', 'yuv422_yuy2']
    frames = renders(len(encodings))
    sent = {}
    for i, (enc, rgb) in enumerate(zip(encodings, frames)):
        msg = image_msg(rgb, enc, padding=7 if i % 2 else 0, frame_id=f'{enc}-{i}', stamp=100 + i)
        sent[msg.header.frame_id] = (msg, 100 + i)
        pub.publish(msg)
        # One at a time, so the newest-frame policy never drops one of these.
        assert out.wait_for(lambda m: len(m) > i, 60), raw_node.log()
    got = by_frame_id(out.items)
    for fid, (msg, stamp) in sent.items():
        seen = raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
        assert_classification(got[fid], toy_classifier.classify(seen)[0], fid, stamp)
    # Generated labels make sense: most renders are named by the toy noun they show.
    truth = {f'{enc}-{i}': toy_world.NOUNS[c] for i, (enc, c) in enumerate(zip(encodings, range(0, 160, 20)))}
    assert sum(got[f].results[0].class_id == truth[f] for f in truth) >= len(truth) // 2
    assert overlay.wait_for(lambda m: len(m) >= len(encodings), 10)
    o = overlay.items[0]
    assert o.encoding == 'rgb8' and (o.height, o.width) == (120, 160) and o.header.frame_id == 'rgb8-0'


def test_bad_frames_are_rejected_and_the_node_keeps_labelling(ros, raw_node, toy_classifier):
    out = ros.subscribe(Classification, '/novic/labels')
    diag = ros.subscribe(DiagnosticArray, '/diagnostics')
    pub = ros.publisher(Image, '/novic/image')
    ros.wait_matched(pub, raw_node)
    good = renders(4, seed=7)
    bad = [
        Image(height=8, width=8, encoding='bayer_rggb8', step=8, data=bytes(64)),       # unknown encoding
        Image(height=120, width=160, encoding='rgb8', step=480, data=bytes(1000)),      # truncated
        Image(height=120, width=160, encoding='rgb8', step=100, data=bytes(120 * 480)),  # step < row
        Image(height=0, width=0, encoding='rgb8', step=0, data=b''),                     # empty
    ]
    def rejections(m):
        return int({kv.key: kv.value for s in m.status for kv in s.values}.get('frames_rejected', 0))

    def rejected_at_least(n):
        return lambda msgs: any(rejections(m) >= base + n for m in msgs)

    # A first good frame proves the path end to end, so a bad frame cannot be lost to discovery. Each bad
    # frame is then awaited in /diagnostics before the next good one is sent: the node keeps only the
    # newest frame, so a good frame sent at once could replace a bad one before it is looked at.
    pub.publish(image_msg(good[0], frame_id='warm-up', stamp=0))
    assert out.wait_for(lambda m: any(x.header.frame_id == 'warm-up' for x in m), 60), raw_node.log()
    assert diag.wait_for(lambda m: len(m) >= 1, 10)
    base = rejections(diag.items[-1])
    for i, (g, b) in enumerate(zip(good, bad)):
        b.header.frame_id = f'bad-{i}'
        pub.publish(b)
        assert diag.wait_for(rejected_at_least(i + 1), 30), raw_node.log()[-3000:]
        pub.publish(image_msg(g, frame_id=f'good-{i}', stamp=i))
        assert out.wait_for(lambda m: any(x.header.frame_id == f'good-{i}' for x in m), 60), raw_node.log()
    got = by_frame_id(out.items)
    assert not any(f.startswith('bad-') for f in got)
    for i, g in enumerate(good):
        assert_classification(got[f'good-{i}'], toy_classifier.classify(g)[0], f'good-{i}', i)
    assert raw_node.alive()

    def rejected(msgs):
        for m in msgs:
            values = {kv.key: kv.value for s in m.status for kv in s.values}
            if int(values.get('frames_rejected', 0)) >= base + 4:
                return True
        return False
    assert diag.wait_for(rejected, 5), [m.status for m in diag.items[-1:]]
    log = raw_node.log()
    # Each kind of problem is warned about (throttled per kind), naming the problem.
    assert 'bayer_rggb8' in log and 'truncated frame' in log and 'step too small' in log and 'empty image' in log
    values = {kv.key: kv.value for s in diag.items[-1].status for kv in s.values}
    assert {'rejected: unsupported encoding', 'rejected: truncated frame', 'rejected: step too small',
            'rejected: empty image'} <= set(values)


def test_a_best_effort_camera_on_a_reliable_subscription_is_named_with_the_fix(ros, raw_node):
    """qos: reliable (this module's node) and a best-effort camera: no frame of it can arrive. One warning
    names the incompatible policy and the fix (qos: auto, the default, matches the publishers)."""
    from rclpy.qos import qos_profile_sensor_data
    pub = ros.publisher(Image, '/novic/image', qos_profile_sensor_data)
    try:
        end = time.monotonic() + 20
        while 'offers QoS incompatible' not in raw_node.log():
            assert time.monotonic() < end, raw_node.log()[-2000:]
            time.sleep(0.1)
        line = next(x for x in raw_node.log().splitlines() if 'offers QoS incompatible' in x)
        assert 'RELIABILITY' in line and 'set qos: auto' in line and '/novic/image' in line
        diag = ros.subscribe(DiagnosticArray, '/diagnostics')
        assert diag.wait_for(lambda msgs: any(s.name.startswith('/novic/') and 'set qos: auto' in s.message
                                              for m in msgs for s in m.status), 5)
    finally:
        ros.node.destroy_publisher(pub)


def test_diagnostics_report_rates_latency_and_backend(ros, raw_node):
    diag = ros.subscribe(DiagnosticArray, '/diagnostics')
    assert diag.wait_for(lambda m: len(m) >= 2, 10)
    status = diag.items[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    for key in ('input_rate_hz', 'output_rate_hz', 'latency_p50_ms', 'latency_p95_ms', 'frames_dropped',
                'frames_rejected', 'backend', 'model', 'device'):
        assert key in values
    assert values['backend'] == NODE_BACKEND and values['model'] == NODE_MODEL and values['device'] == 'cpu'
    assert 'novic_node' in status.name
    assert float(values['latency_p50_ms']) > 0
    t = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in diag.items[-2:]]
    assert 0.5 < t[1] - t[0] < 2.0      # 1 Hz


def test_a_flood_leaves_the_node_on_the_newest_frame(ros, raw_node):
    out = ros.subscribe(Classification, '/novic/labels')
    diag = ros.subscribe(DiagnosticArray, '/diagnostics')
    pub = ros.publisher(Image, '/novic/image')
    ros.wait_matched(pub, raw_node)
    frame = renders(1, size=(240, 320))[0]
    n = 60
    for i in range(n):
        pub.publish(image_msg(frame, frame_id=f'flood-{i}', stamp=i))
        time.sleep(0.002)
    published_all = time.monotonic()
    assert out.wait_for(lambda m: any(x.header.frame_id == f'flood-{n - 1}' for x in m), 30), raw_node.log()
    flood = [
        (int(m.header.frame_id[6:]), t) for m, t in zip(out.items, out.times) if m.header.frame_id.startswith('flood-')
    ]
    # Far fewer answers than frames: stale frames were dropped, not queued...
    assert len(flood) < n / 2
    # ...answered in order, ending with the newest frame, and no backlog worked off after the flood:
    # at most the frame in flight and the newest one are answered once publishing stopped.
    ids = [i for i, _ in flood]
    assert ids == sorted(ids) and ids[-1] == n - 1
    assert sum(t > published_all for _, t in flood) <= 2
    values = {kv.key: kv.value for kv in diag.items[-1].status[0].values} if diag.wait_for(lambda m: m, 3) else {}
    assert int(values['frames_dropped']) >= n // 2


def test_compressed_frames_and_corrupt_jpeg(ros, tmp_path, toy_classifier):
    node = NodeProcess(tmp_path, 'qos:=reliable', 'transport:=compressed', 'image_topics:=[cam_a, cam_b]',
                       f'top_k:={TOP_K}', 'backend:=torch', namespace='/ctest')
    try:
        out = ros.subscribe(Classification, '/ctest/labels')
        pubs = [ros.publisher(CompressedImage, f'/ctest/{c}/compressed') for c in ('cam_a', 'cam_b')]
        for p in pubs:
            ros.wait_matched(p, node)
        frames = renders(4, seed=11)
        msgs = []
        for i, rgb in enumerate(frames):
            fmt = 'jpeg' if i % 2 == 0 else 'png'
            m = CompressedImage(format=f'rgb8; {fmt} compressed bgr8', data=encode_compressed(rgb, fmt))
            m.header.frame_id, m.header.stamp.sec, m.header.stamp.nanosec = f'c-{i}', i, 1234
            msgs.append(m)
        corrupt = CompressedImage(format='jpeg', data=b'\xff\xd8\xff\xe0' + bytes(200))
        corrupt.header.frame_id = 'corrupt'
        for i, m in enumerate(msgs):
            if i == 1:
                pubs[1].publish(corrupt)
                time.sleep(1.0)       # a newer frame would replace it before the worker sees it
            pubs[i % 2].publish(m)
            assert out.wait_for(lambda got: any(x.header.frame_id == f'c-{i}' for x in got), 60), node.log()
        got = by_frame_id(out.items)
        assert 'corrupt' not in got
        for i, m in enumerate(msgs):
            assert_classification(got[f'c-{i}'], toy_classifier.classify(compressed_to_rgb(m.format, m.data))[0],
                                  f'c-{i}', i)
        assert node.alive() and 'rejected (undecodable)' in node.log()
    finally:
        node.stop()


def test_rate_hz_caps_the_output_rate(ros, tmp_path):
    node = NodeProcess(tmp_path, 'qos:=reliable', 'rate_hz:=2.0', 'backend:=torch', 'beam_width:=1', 'top_k:=1',
                       namespace='/rtest')
    try:
        out = ros.subscribe(Classification, '/rtest/labels')
        diag = ros.subscribe(DiagnosticArray, '/diagnostics')
        pub = ros.publisher(Image, '/rtest/image')
        ros.wait_matched(pub, node)
        frame = renders(1)[0]
        sent = 0
        while len(out) < 7:
            pub.publish(image_msg(frame, frame_id=f'r-{sent}'))
            sent += 1
            time.sleep(0.05)                      # about 20 Hz in
        # Judged by the node's own clock (its diagnostics), so a slow test client cannot bunch the answers up.
        ours = lambda msgs: [s for a in msgs for s in a.status  # noqa: E731
                             if s.name.startswith('/rtest/') and int(_value(s, 'frames_published')) >= 6]
        assert diag.wait_for(ours, 10)
        rates = [float(_value(s, 'output_rate_hz')) for s in ours(diag.items)]
        assert sent >= 2 * len(out) and max(rates) <= 2.0 * 1.1
    finally:
        node.stop()


def _value(status, key: str) -> str:
    return next(kv.value for kv in status.values if kv.key == key)


def test_a_missing_model_fails_at_start_with_one_clear_error(tmp_path):
    node = NodeProcess(tmp_path, 'model:=no_such_variant')
    assert node.wait_exit(90) != 0
    log = node.log()
    assert 'unknown model variant' in log and 'no_such_variant' in log and 'toy' in log
    node.stop()


def test_an_invalid_parameter_fails_at_start_naming_it(tmp_path):
    node = NodeProcess(tmp_path, 'top_k:=7', 'beam_width:=2')
    assert node.wait_exit(90) != 0
    assert 'top_k' in node.log() and 'beam_width' in node.log()
    node.stop()


def test_a_missing_decoder_checkpoint_fails_naming_the_path(tmp_path, tiny_clip_dir):
    models = tmp_path / 'models.yaml'
    models.write_text(f"broken:\n  clip_model: local-dir:{tiny_clip_dir}\n  decoder: {tmp_path}/nowhere\n")
    node = NodeProcess(tmp_path, 'model:=broken', f'models_file:={models}')
    assert node.wait_exit(90) != 0
    assert f'{tmp_path}/nowhere' in node.log() and 'novic-train' in node.log()
    node.stop()


def test_live_parameters_are_validated_on_set(ros, raw_node):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(ros.node, '/novic/novic_node')
    assert client.wait_for_services(timeout_sec=30)

    def set_(**values):
        fut = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        end = time.monotonic() + 30
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.02)
        return fut.result().results
    out = ros.subscribe(Classification, '/novic/labels')
    pub = ros.publisher(Image, '/novic/image')
    ros.wait_matched(pub, raw_node)
    try:
        assert set_(top_k=1)[0].successful
        pub.publish(image_msg(renders(1)[0], frame_id='k1'))
        assert out.wait_for(lambda m: any(x.header.frame_id == 'k1' for x in m), 30)
        assert len(by_frame_id(out.items)['k1'].results) == 1
        too_many = set_(top_k=9)[0]                     # more than beam_width (5) candidates
        assert not too_many.successful and 'beam_width' in too_many.reason
        assert not set_(top_k=0)[0].successful          # outside the declared range
        model = set_(model='b32')[0]
        assert not model.successful                     # needs a restart: declared read-only
        assert set_(rate_hz=50.0, min_score=0.01)[0].successful
    finally:
        set_(top_k=TOP_K, rate_hz=0.0, min_score=0.0)


def test_live_settings_are_swapped_whole_between_frames(ros, tmp_path):
    """Label list and top_k change together (atomically) while frames stream: every message was
    computed with one whole set of settings, never the list of one and the top_k of the other; an
    invalid change is refused with its reason and changes nothing."""
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    # top_k -> labels: three labels each, so a message with the list of one and the top_k of the other shows.
    sets = {3: ('dog', 'cat', 'apple'), 2: ('pizza', 'tractor', 'guitar')}
    node = NodeProcess(tmp_path, 'qos:=reliable', 'backend:=torch', 'mode:=prompted', 'labels:=[dog, cat, apple]',
                       'top_k:=3', namespace='/swap')
    client = AsyncParameterClient(ros.node, '/swap/novic_node')

    def call(fut):
        end = time.monotonic() + 30
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.02)
        return fut.result()

    try:
        assert client.wait_for_services(timeout_sec=60), node.log()
        out = ros.subscribe(Classification, '/swap/labels')
        pub = ros.publisher(Image, '/swap/image')
        ros.wait_matched(pub, node)
        frames = renders(4)
        stop = threading.Event()

        def stream():
            i = 0
            while not stop.is_set():
                pub.publish(image_msg(frames[i % len(frames)], frame_id=f's-{i}'))
                i += 1
                time.sleep(0.02)
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        try:
            for switch in range(12):
                k = 2 if switch % 2 == 0 else 3
                result = call(client.set_parameters_atomically(
                    [Parameter('labels', value=list(sets[k])), Parameter('top_k', value=k)])).result
                assert result.successful, result.reason
                before = len(out)
                assert out.wait_for(lambda m: len(m) >= before + 3, 30), node.log()
            refused = {
                'labels': call(client.set_parameters([Parameter('labels', value=[''])])).results[0],
                'prompt_template': call(client.set_parameters([Parameter('prompt_template', value='no slot')])).results[
                    0
                ],
                'mode': call(client.set_parameters([Parameter('mode', value='sorting')])).results[0],
                'model': call(client.set_parameters([Parameter('model', value='b32')])).results[0],
            }
            before = len(out)
            assert out.wait_for(lambda m: len(m) >= before + 3, 30)
        finally:
            stop.set()
            streamer.join()
        assert not refused['labels'].successful and 'label list' in refused['labels'].reason
        assert not refused['prompt_template'].successful and '{}' in refused['prompt_template'].reason
        assert not refused['mode'].successful and 'sorting' in refused['mode'].reason
        assert not refused['model'].successful and 'read-only' in refused['model'].reason
        seen = {2: 0, 3: 0}
        for m in out.items:
            got = tuple(r.class_id for r in m.results)
            k = len(got)
            assert k in sets and set(got) <= set(sets[k]), f"message computed with mixed settings: {got}"
            seen[k] += 1
        assert seen[2] >= 6 and seen[3] >= 6
        assert len(out.items[-1].results) == 3        # the refused changes left the last good settings
    finally:
        node.stop()


def test_start_is_quiet_and_logs_under_one_name(raw_node):
    """The node's start (done: the tests above got labels): one INFO line naming the categories (their
    WordNet synsets and glosses at DEBUG only), every line under the node's own logger name, Python
    logging (model loading) included."""
    import re
    lines = [line for line in raw_node.log().splitlines() if line.startswith('[')]
    names = {line.split('] [')[2].split(']')[0] for line in lines if line.count('] [') >= 2}
    assert names == {'novic.novic_node'}, raw_node.log()
    categories = [line.split(']: ', 1)[1] for line in lines if 'categories' in line]
    assert len(categories) == 1, raw_node.log()
    count, names = re.fullmatch(r'categories \((\d+)\): (.+)', categories[0]).groups()
    assert int(count) == len(names.split(', ')) > 1 and 'animal' in names.split(', ')
    assert '.n.0' not in raw_node.log()                      # no synset names, no glosses
    assert any('novic_ros.' in line for line in lines)
