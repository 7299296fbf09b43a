"""Stable labels over time (core/stable_labels.py): smoothing in seconds, hysteresis, synonyms, expiry."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from novic_ros.core.frame_labels import Label
from novic_ros.core.stable_labels import StabilityOptions, StableLabeler

OPTS = StabilityOptions(smoothing_s=1.0, margin=0.15, dwell_s=0.3, timeout_s=5.0)


def opts(**changes) -> StabilityOptions:
    return dataclasses.replace(OPTS, **changes)


def frame(*pairs):
    return [Label(text, score) for text, score in pairs]


def feed(labeler, frames, start=0.0, step=0.1, stream='cam'):
    """Frames at `step` seconds (a list: per-frame intervals), stamps and clock alike; the results."""
    out, t = [], start
    steps = step if isinstance(step, list) else [step] * len(frames)
    for f, dt in zip(frames, steps):
        out.append(labeler.update(stream, t, f, now=t))
        t += dt
    return out


def changes(texts):
    return sum(a != b for a, b in zip(texts, texts[1:]))


def test_flickering_labels_give_one_stable_label():
    # 'mug' is top-1 on 70% of the frames, 'cup' and 'jar' on the rest, in random order; the
    # first frame says 'cup'. The raw top-1 flickers; the stable label goes to mug once.
    rng = np.random.default_rng(0)
    frames = []
    for i in range(200):
        top = 'cup' if i == 0 else rng.choice(['mug', 'cup', 'jar'], p=[0.7, 0.2, 0.1])
        rest = [t for t in ('mug', 'cup', 'jar') if t != top]
        frames.append(frame((top, 0.6), (rest[0], 0.25), (rest[1], 0.15)))
    raw = [f[0].text for f in frames]
    stable = [r.label.text for r in feed(StableLabeler(OPTS), frames)]
    assert changes(raw) > 60
    assert changes(stable) == 1 and stable[0] == 'cup' and stable[-1] == 'mug'
    assert stable.count('mug') >= 160           # the switch takes a few seconds: a 0.19 lead against a 0.15 margin


def test_first_frame_sets_the_label_and_changed_marks_changes():
    results = feed(StableLabeler(OPTS), [frame(('dog', 0.9))] + [frame(('cat', 0.9))] * 30)
    assert results[0].changed and results[0].label.text == 'dog'
    flips = [i for i, r in enumerate(results) if r.changed]
    assert flips[0] == 0 and len(flips) == 2 and results[flips[1]].label.text == 'cat'
    assert all(r.label.text == 'dog' for r in results[:flips[1]])


def test_a_lead_below_the_margin_never_switches():
    # b leads a by 0.1 on every frame, forever: within the 0.15 margin
    results = feed(StableLabeler(OPTS), [frame(('a', 0.5))] + [frame(('b', 0.5), ('a', 0.4))] * 100)
    assert {r.label.text for r in results} == {'a'}
    assert results[-1].ranked[0].text == 'b'          # b does lead the smoothed ranking
    # the same stream with a 0.05 margin switches
    results = feed(StableLabeler(opts(margin=0.05, dwell_s=0.3)),
                   [frame(('a', 0.5))] + [frame(('b', 0.5), ('a', 0.4))] * 100)
    assert results[-1].label.text == 'b'


def test_dwell_needs_the_lead_held_for_dwell_s():
    options = opts(smoothing_s=0.0, margin=0.1, dwell_s=0.5)   # no smoothing: frames alone
    short = [frame(('a', 0.9))] + [frame(('b', 0.9))] * 5 + [frame(('a', 0.9))] * 10   # b for 0.4 s
    assert {r.label.text for r in feed(StableLabeler(options), short)} == {'a'}
    held = [frame(('a', 0.9))] + [frame(('b', 0.9))] * 10
    results = feed(StableLabeler(options), held)
    switched = next(i for i, r in enumerate(results) if r.label.text == 'b')
    # b first leads on frame 1 (t=0.1); the first frame with t - 0.1 >= 0.5 is frame 6
    assert switched == 6


def test_an_interrupted_lead_restarts_the_wait():
    options = opts(smoothing_s=0.0, margin=0.1, dwell_s=0.5)
    # b leads for 0.4 s, then c for one frame, then b again: b's wait starts over
    seq = [frame(('a', 0.9))] + [frame(('b', 0.9))] * 4 + [frame(('c', 0.9))] + [frame(('b', 0.9))] * 10
    results = feed(StableLabeler(options), seq)
    switched = next(i for i, r in enumerate(results) if r.label.text != 'a')
    assert results[switched].label.text == 'b' and switched == 6 + 5


@pytest.mark.parametrize('intervals', [
    [1 / 30] * 60,                                         # 30 Hz
    [1 / 3] * 6,                                           # 3 Hz
    list(np.random.default_rng(3).dirichlet(np.ones(17)) * 2.0),   # 17 irregular intervals, 2 s in all
])
def test_smoothing_is_in_seconds_whatever_the_frame_timing(intervals):
    """A step from 'a' to 'b' at t=0: at t=2 s the smoothed score of b is 1 - exp(-2 / smoothing_s),
    at 30 Hz, 3 Hz and with irregular intervals alike."""
    labeler = StableLabeler(opts(smoothing_s=1.5, margin=0.15, dwell_s=0.3))
    feed(labeler, [frame(('a', 1.0))] * 20, start=-2.0, step=0.1)    # steady on 'a', last frame at -0.1
    labeler.update('cam', 0.0, frame(('a', 1.0)), now=0.0)          # ... and at exactly 0
    t = 0.0
    for dt in intervals:
        t += dt
        result = labeler.update('cam', t, frame(('b', 1.0)), now=t)
    assert t == pytest.approx(2.0)
    scores = {g.text: g.score for g in result.ranked}
    assert scores['b'] == pytest.approx(1 - math.exp(-2.0 / 1.5), abs=1e-9)
    assert scores['a'] == pytest.approx(math.exp(-2.0 / 1.5), abs=1e-9)


def test_switch_delay_matches_the_documented_formula():
    for options in (OPTS, opts(smoothing_s=2.0, margin=0.3, dwell_s=0.0),
                    opts(smoothing_s=0.5, margin=0.05, dwell_s=1.0)):
        for p_old, p_new in ((1.0, 1.0), (0.7, 0.6), (0.5, 0.9)):
            h = 0.1
            results = feed(
                StableLabeler(options), [frame(('old', p_old))] * 100 + [frame(('new', p_new))] * 100, step=h
            )
            first_new = 100 * h
            followed = next(i for i, r in enumerate(results) if r.label.text == 'new') * h
            delay = followed - first_new
            assert delay <= options.switch_delay_s(p_old, p_new, h) + 1e-9
            # and not much earlier than the continuous-time figure (the bound is not loose)
            assert delay >= options.switch_delay_s(p_old, p_new, 0.0) - h - 1e-9
    assert opts(margin=0.5).switch_delay_s(1.0, 0.4) == math.inf


def test_synonyms_are_merged_and_the_stable_name_stays():
    merge = {'car': 'n02958343', 'automobile': 'n02958343'}.get
    key = lambda text: merge(text, text)   # noqa: E731
    # car and automobile split the car's probability; truck alone beats either
    seq = [frame(('truck', 0.45), ('car', 0.3), ('automobile', 0.25))] * 20
    plain = feed(StableLabeler(OPTS), seq)
    merged = feed(StableLabeler(OPTS, merge_key=key), seq)
    assert plain[-1].label.text == 'truck'
    assert merged[-1].label.text == 'car' and merged[-1].label.score == pytest.approx(0.55)
    assert [g.text for g in merged[-1].ranked] == ['car', 'truck']
    # automobile becomes the better name of the group; the published name does not flicker
    more = feed(StableLabeler(OPTS, merge_key=key), seq + [frame(('automobile', 0.5), ('car', 0.1))] * 20)
    assert {r.label.text for r in more} == {'car'}
    assert more[-1].ranked[0].text == 'automobile' and more[-1].ranked[0].key == more[-1].label.key


def test_frames_without_labels_decay_the_scores():
    results = feed(StableLabeler(OPTS), [frame(('dog', 0.8))] + [[]] * 10)
    assert results[-1].label.text == 'dog'
    assert results[-1].label.score == pytest.approx(0.8 * math.exp(-1.0), rel=1e-6)
    assert not feed(StableLabeler(OPTS), [[], []])[-1].ranked


def test_stale_streams_expire_and_start_over():
    labeler = StableLabeler(OPTS)
    feed(labeler, [frame(('dog', 0.9))] * 10, stream='front')
    feed(labeler, [frame(('cat', 0.9))] * 10, stream='back', start=3.0)
    assert sorted(labeler.streams()) == ['back', 'front']
    assert labeler.expire(now=0.9 + OPTS.timeout_s + 0.01) == ['front']    # back was updated at 3.9
    assert labeler.streams() == ['back']
    # a camera back after the timeout starts over: its first frame sets the label at once
    r = labeler.update('back', 20.0, frame(('bird', 0.6)), now=20.0)
    assert r.changed and r.label.text == 'bird' and r.label.score == pytest.approx(0.6)


def test_stamps_going_backwards_start_the_stream_over():
    labeler = StableLabeler(OPTS)
    feed(labeler, [frame(('dog', 0.9))] * 30, start=100.0)
    r = labeler.update('cam', 5.0, frame(('cat', 0.7)), now=103.0)     # a bag played again
    assert r.changed and r.label.text == 'cat' and [g.text for g in r.ranked] == ['cat']


def test_streams_are_independent_and_bounded():
    labeler = StableLabeler(OPTS, max_streams=3)
    for i in range(5):
        labeler.update(('cam', f'f{i}'), 0.0, frame((f'label{i}', 0.9)), now=0.0)
    assert labeler.streams() == [('cam', 'f2'), ('cam', 'f3'), ('cam', 'f4')]
    r = labeler.update(('cam', 'f4'), 0.1, frame(('x', 0.9)), now=0.1)
    assert r.label.text == 'label4'


def test_labels_per_stream_are_bounded():
    labeler = StableLabeler(opts(smoothing_s=100.0), max_labels=20)
    for i in range(500):   # an open vocabulary: a new label on every frame
        r = labeler.update('cam', i * 0.1, frame((f'thing{i}', 0.5)), now=i * 0.1)
    assert len(r.ranked) <= 20 and r.label.text == 'thing0'


def test_options_change_between_frames_and_keep_the_state():
    labeler = StableLabeler(OPTS)
    seq = [frame(('a', 0.5))] + [frame(('b', 0.5), ('a', 0.4))] * 30
    assert feed(labeler, seq)[-1].label.text == 'a'          # within the 0.15 margin
    labeler.options = opts(smoothing_s=1.0, margin=0.05, dwell_s=0.0)
    r = labeler.update('cam', 3.1, frame(('b', 0.5), ('a', 0.4)), now=3.1)
    assert r.changed and r.label.text == 'b'                  # same smoothed state, new margin


def test_top_puts_the_stable_label_first():
    labeler = StableLabeler(opts(margin=0.9))     # a stays whatever leads
    r = feed(labeler, [frame(('a', 0.5))] + [frame(('b', 0.5), ('c', 0.3), ('a', 0.2))] * 30)[-1]
    assert r.label.text == 'a' and r.ranked[0].text == 'b'
    assert [g.text for g in r.top(2)] == ['a', 'b'] and [g.text for g in r.top(5)] == ['a', 'b', 'c']


@pytest.mark.parametrize('bad', [dict(smoothing_s=-1.0), dict(margin=1.5), dict(dwell_s=-0.1),
                                 dict(timeout_s=0.0), dict(smoothing_s='1')])
def test_invalid_options_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        opts(**bad)
