"""Scoring object tracks against a sequence with ground-truth identities (training/toy_sequences.py).

Each frame's tracked objects are matched to the objects in view as CLEAR MOT does (Bernardin and
Stiefelhagen, 2008): an object keeps the track it was matched to in its last matched frame while
their boxes still overlap by MATCH_IOU (so a duplicate detection beside the right one is no id
switch), the rest are matched by box IoU (Hungarian, pairs above MATCH_IOU). Then, per ground-truth object, over
the consecutive frames in which it is matched:

- id switches: the track id differs from the one it had when last matched, counted only when the
  object was matched less than `timeout_s` before (an object that was out of view or missed longer
  than that is meant to get a new id: `reentries` counts those that did, `kept_after_timeout` those
  that did not);
- label flips, per frame and per track: the detection's own label, and the track's smoothed label,
  differ from those of the previous matched frame of the same track (so both are counted over the
  same pairs of frames).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..core.object_finder import iou_matrix

MATCH_IOU = 0.3


@dataclass
class TrackScores:
    frames: int = 0
    visible: int = 0                    # (object, frame) pairs in view
    matched: int = 0                    # ... that a tracked object lies on
    id_switches: int = 0
    reentries: int = 0                  # new ids after the object was gone for timeout_s or more
    kept_after_timeout: int = 0         # old ids after such a gap (should not happen)
    frame_label_flips: int = 0
    track_label_flips: int = 0
    longest_id_frames: dict[int, int] = field(default_factory=dict)     # identity -> frames one id spanned
    ids: dict[int, list[str]] = field(default_factory=dict)             # identity -> its track ids, in order

    @property
    def coverage(self) -> float:
        return self.matched / self.visible if self.visible else 0.0


def score_tracks(frames: Sequence, tracked: Sequence[Sequence], timeout_s: float) -> TrackScores:
    """`frames`: toy_sequences.SequenceFrame (stamp, objects with identity, label, box); `tracked`:
    per frame the tracker's TrackedObjects (track_id, box, label, detection.label)."""
    s = TrackScores(frames=len(frames))
    last: dict[int, tuple[float, str, str, str]] = {}       # identity -> (stamp, track id, frame label, track label)
    span: dict[tuple[int, str], list[int]] = {}             # (identity, track id) -> [first, last frame]
    for k, (frame, objects) in enumerate(zip(frames, tracked)):
        truth = list(frame.objects)
        s.visible += len(truth)
        if not truth or not objects:
            continue
        iou = iou_matrix([t.box for t in truth], [o.box for o in objects])
        pairs = {}
        for r, t in enumerate(truth):               # correspondences that are still valid are kept
            previous = last.get(t.identity)
            c = next((c for c, o in enumerate(objects) if previous is not None and o.track_id == previous[1]), None)
            if c is not None and iou[r, c] >= MATCH_IOU and c not in pairs.values():
                pairs[r] = c
        free_r = [r for r in range(len(truth)) if r not in pairs]
        free_c = [c for c in range(len(objects)) if c not in pairs.values()]
        if free_r and free_c:
            sub = iou[np.ix_(free_r, free_c)]
            for i, j in zip(*linear_sum_assignment(-sub)):
                if sub[i, j] >= MATCH_IOU:
                    pairs[free_r[i]] = free_c[j]
        for r, c in sorted(pairs.items()):
            s.matched += 1
            ident, obj = truth[r].identity, objects[c]
            ids = s.ids.setdefault(ident, [])
            if not ids or ids[-1] != obj.track_id:
                ids.append(obj.track_id)
            first_last = span.setdefault((ident, obj.track_id), [k, k])
            first_last[1] = k
            now = (frame.stamp, obj.track_id, obj.detection.label, obj.label)
            before = last.get(ident)
            last[ident] = now
            if before is None:
                continue
            gap = frame.stamp - before[0]
            if before[1] != obj.track_id:
                if gap >= timeout_s:
                    s.reentries += 1
                else:
                    s.id_switches += 1
                continue
            if gap >= timeout_s:
                s.kept_after_timeout += 1
            s.frame_label_flips += before[2] != now[2]
            s.track_label_flips += before[3] != now[3]
    for (ident, _), (first, last_frame) in span.items():
        s.longest_id_frames[ident] = max(s.longest_id_frames.get(ident, 0), last_frame - first + 1)
    return s


def ids_unique_across_objects(scores: TrackScores) -> bool:
    """No track id was given to two ground-truth objects."""
    owners: dict[str, int] = {}
    for ident, ids in scores.ids.items():
        for i in ids:
            if owners.setdefault(i, ident) != ident:
                return False
    return True
