"""Several objects per frame: the core's ObjectFinder on multi-object toy renders it never saw,
novic-classify --objects --json, set-level scoring (hand-checked), novic-eval offline --objects (its
report.html gallery drawn with each object's box and label: draw_objects), and the node's
Detection2DArray output."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from novic_ros.cli.classify import main as classify_main
from novic_ros.core.object_finder import FrameObjects, ObjectFinder, ObjectOptions, iou_matrix
from novic_ros.eval.object_scoring import objects_of, set_scores
from novic_ros.eval.report_html import thumbnail_jpeg
from novic_ros.frames.overlay import OBJECT_COLOURS, draw_objects
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_object_finder
from novic_ros.training.toy_scenes import render_scenes

SEED = 4242            # a scene stream of its own: neither training nor the study saw these


@pytest.fixture(scope='module')
def scenes():
    return render_scenes(3, SEED)


@pytest.fixture(scope='module')
def finder(toy_classifier):
    return build_object_finder(toy_classifier, ModelParams(model='toy', backend='torch', device='cpu'))


def assert_objects(objects: list[dict], hw: tuple[int, int]):
    """What every consumer may rely on: labels non-empty, scores in [0, 1] best first, boxes inside."""
    h, w = hw
    assert objects, "no object found on a scene with 2 to 4 objects"
    scores = [o['score'] for o in objects]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    for o in objects:
        x0, y0, x1, y1 = o['box']
        assert o['label'].strip()
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


def test_finder_names_the_objects_of_unseen_renders_in_one_encoder_call(finder, scenes):
    calls = []
    encode = finder.classifier.backend.encode_images

    def counting(x):
        calls.append(len(x))
        return encode(x)
    finder.classifier.backend.encode_images = counting
    try:
        found = finder.classify([s.image for s in scenes])
    finally:
        finder.classifier.backend.encode_images = encode
    assert len(calls) == 1 and calls[0] == sum(f.windows for f in found)       # every window, one batch
    right = present = 0
    for f, s in zip(found, scenes):
        assert isinstance(f, FrameObjects)
        assert_objects(f.to_json(), s.image.shape[:2])
        right += len({o.label for o in f.objects} & set(s.nouns))
        present += len(s.nouns)
    # Not the study's figure (that is README's), but far above chance: most objects are named.
    assert right >= present / 2, [(f.to_json(), s.nouns) for f, s in zip(found, scenes)]
    # The best object of each label found lies on the object of that label (IoU of the boxes).
    for f, s in zip(found, scenes):
        truth = {t.label: t.box for t in s.objects}
        best = {}
        for o in f.objects:
            best.setdefault(o.label, o.box)
        for label, box in best.items():
            if label in truth:
                assert iou_matrix([box], [truth[label]])[0, 0] > 0.4, (label, box, truth[label])


def test_blank_and_extreme_frames_give_no_or_valid_objects(finder):
    blank, strip = np.full((480, 640, 3), 200, np.uint8), np.full((8, 2000, 3), 90, np.uint8)
    strip[:, 900:1000] = (200, 30, 30)
    for frame, objects in zip((blank, strip), finder.classify([blank, strip])):
        assert len(objects.objects) <= finder.options.max_objects
        if objects.objects:
            assert_objects(objects.to_json(), frame.shape[:2])


def test_prompted_objects_come_from_the_label_list(toy_classifier, scenes):
    from dataclasses import replace
    labels = tuple(sorted({n for s in scenes for n in s.nouns})) + ('umbrella',)
    prompted = toy_classifier.with_options(replace(toy_classifier.options, mode='prompted', labels=labels))
    found = ObjectFinder(prompted, ObjectOptions(min_score=0.3)).classify([s.image for s in scenes])
    assert any(f.objects for f in found)
    for f, s in zip(found, scenes):
        assert {o.label for o in f.objects} <= set(labels)
        if f.objects:
            assert_objects(f.to_json(), s.image.shape[:2])


def test_classify_objects_json(scenes, tmp_path, capsys):
    paths = []
    for i, s in enumerate(scenes[:2]):
        paths.append(tmp_path / f"scene{i}.jpg")
        Image.fromarray(s.image).save(paths[-1], quality=92)          # another encoder than the renders'
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG not really')
    code = classify_main(
        ['--objects', '--json', '--backend', 'torch', '--device', 'cpu', *map(str, paths), str(broken)]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1                                                   # one of three failed
    assert [r['image'] for r in out] == [*map(str, paths), str(broken)]
    for r, s in zip(out[:2], scenes):
        assert set(r) == {'image', 'objects'}
        assert all(set(o) == {'label', 'score', 'box'} and len(o['box']) == 4 for o in r['objects'])
        assert_objects(r['objects'], s.image.shape[:2])
    assert out[2]['objects'] == [] and 'error' in out[2]


def test_set_scores_hand_checked():
    # Frame 1: dog, cat present; predicted dog (right), kite (wrong), dog again (counts once).
    # Frame 2: car (or automobile), cat present; predicted automobile (right), cat (right).
    # Frame 3: dog present (written twice: still one class present); nothing predicted.
    preds = [['dog', 'kite', 'dog'], ['Automobile', 'cat'], []]
    truths = [['dog', 'cat'], ['car|automobile', 'cat'], ['dog', 'Dog']]
    s = set_scores(preds, truths)
    assert (s.frames, s.predicted, s.right, s.present, s.named) == (3, 4, 3, 5, 3)
    assert s.precision == pytest.approx(3 / 4) and s.recall == pytest.approx(3 / 5)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    dog, cat, car, kite = (s.per_class[k] for k in ('dog', 'cat', 'car', 'kite'))
    assert (dog.present, dog.named, dog.predicted, dog.right) == (2, 1, 1, 1)
    assert (cat.present, cat.named, cat.predicted, cat.right) == (2, 1, 1, 1)
    assert (car.present, car.named, car.predicted, car.right) == (1, 1, 1, 1)
    assert (kite.present, kite.named, kite.predicted, kite.right) == (0, 0, 1, 0)
    assert s.wrong == {'kite': 1}
    assert objects_of(['golden retriever|dog', ' ', 'cat']) == [('golden retriever', 'dog'), ('cat',)]


def test_eval_offline_objects_scores_sets(scenes, tmp_path, capsys):
    from novic_ros.cli.eval import main as eval_main
    from novic_ros.eval.make_bag import make_bag
    folder = tmp_path / 'imgs'
    folder.mkdir()
    for i, s in enumerate(scenes):
        Image.fromarray(s.image).save(folder / f"{i:02d}.png")
    bag = make_bag(folder, tmp_path / 'bag', storage='mcap', progress=False).bag
    annotations = tmp_path / 'objects.csv'
    annotations.write_text('topic,frame,nouns\n' + ''.join(f",{i},{';'.join(s.nouns)}\n" for i, s in enumerate(scenes)))
    out = tmp_path / 'report'
    assert eval_main(['offline', str(bag), '--objects', '--annotations', str(annotations), '--out', str(out),
                      '--backend', 'torch', '--device', 'cpu', '--no-progress']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    rows = [json.loads(l) for l in (out / 'labels.jsonl').read_text().splitlines()]
    # The score is the hand count over the labels the run wrote down.
    predicted = [{l['label'] for l in r['labels']} for r in rows]
    right = sum(len(p & set(s.nouns)) for p, s in zip(predicted, scenes))
    score = summary['score']
    assert score['frames'] == 3 and score['present'] == sum(len(s.nouns) for s in scenes)
    assert score['predicted'] == sum(map(len, predicted)) and score['right'] == right
    assert score['f1'] > 0.3
    report = (out / 'report.md').read_text()
    assert '## Objects (set-level)' in report and f"| F1 | {score['f1']:.3f} |" in report
    assert 'objects: precision' in capsys.readouterr().out
    # Every label comes with its box; report.html's gallery shows each frame whose set is wrong, drawn
    # with its objects' boxes and labels (the thumbnail is the frame with draw_objects, not the bare frame).
    assert all(len(l['box']) == 4 for r in rows for l in r['labels'])
    wrong = [i for i, (p, s) in enumerate(zip(predicted, scenes)) if p != set(s.nouns)]
    page = (out / 'report.html').read_text()
    pictures = re.findall(r'<img alt="[^"]* #(\d+)" src="data:image/jpeg;base64,([^"]+)"', page)
    assert sorted(int(i) for i, _ in pictures) == wrong and 'boxes drawn' in page
    for i, data in pictures:
        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert('RGB'), dtype=float)
        objects = [(l['label'], l['score'], l['box']) for l in rows[int(i)]['labels']]
        drawn = np.asarray(Image.open(io.BytesIO(thumbnail_jpeg(scenes[int(i)].image, objects=objects))), dtype=float)
        bare = np.asarray(Image.open(io.BytesIO(thumbnail_jpeg(scenes[int(i)].image))), dtype=float)
        assert np.abs(shown - drawn).mean() < np.abs(shown - bare).mean() / 4
        for label, score, _ in objects:
            assert f"{label} {score:.2f} [" in page


def test_draw_objects_outlines_each_box_and_labels_it():
    rgb = np.full((120, 160, 3), 40, np.uint8)
    out = draw_objects(rgb, [('dog', 0.9, (10.0, 50.0, 70.0, 110.0)), ('cat', 0.8, (90.0, 0.0, 150.0, 60.0))])
    assert out.shape == rgb.shape and (rgb == 40).all()                       # a copy; the frame is untouched
    assert (out[80, 10] == OBJECT_COLOURS[0]).all() and (out[110, 40] == OBJECT_COLOURS[0]).all()   # dog's box edges
    assert (out[30, 150] == OBJECT_COLOURS[1]).all()                          # cat's right edge
    assert (out[80, 40] == 40).all() and (out[30, 120] == 40).all()           # inside the boxes: unchanged
    above = out[30:50, 10:70]                                                 # dog's label: a band above its box
    assert (above == OBJECT_COLOURS[0]).all(axis=2).mean() > 0.3 and (above.sum(axis=2) == 0).any()   # black text
    inside_top = out[0:12, 90:150]                                            # cat's box touches the top: label inside
    assert (inside_top == OBJECT_COLOURS[1]).all(axis=2).mean() > 0.3
    assert (draw_objects(rgb, []) == rgb).all()


def test_object_parameters_are_validated():
    for bad in ({'object_min_score': 1.5}, {'object_min_similarity': -0.5}, {'object_regions': 'everywhere'},
                {'max_objects': 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ModelParams(**bad)


def test_detections_message_carries_header_boxes_and_labels(finder, scenes):
    pytest.importorskip('rclpy')
    from std_msgs.msg import Header
    from novic_ros.ros.messages import detections_message
    found = finder.classify(scenes[0].image)[0]
    header = Header(frame_id='cam')
    header.stamp.sec = 7
    msg = detections_message(header, found)
    assert msg.header.frame_id == 'cam' and len(msg.detections) == len(found.objects) > 0
    for d, o in zip(msg.detections, found.objects):
        assert d.header.stamp.sec == 7 and d.header.frame_id == 'cam'
        (hyp,) = d.results
        assert hyp.hypothesis.class_id == o.label and hyp.hypothesis.score == pytest.approx(o.score)
        b = d.bbox
        assert (b.center.position.x - b.size_x / 2, b.center.position.y - b.size_y / 2,
                b.center.position.x + b.size_x / 2, b.center.position.y + b.size_y / 2) == pytest.approx(o.box)


def test_node_publishes_objects(scenes, finder, tmp_path):
    rclpy = pytest.importorskip('rclpy')
    from sensor_msgs.msg import Image as ImageMsg
    from diagnostic_msgs.msg import DiagnosticArray
    from vision_msgs.msg import Detection2DArray
    from novic_ros.frames.conversion import rgb_to_raw
    from ros_helpers import NodeProcess, RosClient
    rclpy.init()
    ros = RosClient()
    node = NodeProcess(tmp_path, 'qos:=reliable', 'model:=toy', 'backend:=torch', 'objects:=true')
    try:
        got = ros.subscribe(Detection2DArray, '/novic/objects')
        diagnostics = ros.subscribe(DiagnosticArray, '/diagnostics')
        pub = ros.publisher(ImageMsg, '/novic/image')
        ros.wait_matched(pub, node)
        for i, s in enumerate(scenes[:2]):
            data, step = rgb_to_raw(s.image, 'bgr8')           # an encoder other than rgb8
            msg = ImageMsg(height=s.image.shape[0], width=s.image.shape[1], encoding='bgr8', step=step, data=data)
            msg.header.frame_id, msg.header.stamp.sec = f"cam{i}", 100 + i
            pub.publish(msg)
            assert got.wait_for(lambda m, n=i + 1: len(m) >= n, 60), node.log()
        for i, (m, s) in enumerate(zip(got.items, scenes)):
            assert m.header.frame_id == f"cam{i}" and m.header.stamp.sec == 100 + i
            expected = finder.classify(s.image)[0]
            assert [d.results[0].hypothesis.class_id for d in m.detections] == [o.label for o in expected.objects]
            h, w = s.image.shape[:2]
            scores = [d.results[0].hypothesis.score for d in m.detections]
            assert scores and scores == sorted(scores, reverse=True) and all(0 <= x <= 1 for x in scores)
            for d in m.detections:
                b = d.bbox
                assert d.header.frame_id == f"cam{i}"
                assert 0 <= b.center.position.x - b.size_x / 2 and b.center.position.x + b.size_x / 2 <= w + 1e-6
                assert 0 <= b.center.position.y - b.size_y / 2 and b.center.position.y + b.size_y / 2 <= h + 1e-6

        def counted(msgs):
            return any(
                kv.key == 'objects_published' and kv.value == '2' for m in msgs for st in m.status for kv in st.values
            )

        assert diagnostics.wait_for(counted, 10)
    finally:
        node.stop()
        ros.close()
        rclpy.try_shutdown()


def test_thresholds_come_calibrated_per_clip_model(toy_classifier, tmp_path):
    from novic_ros.core.errors import ModelLoadError
    from novic_ros.core.object_calibration import load_calibrations, resolve_thresholds
    cal = load_calibrations()[toy_classifier.clip.fingerprint]            # the committed toy entry
    options = ModelParams(model='toy').to_object_options(toy_classifier.clip.fingerprint)
    assert (options.min_score, options.min_similarity) == (cal.min_score, cal.min_similarity)
    assert ModelParams(object_min_score=0.2).to_object_options(toy_classifier.clip.fingerprint).min_score == 0.2
    assert resolve_thresholds(-1.0, -1.0, 'unknown-weights')[:2] == (0.5, 0.0)        # no CLIP check
    bad = tmp_path / 'cal.yaml'
    bad.write_text('abc: {min_score: 0.5}\n')
    with pytest.raises(ModelLoadError, match='min_similarity'):
        resolve_thresholds(-1.0, -1.0, 'abc', bad)


@pytest.mark.parametrize('mode', ['generate', 'hybrid'])
def test_a_batch_limit_splits_the_windows_and_changes_nothing(finder, scenes, mode):
    """Hybrid's beam search ends after different token counts in different chunks: still one result."""
    from dataclasses import replace
    classifier = finder.classifier.with_options(replace(finder.classifier.options, mode=mode))
    whole = ObjectFinder(classifier, finder.options)
    limited = ObjectFinder(classifier, finder.options, max_batch=3)        # a TensorRT engine's limit
    frames = [s.image for s in scenes]
    for a, b in zip(whole.classify(frames), limited.classify(frames)):
        assert [o.label for o in a.objects] == [o.label for o in b.objects]
        assert np.allclose([o.score for o in a.objects], [o.score for o in b.objects], atol=1e-5)
        assert np.allclose([o.box for o in a.objects], [o.box for o in b.objects], atol=1e-3)
