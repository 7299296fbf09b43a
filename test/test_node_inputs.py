"""Real inputs to novic_node: a stock camera in its own process (default middleware settings, no Fast
DDS profile, default QoS) gets its frames labelled; frames lost in transport are counted and named;
frames of extreme shape or size cost bounded memory, and the next good frame is labelled.

The node runs with the README's command line (the package's params file, `image` remapped to the
camera topic) and without the Fast DDS profile; `threads:=1` because the CI machine has 2 cores,
which the camera process and the node share."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from PIL import Image as PILImage  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from novic_ros.frames.conversion import rgb_to_raw  # noqa: E402
from novic_ros.ros.stock_camera import Stream, results, smooth_pattern, start_stock_camera  # noqa: E402
from ros_helpers import NodeProcess, RosClient  # noqa: E402

RAW_CAMERA = '/camera/image_raw'
JPEG_CAMERA = '/camera_jpeg/image_raw'
MB = 1 << 20


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    client = RosClient('novic_inputs_client')
    yield client
    client.close()
    rclpy.try_shutdown()


@pytest.fixture(scope='module')
def nodes(tmp_path_factory):
    """Two nodes started together (their start-up overlaps): raw and compressed transport."""
    tmp = tmp_path_factory.mktemp('inputs')
    # qos_depth 30 (default 5): a loaded CI machine can stall the node's executor for longer than five
    # 30 Hz frames, and a keep-last queue then replaces the oldest with the newest before the node takes
    # them, which DDS does not count. These tests are about what the transport delivers; the node's own
    # newest-frame policy still drops, and counts, what the model cannot keep up with.
    common = ('model:=toy', 'backend:=torch', 'threads:=1', 'qos_depth:=30')
    started = {
        'raw': NodeProcess(tmp, *common, namespace='/raw_in', remaps=[f'image:={RAW_CAMERA}']),
        'compressed': NodeProcess(tmp, *common, 'transport:=compressed', namespace='/jpeg_in',
                                  remaps=[f'image:={JPEG_CAMERA}']),
    }
    yield started
    for n in started.values():
        n.proc.terminate()        # both shut down at once
    for n in started.values():
        n.stop()


def labelled(collector, tag: str) -> int:
    return len({m.header.frame_id for m in list(collector.items) if m.header.frame_id.rsplit('-', 1)[0] == tag})


def diagnostics_of(ros, namespace: str, predicate, timeout: float = 10.0, after_ns: int = 0):
    """The first /diagnostics status of the node in `namespace`, stamped after `after_ns`, whose values
    satisfy `predicate`: (status, values)."""
    diag = ros.subscribe(DiagnosticArray, '/diagnostics')
    found = []

    def ok(msgs):
        for m in msgs:
            if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec < after_ns:
                continue
            for s in m.status:
                values = {kv.key: kv.value for kv in s.values}
                if s.name.startswith(namespace + '/') and predicate(values):
                    found.append((s, values))
                    return True
        return False
    assert diag.wait_for(ok, timeout), [(s.message, {kv.key: kv.value for kv in s.values}) for m in diag.items[-2:]
                                        for s in m.status if s.name.startswith(namespace + '/')]
    return found[0]


def counters(ros, namespace: str) -> dict[str, int]:
    """The node's frame counters, from a /diagnostics message sent after this call."""
    now = ros.node.get_clock().now().nanoseconds
    _, values = diagnostics_of(ros, namespace, lambda v: True, timeout=120, after_ns=now)   # the node may be starting
    return {k: int(v) for k, v in values.items() if k.startswith('frames_')}


