"""vision_msgs/LabelInfo for consumers written for closed vocabularies: a class map (numeric id ->
name) and the threshold, latched (transient local) beside VisionInfo and republished whenever
VisionInfo's database_version goes up, with the same stamp.

- prompted mode: the label list, ids 0, 1, ... in list order; threshold = min_score.
- hybrid mode: the vocabulary is open (the decoder proposes, CLIP re-ranks), so the map holds the
  labels published so far, each given the next id when first seen; it grows, and each growth is a new
  version of the vocabulary (VisionInfo's database_version goes up), at most once per GROWTH_PERIOD_S.
  At most MAX_CLASSES labels get an id; vision_msgs reserves 65535 for the 'UNLABELED' class.
- generate mode publishes none (nothing is chosen from a list; the Classification class_id strings
  are the labels themselves).

The class_map's ids number the names; our messages carry the names themselves as class_id (vision_msgs
4.x's class_id is a string), so a consumer maps name -> id with the latest LabelInfo."""
from __future__ import annotations

import threading

from vision_msgs.msg import LabelInfo, VisionClass

from ..core.pacing import Steps

from ..core.options import ClassifierOptions

MAX_CLASSES = 65535           # ids 0..65534; 65535 is vision_msgs' UNLABELED
MESSAGE_STEP = 2048            # classes made between two pauses on a paced thread
GROWTH_PERIOD_S = 1.0
MODES = ('prompted', 'hybrid')


class LabelMap:
    """The class map of the current vocabulary. Thread-safe: the worker adds labels while a parameter
    change resets the map."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._mode = ''
        self._threshold = 0.0
        self.grown = False            # labels were added since the last message

    def reset(self, options: ClassifierOptions) -> None:
        """A new vocabulary: prompted mode's list, or an empty map that hybrid mode fills."""
        with self._lock:
            self._mode, self._threshold = options.mode, float(options.min_score)
            labels = options.labels if options.mode == 'prompted' else ()
            self._ids = {label: i for i, label in enumerate(dict.fromkeys(labels)) if i < MAX_CLASSES}
            self.grown = False

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def active(self) -> bool:
        return self._mode in MODES

    def add(self, labels) -> bool:
        """Hybrid mode: give new labels ids; True when the map grew."""
        if self._mode != 'hybrid':
            return False
        with self._lock:
            before = len(self._ids)
            for label in labels:
                if label and label not in self._ids and len(self._ids) < MAX_CLASSES:
                    self._ids[label] = len(self._ids)
            if len(self._ids) > before:
                self.grown = True
            return len(self._ids) > before

    def message(self, stamp) -> LabelInfo:
        """The LabelInfo of the map now. On a paced thread (a change built beside inference) its classes
        are made MESSAGE_STEP at a time with a pause between: 27k VisionClass objects are some 100 ms
        of Python holding the interpreter lock the worker needs."""
        with self._lock:
            self.grown = False
            items, threshold = list(self._ids.items()), self._threshold
        steps = Steps()
        classes = []
        for start in range(0, len(items), MESSAGE_STEP):
            classes.extend(VisionClass(class_id=i, class_name=n) for n, i in items[start:start + MESSAGE_STEP])
            steps()
        msg = LabelInfo(class_map=classes, threshold=threshold)
        msg.header.stamp = stamp
        return msg
