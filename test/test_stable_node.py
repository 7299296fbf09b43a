"""labels_stable and categories from the real novic_node, on a bag of a jittering toy scene.

The scene: one toy-world object, rendered once, seen by a shaking camera (shifts of a few pixels and
sensor noise on every frame) at 10 Hz, then swapped for another object. The toy decoder's raw labels
flicker between near neighbours on such a scene; the stable topic must change label at least 5x less
often, and follow the swap within the documented delay (StabilityOptions.switch_delay_s). Delays are
measured in the frames' header stamps, which the node smooths over, not in wall time.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from novic_ros.eval.make_bag import make_bag  # noqa: E402
from novic_ros.params import NodeParams  # noqa: E402
from novic_ros.training import toy_world  # noqa: E402
from conftest import needs_wordnet  # noqa: E402
from ros_helpers import NodeProcess, RosClient  # noqa: E402

pytestmark = needs_wordnet      # synonyms and categories need it; without it the node warns and publishes no categories

RATE_HZ = 10.0
SCENE, SWAP = 'wolf', 'tree'          # the toy decoder says wolf, koala or panda for this wolf; tree for the tree
STATIC_FRAMES, SWAP_FRAMES = 60, 40
SIZE, PAD, SHIFT, NOISE = (120, 160), 8, 4, 8.0
TOPIC, FRAME_ID = '/novic/image', 'front_camera'


def shaking_camera(noun: str, frames: int, seed: int) -> list[np.ndarray]:
    """One render of `noun`, cropped at a random shift of up to SHIFT pixels per frame, plus noise."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    scene = toy_world.render(toy_world.NOUNS.index(noun), (h + 2 * PAD, w + 2 * PAD), rng)
    out = []
    for _ in range(frames):
        dy, dx = rng.integers(-SHIFT, SHIFT + 1, 2)
        crop = scene[PAD + dy:PAD + dy + h, PAD + dx:PAD + dx + w].astype(np.float32)
        out.append(np.clip(crop + rng.normal(0.0, NOISE, crop.shape), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope='module')
def scene_bag(tmp_path_factory):
    """The bag as `novic-eval make-bag` writes it (mcap, rgb8, 10 Hz stamps); its messages as recorded."""
    from PIL import Image as PILImage
    from rosbags.rosbag2 import Reader
    tmp = tmp_path_factory.mktemp('scene')
    frames = shaking_camera(SCENE, STATIC_FRAMES, seed=21) + shaking_camera(SWAP, SWAP_FRAMES, seed=150)
    (tmp / 'frames').mkdir()
    for i, rgb in enumerate(frames):
        PILImage.fromarray(rgb).save(tmp / 'frames' / f'{i:04d}.png')
    make_bag(tmp / 'frames', tmp / 'bag', topic=TOPIC, rate_hz=RATE_HZ, frame_id=FRAME_ID, progress=False)
    with Reader(tmp / 'bag') as reader:
        return [(timestamp, bytes(raw)) for _, timestamp, raw in reader.messages()]


@pytest.fixture(scope='module')
def ros():
    rclpy.init()
    client = RosClient('novic_stable_test')
    yield client
    client.close()
    rclpy.try_shutdown()


@pytest.fixture(scope='module')
def node(ros, tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp('stable'), 'qos:=reliable', 'model:=toy', 'backend:=torch', 'top_k:=3')
    yield n
    n.stop()


def key(msg) -> tuple[str, int]:
    """frame_id and header stamp in nanoseconds."""
    return msg.header.frame_id, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def changes(texts) -> int:
    return sum(a != b for a, b in zip(texts, texts[1:]))


def set_params(ros, node, **values):
    client = ros.node.create_client(SetParameters, '/novic/novic_node/set_parameters')
    assert client.wait_for_service(timeout_sec=30), node.log()
    params = []
    for name, value in values.items():
        if isinstance(value, list):
            v = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=value)
        else:
            v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
        params.append(ParameterMsg(name=name, value=v))
    future = client.call_async(SetParameters.Request(parameters=params))
    end = time.monotonic() + 30
    while not future.done() and time.monotonic() < end:
        time.sleep(0.05)
    return future.result().results