def play(ros, node, namespace: str, camera_topic: str, streams, *, profile=False, drain_s=3.0):
    """Run the stock camera process. Returns per stream tag (frames sent, frames labelled), and what the
    node's counters (frames_received, _dropped, _lost, ...) grew by meanwhile."""
    out = ros.subscribe(Classification, f'{namespace}/labels', qos=500)
    before = counters(ros, namespace)
    cam = start_stock_camera(camera_topic, streams, profile=profile, wait_s=120)
    summary = results(cam, timeout=600)
    assert cam.returncode == 0 and len(summary) == len(streams), (summary, node.log()[-3000:])
    for s in summary:
        assert 'error' not in s, (s, node.log()[-3000:])
    end = time.monotonic() + drain_s
    while time.monotonic() < end and sum(labelled(out, s.tag) for s in streams) < sum(s.count for s in streams):
        time.sleep(0.1)
    after = counters(ros, namespace)
    return ({s['tag']: (s['sent'], labelled(out, s['tag'])) for s in summary},
            {k: after[k] - before.get(k, 0) for k in after})


def assert_delivered(counts, grown, node, floor: float, reach: float = 0.99):
    """At least 99% of the frames reach the node, none is lost on the way, and every one that reached
    it is labelled or dropped for a newer one (the node's newest-frame policy, counted in /diagnostics):
    99% labelled whenever the model was free for the frame. On a busy machine frames also arrive in
    bunches (a reliable camera's resent fragments hold back the frames behind them, which then come
    together), so the labelled share alone is only held to `floor`. At 30 Hz on a loaded machine a frame
    can also be replaced in the subscription's queue (keep last, `qos_depth`) if the node's executor
    waits for the CPU longer than the queue holds: the newest-frame policy one step earlier, which DDS
    does not count, so those streams are held to `reach` = 95% received. How many of them the model
    labels at 30 Hz is its speed on this machine, measured in `make bench` (section delivery), so they
    are held only to half."""
    sent = sum(s for s, _ in counts.values())
    got = sum(g for _, g in counts.values())
    report = f"{got} of {sent} labelled; node counters grew by {grown}\n{node.log()[-3000:]}"
    assert grown['frames_received'] >= reach * sent and grown['frames_lost'] == 0, report
    assert got + grown['frames_dropped'] >= reach * sent, report
    assert got >= floor * sent, report


# --- every frame a stock camera sends ---------------------------------------------------------

def test_raw_frames_from_a_stock_reliable_camera_are_labelled(ros, nodes):
    """640x480 and 1280x720, rgb8/bgr8/mono8, at 10 and 30 Hz, from a publisher with the ROS default QoS
    (reliable) and no profile, which a best-effort subscription got 0-3% of (see README)."""
    node = nodes['raw']
    counts, grown = play(ros, node, '/raw_in', RAW_CAMERA, [Stream('vga-rgb8-10hz', 640, 480, 'rgb8', 10, 100),
                                                             Stream('hd-rgb8-10hz', 1280, 720, 'rgb8', 10, 50)])
    assert_delivered(counts, grown, node, floor=0.9)
    assert f'subscribing to {RAW_CAMERA} (Image, reliable; qos: auto, 1 publisher (reliable) found)' in node.log()
    counts, grown = play(ros, node, '/raw_in', RAW_CAMERA, [Stream('vga-bgr8-30hz', 640, 480, 'bgr8', 30, 100),
                                                             Stream('hd-mono8-30hz', 1280, 720, 'mono8', 30, 100)])
    assert_delivered(counts, grown, node, floor=0.5, reach=0.95)


def test_compressed_frames_from_a_stock_camera_are_labelled(ros, nodes):
    node = nodes['compressed']
    counts, grown = play(ros, node, '/jpeg_in', JPEG_CAMERA, [
        Stream('hd-jpeg-10hz', 1280, 720, 'jpeg', 10, 100, transport='compressed')])
    assert_delivered(counts, grown, node, floor=0.9)
    counts, grown = play(
        ros,
        node,
        '/jpeg_in',
        JPEG_CAMERA,
        [
            Stream('vga-jpeg-30hz', 640, 480, 'jpeg', 30, 100, transport='compressed'),
            # qos: auto follows the camera to best effort (a reliable subscription would get nothing); a JPEG
            # frame fits one 64 KB fragment, so it is not lost in shared memory.
            Stream(
                'vga-jpeg-best-effort-30hz',
                640,
                480,
                'jpeg',
                30,
                100,
                transport='compressed',
                reliability='best_effort',
            ),
        ],
    )
    assert_delivered(counts, grown, node, floor=0.5, reach=0.95)


