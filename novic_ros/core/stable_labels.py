"""Stable labels over time: frame-by-frame labels flicker ('mug', 'cup', 'mug', 'jar' from a shaking
camera); a robot needs one answer that changes when the scene does.

Per stream (a camera, or one object a camera sees), each label's probability is smoothed over time,
synonyms are added up, and the published label changes only with hysteresis:

Smoothing (`smoothing_s`, seconds)
    An exponential moving average in continuous time: a frame `dt` seconds after the previous one
    is weighted ``alpha = 1 - exp(-dt / smoothing_s)`` and everything before it decays by
    ``1 - alpha``. `smoothing_s` is the time constant: an observation's weight falls by a factor e
    every `smoothing_s` seconds of the stream's time (the frames' header stamps), whatever the
    frame rate, regular or not; a 30 Hz and a 3 Hz camera showing the same thing give the same
    smoothed scores. A frame with no labels only decays the others. 0 turns smoothing off.
Synonyms
    Labels with the same `merge_key` ('car' and 'automobile': one WordNet synset) form one group;
    its score is the sum of theirs and it is named by its best-scoring label.
Hysteresis (`margin`, `dwell_s`)
    The first frame of a stream sets the stable label. After that, another group replaces it only
    when it leads the stable one by more than `margin` (smoothed probability) on every frame for
    at least `dwell_s` seconds; if the lead drops or another group takes it, the wait restarts.
    While a group stays stable its name does not change either.
Delay
    After an abrupt change from a label scored p_old to one scored p_new, the new one leads by
    the margin after ``smoothing_s * ln((p_old + p_new) / (p_new - margin))`` seconds, then must
    hold it for `dwell_s`; frames come at discrete times, which adds up to one frame interval:
    see StabilityOptions.switch_delay_s.
Expiry (`timeout_s`)
    A stream that got no frame for `timeout_s` seconds (of the caller's clock, e.g. receipt
    time: a stopped camera sends no stamps) is dropped; a stream whose stamps go backwards (a bag
    played again, a simulation reset) starts over. Memory is bounded: at most `max_streams`
    streams (the least recently updated goes first) and `max_labels` labels per stream.

ROS-free and WordNet-free: synonym merging takes a function (lexicon.label_senses.LabelSenses.merge_key).
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

from .frame_labels import Label

PRUNE_BELOW = 1e-4        # smoothed scores this small no longer matter to any decision
STAMP_EPS = 1e-9          # a header stamp's resolution: sums of float seconds must not miss a deadline by less


@dataclass(frozen=True)
class StabilityOptions:
    """Defaults and documentation live in the parameter table (smoothing_s, stable_margin, ...)."""
    smoothing_s: float      # time constant of the moving average, seconds; 0 = none
    margin: float           # lead in smoothed probability a label needs over the stable one
    dwell_s: float          # ... held on every frame for this long
    timeout_s: float        # a stream without frames for this long is dropped

    def __post_init__(self):
        for name, low, high in (('smoothing_s', 0.0, 3600.0), ('margin', 0.0, 1.0), ('dwell_s', 0.0, 3600.0),
                                ('timeout_s', 0.0, 86400.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        if self.timeout_s == 0.0:
            raise ValueError("timeout_s must be > 0 (a stream needs at least one frame interval to exist)")

    def switch_delay_s(self, p_old: float = 1.0, p_new: float = 1.0, frame_interval_s: float = 0.0) -> float:
        """Seconds from the first frame of a new scene until the stable label follows, when a label
        scored `p_old` on every frame before and one scored `p_new` on every frame after (merged
        synonyms together): the lead needs smoothing_s * ln((p_old + p_new) / (p_new - margin)), then
        dwell_s, each reached on a frame. inf when p_new cannot lead by the margin."""
        if p_new <= self.margin:
            return math.inf
        lead = self.smoothing_s * math.log((p_old + p_new) / (p_new - self.margin)) if self.smoothing_s else 0.0
        return max(0.0, lead - frame_interval_s) + self.dwell_s + 2 * frame_interval_s


@dataclass(frozen=True)
class GroupLabel(Label):
    """A synonym group as a label: named by one of its labels, scored by the sum of theirs."""
    key: Hashable = None


@dataclass(frozen=True)
class StableLabels:
    """One stream's state after a frame. `label` is the stable label with its group's smoothed
    score (None before the first label); `ranked` every group, best first, named by its
    best-scoring label; `changed` is True on the frame the stable label changed (or was first set)."""
    label: GroupLabel | None
    ranked: tuple[GroupLabel, ...]
    changed: bool

    def top(self, k: int) -> tuple[GroupLabel, ...]:
        """The stable label first, then the other groups best first: k in all."""
        if self.label is None:
            return self.ranked[:k]
        return (self.label, *(g for g in self.ranked if g.key != self.label.key))[:k]


@dataclass
class _Track:
    last_stamp: float
    last_seen: float
    scores: dict[str, float] = field(default_factory=dict)
    stable: Hashable = None
    stable_text: str = ''
    challenger: Hashable = None
    since: float = 0.0


def default_merge_key(text: str) -> str:
    """Without a lexicon only the spelling merges: case and spacing."""
    return ' '.join(text.lower().replace('_', ' ').split())


class StableLabeler:
    """Stable labels for many streams (module docstring). Thread-safe: a worker updates streams
    while a timer expires them. `options` may be replaced at any time; it applies from the next
    frame on and keeps every stream's state."""

    def __init__(self, options: StabilityOptions,
                 merge_key: Callable[[str], Hashable] = default_merge_key,
                 max_streams: int = 256, max_labels: int = 256):
        self.options = options
        self.merge_key = merge_key
        self.max_streams = max_streams
        self.max_labels = max_labels
        self._tracks: OrderedDict[Hashable, _Track] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tracks)

    def streams(self) -> list[Hashable]:
        with self._lock:
            return list(self._tracks)

    def update(self, stream: Hashable, stamp: float, labels: Sequence[Label], now: float) -> StableLabels:
        """Add one frame's labels (probabilities) to `stream`. `stamp` is the frame's time in
        seconds (its header stamp), `now` the caller's clock for expiry (e.g. receipt time)."""
        opts = self.options
        with self._lock:
            track = self._track(stream, stamp, now, opts)
            dt = stamp - track.last_stamp
            first = not track.scores and track.stable is None
            alpha = 1.0 if first or opts.smoothing_s == 0 else -math.expm1(-dt / opts.smoothing_s)
            track.last_stamp, track.last_seen = stamp, now
            self._accumulate(track, labels, alpha)
            groups = self._groups(track.scores)
            changed = self._decide(track, groups, stamp, opts)
            stable = None
            if track.stable is not None:
                score = next((g.score for g in groups if g.key == track.stable), 0.0)
                stable = GroupLabel(track.stable_text, score, key=track.stable)
            return StableLabels(stable, tuple(groups), changed)

    def expire(self, now: float) -> list[Hashable]:
        """Drop streams that got no frame for timeout_s (by the caller's clock); returns them."""
        timeout = self.options.timeout_s
        with self._lock:
            gone = [s for s, t in self._tracks.items() if now - t.last_seen > timeout]
            for s in gone:
                del self._tracks[s]
        return gone

    def drop(self, streams) -> None:
        """Forget `streams` now (e.g. object tracks that ended); unknown ones are ignored."""
        with self._lock:
            for s in streams:
                self._tracks.pop(s, None)

    def clear(self) -> None:
        with self._lock:
            self._tracks.clear()

    # -- steps ------------------------------------------------------------------------------

    def _track(self, stream: Hashable, stamp: float, now: float, opts: StabilityOptions) -> _Track:
        track = self._tracks.get(stream)
        if track is not None and (now - track.last_seen > opts.timeout_s or stamp < track.last_stamp):
            track = None           # stale, or time went backwards: start over
        if track is None:
            track = _Track(last_stamp=stamp, last_seen=now)
            self._tracks[stream] = track
            while len(self._tracks) > self.max_streams:
                self._tracks.popitem(last=False)
        self._tracks.move_to_end(stream)
        return track

    def _accumulate(self, track: _Track, labels: Sequence[Label], alpha: float) -> None:
        scores = track.scores
        keep = 1.0 - alpha
        for text in scores:
            scores[text] *= keep
        for label in labels:
            scores[label.text] = scores.get(label.text, 0.0) + alpha * float(label.score)
        small = [t for t, s in scores.items() if s < PRUNE_BELOW]
        for t in small:
            del scores[t]
        if len(scores) > self.max_labels:
            for t in sorted(scores, key=scores.get)[:len(scores) - self.max_labels]:
                del scores[t]

    def _groups(self, scores: dict[str, float]) -> list[GroupLabel]:
        """Synonym groups, best first (ties by name, so the order never depends on dict order)."""
        sums: dict[Hashable, float] = {}
        best: dict[Hashable, tuple[float, str]] = {}
        for text, score in scores.items():
            key = self.merge_key(text)
            sums[key] = sums.get(key, 0.0) + score
            if key not in best or (score, best[key][1]) > (best[key][0], text):
                best[key] = (score, text)
        groups = [GroupLabel(best[k][1], s, key=k) for k, s in sums.items()]
        groups.sort(key=lambda g: (-g.score, g.text))
        return groups

    @staticmethod
    def _decide(track: _Track, groups: list[GroupLabel], stamp: float, opts: StabilityOptions) -> bool:
        """Hysteresis: True when the stable label changes on this frame."""
        if track.stable is None:
            if not groups:
                return False
            track.stable, track.stable_text = groups[0].key, groups[0].text
            return True
        stable_score = next((g.score for g in groups if g.key == track.stable), 0.0)
        leader = next((g for g in groups if g.key != track.stable), None)
        if leader is None or leader.score - stable_score <= opts.margin:
            track.challenger = None
            return False
        if leader.key != track.challenger:
            track.challenger, track.since = leader.key, stamp
        if stamp - track.since < opts.dwell_s - STAMP_EPS:
            return False
        track.stable, track.stable_text, track.challenger = leader.key, leader.text, None
        return True
