"""What NovicNode reports besides labels: VisionInfo with LabelInfo (a new version when the vocabulary
changes or hybrid mode names new labels), the 1 Hz /diagnostics status with the worker's watch, and
the label-embedding line of a start. A mixin of NovicNode (node.py), which owns the publishers."""
from __future__ import annotations

import time

from .callback_guard import report
from .diagnostics import diagnostics, failed_diagnostics
from .label_info import GROWTH_PERIOD_S
from .messages import vision_info_message


class NodeReports:
    """VisionInfo / LabelInfo and /diagnostics of the node (self: a NovicNode)."""

    def _log_label_embeddings(self, classifier) -> None:
        labels = classifier.prompt_labels
        if labels:
            cache = classifier.text_cache
            where = cache.disk.dir if cache.disk is not None else 'memory'
            self.get_logger().info(f"label embeddings: {len(labels)} labels, {cache.computed} computed, "
                                   f"{len(labels) - cache.computed} from the cache ({where})")

    def _publish_vision_info(self) -> None:
        classifier, info_pub = self.classifier, self.info_pub
        if classifier is None or info_pub is None:
            return
        stamp = self.get_clock().now().to_msg()
        info_pub.publish(vision_info_message(self.method, classifier.options, self.get_fully_qualified_name(),
                                             self.params.model.labels_file, self.vocabulary.version, stamp))
        # LabelInfo goes with every VisionInfo version, with the same stamp (label_info.py).
        if self.label_info_pub is not None and self.label_map.active:
            self.label_info_pub.publish(self.label_map.message(stamp))
            self._label_info_sent = time.monotonic()

    def label_map_grew(self) -> None:
        """Hybrid mode named labels never named before: a new vocabulary version, with its LabelInfo (at
        most once per GROWTH_PERIOD_S; the diagnostics timer publishes what waited). Called by the
        worker and the diagnostics timer."""
        with self._label_info_lock:
            if not self.label_map.grown or time.monotonic() - self._label_info_sent < GROWTH_PERIOD_S:
                return
            self.vocabulary.bump()
            self._publish_vision_info()

    # --- diagnostics ---

    def _publish_diagnostics(self) -> None:
        """Timer: the worker's watch (restarts a dead or stuck worker), LabelInfo growth, the status.
        Each step has its own try: a failing one costs neither the others nor the status."""
        for where, step in (('worker watch', self.worker.watch), ('label info', self.label_map_grew)):
            try:
                step()
            except Exception as e:  # noqa: BLE001
                self.callback_errors.count(where, e)
                report(self.log, where, e)
        try:
            msg = diagnostics(self)
        except Exception as e:  # noqa: BLE001 -- still say something: the status itself is broken
            self.callback_errors.count('diagnostics', e)
            self.log.unexpected('diagnostics failed', e)
            msg = failed_diagnostics(self, e)
        self.diag_pub.publish(msg)
