"""A live parameter change in two steps, so no message is computed with half of the old settings and
half of the new:

1. prepare_change() validates the change like a start would and builds everything it needs (a new
   classifier over the same loaded models when the options differ, the object finder, the label
   outputs' new settings), touching nothing the worker reads. It may take seconds (a labels file to
   read, label embeddings not yet cached); it raises ValueError or NovicError naming what is wrong,
   and then nothing changed.
2. The node swaps the prepared LiveSettings in with one assignment (NovicNode._swap_in); the worker
   reads `node.live` once per batch.

Where they run (ros/parameter_changes.py, NovicNode's parameter side): the parameter callback validates the change
against the parameters'
values (quick: no file is read) and, when the change needs nothing slow (needs_building() is
false), prepares and swaps it in at once. A change that reads a labels file or embeds a label list
goes to the ChangeBuilder's thread, which prepares and swaps it in off the executor, in the order
the changes were accepted; the callback waits SYNC_WAIT_S for it (a quick one is then answered with
its outcome), else answers that it is accepted and pending. ROS-free.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..core.classifier import NovicClassifier
from ..core.errors import NovicError
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


# How long the parameter callback waits for a change being built before it answers "accepted,
# pending": the executor must never stop frames or diagnostics for more than 100 ms.
SYNC_WAIT_S = 0.05
# What a prompted-mode label list is made of: changing one of them reads a file or embeds labels.
VOCABULARY_PARAMS = frozenset({'mode', 'labels', 'labels_file', 'prompt_template'})


# The rest of the classifier's options: a change of one builds a new classifier over the same label
# embeddings, which costs a look-up per label (the settings thread takes it for a long list).
OPTION_PARAMS = frozenset({'top_k', 'beam_width', 'max_tokens', 'min_score'})
LONG_LIST = 1000


def needs_building(target: NodeParams, names, labels_now: int = 0) -> bool:
    """True when a change to `target` (changing `names`) reads a labels file or embeds a label list,
    or rebuilds a classifier over a list longer than LONG_LIST (`labels_now`: the list in use)."""
    if target.model.mode != 'prompted':
        return False
    return any(n in VOCABULARY_PARAMS or labels_now > LONG_LIST and n in OPTION_PARAMS for n in names)


@dataclass
class Change:
    """One accepted parameter request on its way through the ChangeBuilder."""
    seq: int
    updates: dict
    submitted: float                                # time.monotonic()
    error: str | None = None                        # why it failed (then nothing of it applies)
    finished: float | None = None
    detached: bool = False                          # answered "pending" before it finished
    _done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, timeout: float) -> bool:
        """Wait up to `timeout` for the outcome: True when it came (the caller answers with it), else
        the change is detached (it finishes on its own, and a failure is reported by on_failed)."""
        self._done.wait(timeout)
        with self._lock:
            if self._done.is_set():
                return True
            self.detached = True
            return False


class ChangeBuilder:
    """Builds accepted changes one after the other on a thread of its own. `work(change)` prepares
    and swaps a change in (raising ValueError / NovicError / anything when it cannot);
    `on_failed(change)` is called on that thread when a detached change failed (the node then puts
    the parameters back to the values in force). Exceptions never leave the thread."""

    def __init__(self, work: Callable[[Change], None], on_failed: Callable[[Change], None], log=None):
        self._work = work
        self._on_failed = on_failed
        self._log = log
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list[Change] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.failed: list[Change] = []              # detached failures not yet reported back
        self.last_failure: Change | None = None
        self.applied = 0
        self._thread = threading.Thread(target=self._run, name='novic-settings', daemon=True)
        self._thread.start()

    def submit(self, updates: dict) -> Change:
        with self._lock:
            self._seq += 1
            change = Change(self._seq, dict(updates), time.monotonic())
            self._pending.append(change)
        self._queue.put(change)
        return change

    def pending(self) -> list[Change]:
        with self._lock:
            return list(self._pending)

    def touched_after(self, change: Change) -> set[str]:
        """The parameters that changes accepted after `change` and still pending set."""
        with self._lock:
            return {n for c in self._pending if c.seq > change.seq for n in c.updates}

    def take_failed(self) -> list[Change]:
        with self._lock:
            out, self.failed = self.failed, []
            return out

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            change = self._queue.get()
            if change is None:
                return
            try:
                self._work(change)
            except Exception as e:  # noqa: BLE001 -- a failed change leaves the old settings; the thread goes on
                change.error = str(e) if isinstance(e, (ValueError, NovicError)) else f"{type(e).__name__}: {e}"
                if not isinstance(e, (ValueError, NovicError)) and self._log is not None:
                    self._log.unexpected('building a parameter change failed', e)
            change.finished = time.monotonic()
            with change._lock:
                change._done.set()
                detached = change.detached
            with self._lock:
                self._pending.remove(change)
                if change.error is None:
                    self.applied += 1
                    self.last_failure = None        # what is in force now is what was asked for last
                else:
                    self.last_failure = change
                    if detached:
                        self.failed.append(change)
            if change.error is not None and detached:
                try:
                    self._on_failed(change)
                except Exception as e:  # noqa: BLE001
                    if self._log is not None:
                        self._log.unexpected('reporting a failed parameter change', e)

    def diagnostics(self, now: float) -> dict[str, str]:
        pending = self.pending()
        failed = self.last_failure
        return {
            'parameter_change': (f"pending for {now - pending[0].submitted:.1f} s: "
                                 f"{', '.join(sorted({n for c in pending for n in c.updates}))}"
                                 + (f" ({len(pending)} requests)" if len(pending) > 1 else '')) if pending else 'none',
            'parameter_change_failed': (f"{failed.error} ({now - failed.finished:.0f} s ago; the settings before it "
                                        "stayed in force)") if failed is not None else '-',
            'parameter_changes_built': str(self.applied),
        }
