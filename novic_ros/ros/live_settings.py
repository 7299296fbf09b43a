"""A live parameter change in two steps, so no message is computed with half of the old settings and
half of the new:

1. prepare_change() validates the change like a start would and builds everything it needs (a new
   classifier over the same loaded models when the options differ, the object finder, the label
   outputs' new settings), touching nothing the worker reads. It may take seconds (label embeddings
   not yet cached); it raises ValueError or NovicError naming what is wrong, and then nothing changed.
2. The node swaps the prepared LiveSettings in with one assignment (NovicNode._swap_in); the worker
   reads `node.live` once per batch.

Today both steps run in the parameter callback, on the executor thread (see ros/node.py). ROS-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.classifier import NovicClassifier
from ..core.object_finder import ObjectFinder
from ..params import NodeParams
from ..pipeline import build_object_finder


@dataclass(frozen=True)
class LiveSettings:
    """What one batch is computed with, swapped whole."""
    params: NodeParams
    classifier: NovicClassifier | None = None      # None while unconfigured
    finder: ObjectFinder | None = None             # None without `objects`


@dataclass(frozen=True)
class PreparedChange:
    settings: LiveSettings
    apply_outputs: Callable[[], None] | None = None    # swaps the label outputs' settings in (LabelOutputs.prepare)
    apply_objects: Callable[[], None] | None = None    # ... and the object outputs' (tracks: ObjectOutputs.prepare)


def object_finder(classifier: NovicClassifier, params: NodeParams) -> ObjectFinder | None:
    """The multi-object finder over `classifier` with the object_* settings (None without `objects`);
    ValueError names a setting that cannot work with the loaded model."""
    return build_object_finder(classifier, params.model) if params.objects else None


def prepare_change(current: LiveSettings, label_outputs, updates: dict, object_outputs=None) -> PreparedChange:
    """Validate `updates` (parameter name -> value) against `current` and build what they need."""
    params = current.params.updated(**updates)
    options = params.model.to_options()
    classifier = current.classifier
    if classifier is not None and options != classifier.options:
        classifier = classifier.with_options(options)
    finder = None if classifier is None else object_finder(classifier, params)
    apply_outputs = label_outputs.prepare(params) if label_outputs is not None else None
    apply_objects = object_outputs.prepare(params) if object_outputs is not None else None
    return PreparedChange(LiveSettings(params, classifier, finder), apply_outputs, apply_objects)
