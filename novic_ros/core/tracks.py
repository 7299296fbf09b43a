"""Objects tracked from frame to frame: an id that stays while the object stays in view, and a label
smoothed over the track's frames.

Per stream (a camera), the objects of each frame (object_finder.py: label, score, box, CLIP embedding) are
assigned to the tracks of the frames before:

Prediction
    Each track moves on at its velocity (the box centre's, in pixels per second of the frames'
    stamps, a moving average over its detections) from where it was last seen, so an object that
    moves steadily is looked for where it should be now, also after frames it was missed.
Assignment
    A detection may continue a track when their boxes overlap: the IoU of the detection with the
    predicted box, or with the box last seen (an object that stopped or turned back while hidden),
    whichever is larger, at least `min_iou`, both boxes grown by BUFFER of their size on each side
    first (a buffered IoU, as C-BIoU does), so a jittery detection still reaches its track. Among those pairs, one
    optimal assignment (Hungarian,
    scipy.optimize.linear_sum_assignment; any track or detection may stay unassigned) maximises
    the sum of ``(1 - appearance_weight) * IoU + appearance_weight * cosine``, the cosine between the detection's
    CLIP embedding and the
    track's (a moving average of its detections' embeddings, momentum EMBEDDING_MOMENTUM). The
    appearance term keeps two objects apart where their boxes overlap, even two of one noun: the
    same object seen a frame later has a cosine near 1, another one far less (the toy CLIP: 0.98
    against 0.45 at the 95th percentile).
Birth and end
    A detection that continues no track starts a new one with a new id (ids are never reused). A
    track that got no detection for `timeout_s` (of the stream's stamps) ends: an object that
    comes back after that gets a new id. A stream whose stamps go backwards (a bag played again)
    starts over; one that sends nothing for `timeout_s` of the caller's clock is dropped by expire().
Labels
    Each track's labels are smoothed by stable_labels.StableLabeler, one stream per track, with the
    same smoothing, synonym merging and hysteresis as labels_stable: the label of a tracked object
    changes when the evidence does, not with each frame's flicker.

Why our own tracker and not a library: the ones on PyPI either need torch (boxmot), pin numpy below
2 (norfair 2.3), or pull OpenCV and matplotlib into the runtime and match on boxes and fixed class
ids only (supervision's ByteTrack, trackers); what this needs is small (one assignment per frame
over a handful of objects) and an open vocabulary has no class ids to match on, but it has CLIP
embeddings. ROS-free; numpy and scipy only.
"""
from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .object_finder import DetectedObject, iou_matrix
from .frame_labels import Label
from .stable_labels import StabilityOptions, StableLabeler, StableLabels, default_merge_key

EMBEDDING_MOMENTUM = 0.8      # a track's embedding keeps this much of itself per detection
VELOCITY_MOMENTUM = 0.5       # ... and its velocity this much
# Boxes are compared grown by this much of their size on each side (the buffered IoU of C-BIoU,
# Yang et al. 2023, with their first-stage buffer): a jittery or fast detection still overlaps its
# track, and where several could, the embedding decides.
BUFFER = 0.3
MAX_TRACKS = 256              # per stream: a frame holds at most max_objects (100) objects
MAX_STREAMS = 64