def test_stable_labels_flicker_less_and_follow_a_swap(ros, node, scene_bag):
    raw = ros.subscribe(Classification, '/novic/labels', qos=200)
    stable = ros.subscribe(Classification, '/novic/labels_stable', qos=200)
    categories = ros.subscribe(Classification, '/novic/categories', qos=200)
    pub = ros.publisher(Image, TOPIC)
    ros.wait_matched(pub, node)
    t0_bag, t0 = scene_bag[0][0], time.monotonic()
    for timestamp, data in scene_bag:                  # at the recorded 10 Hz
        wait = t0 + (timestamp - t0_bag) / 1e9 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        pub.publish(data)                              # the recorded bytes, as a player sends them
    last = (FRAME_ID, scene_bag[-1][0])
    for topic in (raw, stable, categories):
        assert topic.wait_for(lambda m: any(key(x) == last for x in m), 60), node.log()
    time.sleep(0.5)

    # every topic answers the same frames, with the input's header (make-bag stamps = bag times);
    # only this bag's frames count: another test run sharing the DDS domain may publish too
    sent = {(FRAME_ID, timestamp) for timestamp, _ in scene_bag}
    by_stamp = {name: {(k[0], k[1] / 1e9): m for m in c.items if (k := key(m)) in sent}
                for name, c in (('raw', raw), ('stable', stable), ('categories', categories))}
    assert set(by_stamp['raw']) == set(by_stamp['stable']) == set(by_stamp['categories'])
    stamps = sorted(s for _, s in by_stamp['raw'])
    assert len(stamps) >= 0.5 * len(scene_bag), f"the node answered only {len(stamps)} of {len(scene_bag)} frames"
    swap_at = scene_bag[STATIC_FRAMES][0] / 1e9
    top = {name: [by_stamp[name][(FRAME_ID, s)].results[0].class_id for s in stamps] for name in by_stamp}
    static = [i for i, s in enumerate(stamps) if s < swap_at]

    # 1. on the static scene the stable topic changes label at least 5x less often
    raw_changes = changes([top['raw'][i] for i in static])
    stable_changes = changes([top['stable'][i] for i in static])
    assert raw_changes >= 10, f"the raw labels did not flicker on this scene: {top['raw']}"
    assert stable_changes * 5 <= raw_changes, (raw_changes, stable_changes)

    # 2. after the swap it follows within the documented delay
    after = [i for i, s in enumerate(stamps) if s >= swap_at]
    followed = next((i for i in after if top['stable'][i] == SWAP), None)
    assert followed is not None, f"labels_stable never followed the swap to {SWAP}: {top['stable']}"
    delay = stamps[followed] - swap_at
    new_scores = [next((r.score for r in by_stamp['raw'][(FRAME_ID, stamps[i])].results if r.class_id == SWAP), 0.0)
                  for i in after if i <= followed]
    old_label = top['stable'][static[-1]]
    old_scores = [
        next((r.score for r in by_stamp['raw'][(FRAME_ID, stamps[i])].results if r.class_id == old_label), 0.0)
        for i in after
        if i <= followed
    ]
    gaps = np.diff([stamps[static[-1]]] + [stamps[i] for i in after if i <= followed])
    options = NodeParams().stability_options()
    # the documented delay, taken where this run is least favourable: the old label at 1 (steady state
    # is at most that), the new one at its lowest score less what the old label still got, the
    # longest gap between answered frames as the frame interval (twice: see switch_delay_s)
    bound = options.switch_delay_s(1.0, min(new_scores) - max(old_scores), 0.0) + 2 * float(max(gaps))
    assert delay <= bound, (delay, bound, top['stable'])

    # 3. categories: the labels' probabilities summed per category; animal for the wolf, plant for the tree
    cats = {s: {r.class_id: r.score for r in by_stamp['categories'][(FRAME_ID, s)].results} for s in stamps}
    for s in stamps:
        raw_sum = sum(r.score for r in by_stamp['raw'][(FRAME_ID, s)].results)
        assert sum(cats[s].values()) == pytest.approx(raw_sum, abs=1e-5)
    static_categories = [top['categories'][i] for i in static]
    assert static_categories.count('animal') >= 0.9 * len(static)
    assert top['categories'][after[-1]] == 'plant'

    stable_after = [top['stable'][i] for i in after]
    runs = [
        (text, stamps[i] - stamps[0]) for i, text in enumerate(top['stable']) if i == 0 or text != top['stable'][i - 1]
    ]
    print("\n[stable labels] labels_stable: " + ', '.join(f"{t} from {s:.1f} s" for t, s in runs))
    print(
        f"\n[stable labels] {len(stamps)} of {len(scene_bag)} frames answered; static {SCENE} scene "
        f"({len(static)} frames): raw top-1 changed {raw_changes} times "
        f"({sorted(set(top['raw'][i] for i in static))}), "
        f"labels_stable {stable_changes} times, categories {changes(static_categories)} times; "
        f"after the swap to {SWAP}: labels_stable followed in {delay:.2f} s of stamps (bound {bound:.2f} s), "
        f"then changed {changes(stable_after[after.index(followed) :])} times"
    )