def test_large_frames_lost_by_a_best_effort_camera_are_counted_and_the_profile_fixes_them(ros, nodes):
    """No subscriber setting recovers fragments a best-effort publisher's 512 KB shared-memory segment
    overwrote: the loss is counted (message_lost) in /diagnostics and named in one warning with the fixes.
    The same camera with the package's profile (a 16 MB segment) gets its frames through."""
    node = nodes['raw']
    burst = Stream('burst-best-effort', 1280, 720, 'rgb8', 0, 40, reliability='best_effort')  # as fast as it can
    counts, grown = play(ros, node, '/raw_in', RAW_CAMERA, [burst], drain_s=1.0)
    sent, got = counts[burst.tag]
    assert grown['frames_lost'] > 0 and got + grown['frames_lost'] <= sent + 1, (counts, grown)
    status, _ = diagnostics_of(ros, '/raw_in', lambda v: int(v['frames_lost']) > 0)
    assert status.level == DiagnosticStatus.WARN and 'lost in transport' in status.message
    warnings = [line for line in node.log().splitlines() if 'lost in transport on' in line]
    assert warnings and all(
        w in warnings[0] for w in ('transport: compressed', 'fastdds_large_frames.xml', 'publish reliable')
    )

    counts, grown = play(ros, node, '/raw_in', RAW_CAMERA, [
        Stream('profile-best-effort-30hz', 640, 480, 'rgb8', 30, 100, reliability='best_effort')], profile=True)
    assert_delivered(counts, grown, node, floor=0.5, reach=0.95)


# --- bounded cost per frame -----------------------------------------------------------------------

def _status_mb(pid: int, key: str) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak(pid: int) -> None:
    try:
        Path(f'/proc/{pid}/clear_refs').write_text('5')    # Linux: VmHWM restarts from VmRSS
    except OSError as e:
        pytest.skip(f"cannot reset the peak RSS of the node process ({e})")


class FrameSender:
    """Publishes frames from this process and waits for each outcome, measuring the node's peak RSS."""

    def __init__(self, ros, node, namespace: str, topic: str, msg_type):
        self.ros, self.node, self.ns = ros, node, namespace
        self.out = ros.subscribe(Classification, f'{namespace}/labels', qos=50)
        self.pub = ros.publisher(msg_type, topic)
        ros.wait_matched(self.pub, node)
        # qos: auto resubscribes reliable once it sees this reliable publisher; frames sent before would be lost.
        end = time.monotonic() + 30
        while not any(s.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                      for s in ros.node.get_subscriptions_info_by_topic(topic)):
            assert time.monotonic() < end, node.log()[-2000:]
            time.sleep(0.05)
        time.sleep(0.3)

    def close(self) -> None:
        self.ros.node.destroy_publisher(self.pub)     # a silent publisher left on the topic would be warned about

    def labelled(self, msg, frame_id: str, timeout: float = 30) -> bool:
        msg.header.frame_id = frame_id
        self.pub.publish(msg)
        return self.out.wait_for(lambda m: any(x.header.frame_id == frame_id for x in m), timeout)

    def peak_growth_mb(self, msg, frame_id: str, good, expect_label: bool) -> float:
        """Peak RSS above the resting RSS while the node handles `msg`, then a good frame (which must be labelled)."""
        pid = self.node.proc.pid
        assert self.labelled(good, f'{frame_id}-warmup'), self.node.log()[-2000:]
        time.sleep(0.2)
        rss = _status_mb(pid, 'VmRSS')
        _reset_peak(pid)
        assert self.labelled(msg, frame_id, timeout=15 if expect_label else 3) == expect_label, self.node.log()[-2000:]
        assert self.labelled(good, f'{frame_id}-next'), f"the good frame after {frame_id} was not labelled"
        return _status_mb(pid, 'VmHWM') - rss


def raw_msg(rgb: np.ndarray, encoding='rgb8') -> Image:
    data, step = rgb_to_raw(rgb, encoding)
    return Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=step, data=data)