@dataclass(frozen=True)
class TrackOptions:
    """Defaults and documentation live in the parameter table (track_timeout_s, ...)."""
    timeout_s: float = 1.5              # a track without a detection for this long ends
    min_iou: float = 0.1                # least overlap of a detection with a track's predicted box
    appearance_weight: float = 0.5      # weight of the embedding cosine against the IoU in the assignment

    def __post_init__(self):
        for name, low, high in (('timeout_s', 0.0, 3600.0), ('min_iou', 0.0, 1.0), ('appearance_weight', 0.0, 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        if self.timeout_s == 0.0:
            raise ValueError("timeout_s must be > 0 (a track has to outlive one frame interval)")


@dataclass(frozen=True)
class TrackedObject:
    """One detection of a frame with the track it belongs to. `labels` are the track's smoothed
    labels (labels.label the stable one; labels.top(k) for a ranked list); `new` is True on the
    track's first frame."""
    track_id: str
    detection: DetectedObject
    labels: StableLabels
    new: bool

    @property
    def label(self) -> str:
        return self.labels.label.text if self.labels.label is not None else self.detection.label

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.detection.box


@dataclass
class _Track:
    id: str
    box: np.ndarray                     # last detected box
    stamp: float                        # when it was detected
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))     # centre, px / s
    embedding: np.ndarray | None = None

    def predicted(self, stamp: float) -> np.ndarray:
        dx, dy = self.velocity * (stamp - self.stamp)
        return self.box + np.array([dx, dy, dx, dy])


@dataclass
class _Stream:
    last_stamp: float
    last_seen: float
    tracks: list[_Track] = field(default_factory=list)