def image_msg(rgb: np.ndarray, frame_id: str, stamp: int) -> Image:
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8', step=rgb.shape[1] * 3, data=rgb.tobytes())
    msg.header.frame_id, msg.header.stamp.sec = frame_id, stamp
    return msg


def side(collector) -> list:
    return [m for m in collector.items if m.header.frame_id == 'side_camera']


def test_live_changes_and_a_camera_that_stopped_starts_over(ros, node):
    results = set_params(ros, node, smoothing_s=0.5, stable_margin=0.3, stable_timeout_s=0.5)
    assert all(r.successful for r in results), [r.reason for r in results]
    results = set_params(ros, node, categories=['animal', 'vehicel'])
    assert not results[0].successful and "WordNet has no noun 'vehicel'" in results[0].reason
    results = set_params(ros, node, stable_margin=1.5)
    assert not results[0].successful
    results = set_params(ros, node, categories=['dog', 'animal'])       # a narrower list, live
    assert results[0].successful, results[0].reason
    stable = ros.subscribe(Classification, '/novic/labels_stable', qos=50)
    categories = ros.subscribe(Classification, '/novic/categories', qos=50)
    pub = ros.publisher(Image, TOPIC)
    ros.wait_matched(pub, node)
    tree, dog = shaking_camera('tree', 1, seed=150)[0], shaking_camera('dog', 1, seed=3)[0]
    pub.publish(image_msg(tree, 'side_camera', 100))
    assert stable.wait_for(lambda m: any(x.header.frame_id == 'side_camera' for x in m), 60), node.log()
    assert side(stable)[-1].results[0].class_id == 'tree'
    # one second later (of stamps and of the clock) the camera sees a dog: within the timeout the
    # tree would stay for the dwell at least; after it, the camera starts over and says dog at once
    time.sleep(1.0)
    pub.publish(image_msg(dog, 'side_camera', 101))
    assert stable.wait_for(lambda m: sum(x.header.frame_id == 'side_camera' for x in m) == 2, 60), node.log()
    assert side(stable)[-1].results[0].class_id == 'dog'
    assert categories.wait_for(lambda m: sum(x.header.frame_id == 'side_camera' for x in m) == 2, 60)
    cats = {r.class_id for r in side(categories)[-1].results}
    assert 'dog' in cats and cats <= {'dog', 'animal', 'other'}
