"""Object tracks: ids that stay with an object through a moving toy scene the finder never saw (an
occlusion, an object leaving, one entering, one coming back after the expiry), labels smoothed per
track, two objects of one noun kept apart by their embeddings, and the tracker's bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest

from novic_ros.core.object_finder import DetectedObject
from novic_ros.core.stable_labels import StabilityOptions
from novic_ros.core.tracks import MAX_TRACKS, ObjectTracker, TrackOptions
from novic_ros.eval.tracking import ids_unique_across_objects, score_tracks
from novic_ros.params import ModelParams, NodeParams
from novic_ros.pipeline import build_object_finder
from novic_ros.training.toy_sequences import default_script, render_sequence

# A background the toy finder sees the objects on (seed 0: a plain one); the finder's misses are
# not what this measures, and the precondition below says so if that changes.
SEED = 0


def stability() -> StabilityOptions:
    return NodeParams().stability_options()        # the node's defaults, as labels_stable uses them


@pytest.fixture(scope='module')
def sequence():
    return render_sequence(seed=SEED)


@pytest.fixture(scope='module')
def found(toy_classifier, sequence):
    finder = build_object_finder(toy_classifier, ModelParams(model='toy', backend='torch', device='cpu'))
    return finder.classify([f.image for f in sequence])


def track_all(sequence, found, options: TrackOptions = TrackOptions()):
    tracker = ObjectTracker(options, stability())
    return tracker, [tracker.update('camera', f.stamp, r.objects, f.stamp) for f, r in zip(sequence, found)]


def test_ids_stay_with_the_objects_of_a_moving_scene(sequence, found):
    options = TrackOptions()
    tracker, tracked = track_all(sequence, found, options)
    scores = score_tracks(sequence, tracked, options.timeout_s)
    assert scores.coverage >= 0.8, f"precondition: the toy finder saw too few objects ({scores})"
    # The scene is what the issue asks for: 2-3 objects moving, an occlusion, one leaving, one entering.
    assert len({m.identity for m in default_script()}) == 4 and len(sequence) >= 30
    assert scores.id_switches <= 1, scores
    assert ids_unique_across_objects(scores), scores.ids
    # The apple hidden behind the truck (missed for about a second) and the elephant that walked in
    # keep one id over at least 30 frames each.
    assert sum(n >= 30 for n in scores.longest_id_frames.values()) >= 2, scores.longest_id_frames
    # The guitar left at frame 30 and came back at frame 50 (2 s > timeout_s): a new id.
    guitar = scores.ids[3]
    assert len(guitar) == 2 and guitar[0] != guitar[1] and scores.reentries == 1 and scores.kept_after_timeout == 0
    assert tracker.started >= 4 and tracker.active() >= 3


def test_labels_flip_far_less_per_track_than_per_frame(sequence, found):
    _, tracked = track_all(sequence, found)
    scores = score_tracks(sequence, tracked, TrackOptions().timeout_s)
    assert scores.frame_label_flips >= 10, f"precondition: the frame labels hardly flicker ({scores})"
    assert scores.track_label_flips * 5 <= scores.frame_label_flips, scores


def unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_two_objects_of_one_noun_side_by_side_are_kept_apart_by_their_embeddings():
    """Two 'dog' boxes 30 px apart (80 px wide), each detected with 15 px of jitter: the boxes alone
    cannot tell which is which from frame to frame; their CLIP embeddings can."""
    rng = np.random.default_rng(1)
    looks = [rng.normal(size=32) for _ in range(2)]
    frames = []
    for k in range(60):
        objects = []
        for x, e in zip((100.0, 130.0), looks):
            x += rng.normal(scale=15.0)
            objects.append(
                DetectedObject('dog', 0.8, (x, 100.0, x + 80.0, 180.0), unit(e + rng.normal(scale=0.1, size=32)))
            )
        order = rng.permutation(2)                     # the finder lists objects by score, not by identity
        frames.append((k / 10, [objects[i] for i in order], order))

    def switches(options):
        tracker = ObjectTracker(options, stability())
        ids = []
        for t, objects, order in frames:
            out = tracker.update('cam', t, objects, t)
            ids.append(tuple(out[list(order).index(i)].track_id for i in range(2)))
        return sum(a != b for a, b in zip(ids, ids[1:])), len(set(ids[0]))

    assert switches(TrackOptions()) == (0, 2)
    by_boxes, _ = switches(TrackOptions(appearance_weight=0.0))
    assert by_boxes >= 3                                # by boxes alone they trade ids again and again


def test_tracks_part_again_after_the_finder_saw_two_objects_of_one_noun_as_one():
    """Two dogs meet, the finder sees one box for three frames, then they go back the way they came:
    each keeps its id (the hidden one is looked for where it was last seen too)."""
    rng = np.random.default_rng(2)
    left, right = (rng.normal(size=32) for _ in range(2))
    xs = [100 + 20 * k for k in range(8)] + [260] * 3 + [240 - 20 * k for k in range(8)]
    tracker = ObjectTracker(TrackOptions(), stability())
    out = []
    for k, x in enumerate(xs):
        dogs = [DetectedObject('dog', 0.8, (x, 100.0, x + 80.0, 180.0), unit(left))]
        if x != 260:
            dogs.append(DetectedObject('dog', 0.8, (520.0 - x, 100.0, 600.0 - x, 180.0), unit(right)))
        out.append([o.track_id for o in tracker.update('cam', k / 10, dogs, k / 10)])
    assert out[0][0] != out[0][1] and out[-1] == out[0] and tracker.started == 2


def dets(*boxes, label='cup'):
    return [DetectedObject(label, 0.9, b) for b in boxes]


def test_a_track_outlives_misses_up_to_the_timeout_and_ids_are_never_reused():
    tracker = ObjectTracker(TrackOptions(timeout_s=1.0), stability())
    first = tracker.update('cam', 0.0, dets((10, 10, 50, 50)), 0.0)[0]
    assert first.new
    assert tracker.update('cam', 0.9, dets((12, 10, 52, 50)), 0.9)[0].track_id == first.track_id   # 0.9 s unseen
    later = tracker.update('cam', 2.0, dets((12, 10, 52, 50)), 2.0)[0]     # 1.1 s unseen: a new track
    assert later.new and later.track_id != first.track_id
    # Stamps going backwards (a bag played again) start the stream over, with new ids.
    again = tracker.update('cam', 0.0, dets((10, 10, 50, 50)), 2.1)[0]
    assert again.track_id not in (first.track_id, later.track_id)
    # Streams are apart: the same box on another camera is another object.
    assert tracker.update('other', 0.0, dets((10, 10, 50, 50)), 2.1)[0].track_id != again.track_id
    assert tracker.active() == 2
    assert sorted(tracker.expire(now=10.0)) == ['cam', 'other'] and tracker.active() == 0


def test_a_moving_object_is_looked_for_where_its_velocity_takes_it():
    tracker = ObjectTracker(TrackOptions(), stability())
    ids = {tracker.update('cam', k / 10, dets((30.0 * k, 0, 30.0 * k + 40, 40)), k / 10)[0].track_id for k in range(5)}
    # Missed for three frames: 120 px further on, where the last box does not overlap it any more.
    ids.add(tracker.update('cam', 0.8, dets((240, 0, 280, 40)), 0.8)[0].track_id)
    assert len(ids) == 1


def test_each_track_smooths_its_label_with_synonyms_merged():
    merge = {'mug': 'cup', 'cup': 'cup', 'jar': 'jar'}.get
    tracker = ObjectTracker(TrackOptions(), stability(), merge_key=merge)
    labels = ['cup', 'mug', 'jar', 'mug', 'cup', 'jar', 'cup', 'mug']
    out = [tracker.update('cam', k / 10, dets((0, 0, 40, 40), label=l), k / 10)[0] for k, l in enumerate(labels)]
    assert len({o.track_id for o in out}) == 1
    assert {o.labels.label.key for o in out} == {'cup'}        # the flicker between synonyms and a jar is gone
    assert out[-1].labels.top(2)[1].key == 'jar'


def test_memory_is_bounded_and_options_are_checked():
    tracker = ObjectTracker(TrackOptions(), stability())
    for k in range(3):       # objects that never overlap: every one a new track
        boxes = [(float(i * 3 + k * 1000), 0.0, float(i * 3 + k * 1000 + 2), 2.0) for i in range(120)]
        tracker.update('cam', k / 100, dets(*boxes), k / 100)
    assert tracker.active() == MAX_TRACKS and tracker.started == 360
    for bad in ({'timeout_s': 0.0}, {'min_iou': 1.5}, {'appearance_weight': -0.1}, {'timeout_s': 'x'}):
        with pytest.raises(ValueError):
            TrackOptions(**bad)