def _buffered(boxes: np.ndarray) -> np.ndarray:
    """N x 4 boxes grown by BUFFER of their width and height on each side."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    grow = np.stack([-w, -h, w, h], axis=1) * BUFFER
    return boxes + grow


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _unit(v) -> np.ndarray | None:
    if v is None:
        return None
    v = np.asarray(v, np.float64).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


class ObjectTracker:
    """Tracks for many streams (module docstring). Thread-safe: a worker updates streams while a
    timer expires them. `options` and `stability` may be replaced at any time; they apply from the
    next frame on and keep every track."""

    def __init__(self, options: TrackOptions, stability: StabilityOptions,
                 merge_key: Callable[[str], Hashable] = default_merge_key, max_streams: int = MAX_STREAMS):
        self.options = options
        self.max_streams = max_streams
        self.labeler = StableLabeler(stability, merge_key=merge_key, max_streams=max_streams * MAX_TRACKS)
        self._streams: OrderedDict[Hashable, _Stream] = OrderedDict()
        self._ids = itertools.count(1)
        self.started = 0                # tracks started, over the tracker's lifetime
        self._lock = threading.Lock()

    @property
    def stability(self) -> StabilityOptions:
        return self.labeler.options

    @stability.setter
    def stability(self, options: StabilityOptions) -> None:
        self.labeler.options = options

    def active(self) -> int:
        """Tracks alive now, over all streams."""
        with self._lock:
            return sum(len(s.tracks) for s in self._streams.values())

    def update(self, stream: Hashable, stamp: float, objects: Sequence[DetectedObject],
               now: float) -> list[TrackedObject]:
        """Assign one frame's objects to `stream`'s tracks; one TrackedObject per object, in their
        order. `stamp` is the frame's time in seconds (its header stamp), `now` the caller's clock
        for expiry (e.g. receipt time)."""
        opts = self.options
        with self._lock:
            state = self._stream(stream, stamp, now, opts)
            ended = [t for t in state.tracks if stamp - t.stamp > opts.timeout_s]
            state.tracks = [t for t in state.tracks if stamp - t.stamp <= opts.timeout_s]
            self.labeler.drop([(stream, t.id) for t in ended])
            pairs = self._assign(state.tracks, objects, stamp, opts)
            out: list[tuple[_Track, bool]] = []
            for j, obj in enumerate(objects):
                i = pairs.get(j)
                if i is None:
                    track = _Track(str(next(self._ids)), np.asarray(obj.box, np.float64), stamp,
                                   embedding=_unit(obj.embedding))
                    state.tracks.append(track)
                    self.started += 1
                    out.append((track, True))
                else:
                    track = state.tracks[i]
                    self._follow(track, obj, stamp)
                    out.append((track, False))
            if len(state.tracks) > MAX_TRACKS:        # the longest unseen go first
                state.tracks.sort(key=lambda t: t.stamp)
                dropped, state.tracks = state.tracks[:-MAX_TRACKS], state.tracks[-MAX_TRACKS:]
                self.labeler.drop([(stream, t.id) for t in dropped])
            state.last_stamp, state.last_seen = stamp, now
        return [TrackedObject(track.id, obj, self.labeler.update((stream, track.id), stamp,
                                                                 [Label(obj.label, obj.score)], now), new)
                for (track, new), obj in zip(out, objects)]

    def expire(self, now: float) -> list[Hashable]:
        """Drop streams that got no frame for timeout_s (by the caller's clock); returns them."""
        timeout = self.options.timeout_s
        with self._lock:
            gone = [s for s, st in self._streams.items() if now - st.last_seen > timeout]
            for s in gone:
                self.labeler.drop([(s, t.id) for t in self._streams.pop(s).tracks])
        return gone

    def clear(self) -> None:
        with self._lock:
            self._streams.clear()
            self.labeler.clear()

    # -- steps ------------------------------------------------------------------------------

    def _stream(self, stream: Hashable, stamp: float, now: float, opts: TrackOptions) -> _Stream:
        state = self._streams.get(stream)
        if state is not None and (now - state.last_seen > opts.timeout_s or stamp < state.last_stamp):
            self.labeler.drop([(stream, t.id) for t in state.tracks])
            state = None           # stale, or time went backwards: start over
        if state is None:
            state = _Stream(stamp, now)
            self._streams[stream] = state
            while len(self._streams) > self.max_streams:
                old, st = self._streams.popitem(last=False)
                self.labeler.drop([(old, t.id) for t in st.tracks])
        self._streams.move_to_end(stream)
        return state

    @staticmethod
    def _assign(tracks: list[_Track], objects: Sequence[DetectedObject], stamp: float,
                opts: TrackOptions) -> dict[int, int]:
        """Detection index -> track index, the best assignment among the pairs that pass the gate."""
        if not tracks or not objects:
            return {}
        boxes = _buffered(np.asarray([o.box for o in objects], np.float64))
        # Where it should be now, or where it was last seen (an object that stopped or turned back
        # while it was hidden): the better overlap counts.
        iou = np.maximum(iou_matrix(_buffered(np.stack([t.predicted(stamp) for t in tracks])), boxes),
                         iou_matrix(_buffered(np.stack([t.box for t in tracks])), boxes))
        cosine = np.zeros_like(iou)
        for j, o in enumerate(objects):
            e = _unit(o.embedding)
            if e is None:
                continue
            for i, t in enumerate(tracks):
                if t.embedding is not None and len(t.embedding) == len(e):
                    cosine[i, j] = max(0.0, float(t.embedding @ e))
        affinity = (1.0 - opts.appearance_weight) * iou + opts.appearance_weight * cosine
        allowed = iou >= max(opts.min_iou, 1e-9)       # boxes must touch at least
        # Any track and any detection may also stay unassigned (the zero-cost rows and columns), so
        # the best total affinity never pays for a pair that is not allowed with a worse one.
        n, m = iou.shape
        cost = np.zeros((n + m, m + n))
        cost[:n, :m] = np.where(allowed, -affinity, 1.0)
        rows, cols = linear_sum_assignment(cost)
        return {int(j): int(i) for i, j in zip(rows, cols) if i < n and j < m and allowed[i, j]}

    @staticmethod
    def _follow(track: _Track, obj: DetectedObject, stamp: float) -> None:
        box = np.asarray(obj.box, np.float64)
        dt = stamp - track.stamp
        if dt > 0:
            v = (_centre(box) - _centre(track.box)) / dt
            track.velocity = VELOCITY_MOMENTUM * track.velocity + (1 - VELOCITY_MOMENTUM) * v
        track.box, track.stamp = box, stamp
        e = _unit(obj.embedding)
        if e is not None:
            if track.embedding is None or len(track.embedding) != len(e):
                track.embedding = e
            else:
                track.embedding = _unit(EMBEDDING_MOMENTUM * track.embedding + (1 - EMBEDDING_MOMENTUM) * e)
