"""What novic_node publishes beside the raw labels: `labels_stable` (labels with hysteresis over
time, core/stable_labels.py) and `categories` (coarse categories, lexicon/categories.py), per
camera, each message with the input frame's header.

A stream is one camera: the topic a frame came on and its header's frame_id. Its time is the
frames' header stamps (receipt time for unstamped frames); a stream that sends nothing for
`stable_timeout_s` is dropped by a 1 Hz timer and starts over when it comes back.

WordNet (Debian's wordnet-base) gives synonym merging and the categories; without it the node
still publishes labels_stable (merging only spellings) and warns that categories are off.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from vision_msgs.msg import Classification

from ..core.frame_labels import FrameLabels
from ..core.stable_labels import StableLabeler, default_merge_key
from ..lexicon.categories import CategoryMap
from ..lexicon.label_senses import LabelSenses
from ..lexicon.wordnet import WordNet
from ..params import NodeParams
from .messages import classification

STABLE_TOPIC = 'labels_stable'
CATEGORIES_TOPIC = 'categories'
EXPIRE_PERIOD_S = 1.0


class LabelOutputs:
    """The two publishers and their state. publish() runs on the inference worker, prepare() on
    the parameter callback and the expiry on a timer: the labeler locks itself, and settings are
    swapped whole."""

    def __init__(self, node, params: NodeParams, lifecycle: bool = False):
        """With `lifecycle`, the publishers are a lifecycle node's (they publish while it is active)."""
        self._node = node
        self._lifecycle = lifecycle
        self._logger = node.get_logger()
        self.senses = self._load_senses()
        merge_key = self.senses.merge_key if self.senses is not None else default_merge_key
        self.labeler = StableLabeler(params.stability_options(), merge_key=merge_key)
        self.categories = self._category_map(params.model.categories)   # ValueError names a bad category
        self._specs = tuple(params.model.categories)
        if self.categories is not None:
            names = [c.name for c in self.categories.categories]
            self._logger.info(f"categories ({len(names)}): {', '.join(names)}")
            self._logger.debug("categories and their WordNet synsets:\n" + self.categories.describe())
        create_publisher = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        self.stable_pub = create_publisher(Classification, STABLE_TOPIC, 10)
        self.categories_pub = create_publisher(Classification, CATEGORIES_TOPIC, 10)
        self._settings_lock = threading.Lock()
        self._timer = node.create_timer(EXPIRE_PERIOD_S, self._expire)

    def destroy(self) -> None:
        """Publishers and timer go; the state with them (a node that is cleaned up)."""
        self._node.destroy_timer(self._timer)
        destroy = self._node.destroy_lifecycle_publisher if self._lifecycle else self._node.destroy_publisher
        for pub in (self.stable_pub, self.categories_pub):
            destroy(pub)
        self.labeler.clear()

    def _load_senses(self) -> LabelSenses | None:
        try:
            return LabelSenses(WordNet.load())
        except FileNotFoundError as e:
            self._logger.warning(f"no categories and no synonym merging in {STABLE_TOPIC}: {e}")
            return None

    def _category_map(self, specs) -> CategoryMap | None:
        if self.senses is None:
            return None
        try:
            return CategoryMap(self.senses.wn, specs, self.senses)
        except ValueError as e:
            raise ValueError(f"parameter 'categories': {e}") from None

    def prepare(self, params: NodeParams) -> Callable[[], None]:
        """Check a live parameter change (ValueError names what is wrong) and return what applies
        it, so the node commits every part of a change or none."""
        specs = tuple(params.model.categories)
        categories = self.categories if specs == self._specs else self._category_map(specs)
        options = params.stability_options()

        def apply() -> None:
            with self._settings_lock:
                self.labeler.options, self.categories = options, categories
                self._specs = specs
        return apply

    def publish(self, camera: str, header, labels: FrameLabels, received: float, top_k: int) -> None:
        """The stable labels (the best `top_k`: the batch's setting) and the categories of one classified frame."""
        with self._settings_lock:
            categories = self.categories
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9 if header.stamp.sec or header.stamp.nanosec else received
        result = self.labeler.update((camera, header.frame_id), stamp, labels.labels, received)
        self.stable_pub.publish(classification(header, ((l.text, l.score) for l in result.top(top_k))))
        if categories is not None:
            self.categories_pub.publish(classification(header, categories.scores((l.text, l.score)
                                                                                 for l in labels.labels)))

    def _expire(self) -> None:
        for camera, frame_id in self.labeler.expire(time.monotonic()):
            self._logger.info(f"{STABLE_TOPIC}: no frame from {camera} ({frame_id or 'no frame_id'}) for "
                              f"{self.labeler.options.timeout_s:g} s, its state is dropped")