def png_msg(h: int, w: int, mode: str = 'RGB') -> CompressedImage:
    buf = io.BytesIO()
    PILImage.new(mode, (w, h), 120).save(buf, format='PNG')
    return CompressedImage(format='png', data=buf.getvalue())


def test_extreme_raw_frames_cost_bounded_memory(ros, nodes):
    node = nodes['raw']
    send = FrameSender(ros, node, '/raw_in', RAW_CAMERA, Image)
    good = raw_msg(smooth_pattern(480, 640))
    try:
        growth = {
            '1x40000': send.peak_growth_mb(raw_msg(smooth_pattern(1, 40000)), 'wide', good, expect_label=True),
            '40000x1': send.peak_growth_mb(raw_msg(smooth_pattern(40000, 1)), 'tall', good, expect_label=True),
            # 13.5 MP, over max_pixels: rejected from its header (the 13.5 MB message itself is in memory).
            '4500x3000 mono8': send.peak_growth_mb(raw_msg(np.zeros((3000, 4500, 3), np.uint8), 'mono8'), 'huge',
                                                   good, expect_label=False),
        }
    finally:
        send.close()
    print(f"peak RSS growth of the node, MB: {growth}")
    assert all(g < 100 for g in growth.values()), growth
    _, values = diagnostics_of(ros, '/raw_in', lambda v: int(v.get('rejected: too large', 0)) >= 1)
    assert 'larger than max_pixels' in node.log() and '4500x3000' in node.log()


def test_extreme_compressed_frames_cost_bounded_memory(ros, nodes):
    """Tiny PNG files that decode to 1x40000, 40000x1 and 12000x12000 pixels (the last one a
    decompression bomb: 2.8 GB and 5 s before the size check); Pillow's warning reaches the log."""
    node = nodes['compressed']
    send = FrameSender(ros, node, '/jpeg_in', JPEG_CAMERA + '/compressed', CompressedImage)
    good = png_msg(480, 640)
    bomb = png_msg(12000, 12000, 'L')
    assert len(bomb.data) < 600_000
    try:
        growth = {
            '1x40000': send.peak_growth_mb(png_msg(1, 40000), 'wide', good, expect_label=True),
            '40000x1': send.peak_growth_mb(png_msg(40000, 1), 'tall', good, expect_label=True),
            '12000x12000': send.peak_growth_mb(bomb, 'bomb', good, expect_label=False),
        }
    finally:
        send.close()
    print(f"peak RSS growth of the node, MB: {growth}")
    assert all(g < 100 for g in growth.values()), growth
    diagnostics_of(ros, '/jpeg_in', lambda v: int(v.get('rejected: too large', 0)) >= 1)
    rejected = [line for line in node.log().splitlines() if 'rejected (too large)' in line]
    assert rejected and '12000x12000' in rejected[0] and 'decompression bomb' in rejected[0]
    assert 'DecompressionBombWarning' not in node.log()      # not printed by the warnings module



# --- publishers are there, frames are not ------------------------------------------------------

def test_a_camera_that_sends_nothing_is_reported_once_with_what_to_check(ros, nodes):
    """A publisher on the topic and no frame for frame_timeout_s (5 s): one warning, and /diagnostics
    says so while it lasts. (Incompatible QoS: test_node.py; the causes and fixes: test_input_health.py.)"""
    node = nodes['raw']
    seen = len(node.log())
    pub = ros.publisher(Image, RAW_CAMERA)
    try:
        ros.wait_matched(pub, node)
        status, _ = diagnostics_of(ros, '/raw_in', lambda v: 'no frame for' in v.get(f'input {RAW_CAMERA}', ''),
                                   timeout=20)
        assert status.level == DiagnosticStatus.WARN and '1 publisher (reliable)' in status.message
        time.sleep(1.5)
        silence = [line for line in node.log()[seen:].splitlines() if f'no frame on {RAW_CAMERA} for' in line]
        assert len(silence) == 1 and 'check that the camera is streaming' in silence[0]
    finally:
        ros.node.destroy_publisher(pub)
