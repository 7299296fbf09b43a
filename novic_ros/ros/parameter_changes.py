"""What a set_parameters request does to novic_node: NovicNode's parameter side, a mixin of the node
(ros/node.py; it reads the node's `live`, `_live_lock`, `_target`, `_reverting`, `changes`, `outputs`,
`vocabulary`, `label_map`, `worker` and `log`). The callback validates a change against the parameters as
accepted so far and applies it whole: at once when it needs nothing slow, else on the settings
thread (live_settings.ChangeBuilder), which prepares it and swaps it in off the executor; a change
that fails there puts its parameters back. `_swap_in` is the one place a prepared change is put in
use (live_settings.py says why in two steps).
"""
from __future__ import annotations

from rclpy.parameter import Parameter
from rcl_interfaces.msg import SetParametersResult

from ..core.errors import NovicError
from ..core.pacing import paced
from ..params import BY_NAME
from . import vision_info
from .live_settings import SYNC_WAIT_S, Change, LiveSettings, PreparedChange, needs_building, prepare_change


class ParameterChanges:
    """NovicNode's parameter callback, the settings thread's build step and the swap (a mixin)."""

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Validate a change like a start would, against the parameters as accepted so far (quick: no
        file is read), then apply it whole: at once when it needs nothing slow, else on the settings
        thread (ChangeBuilder), which prepares it and swaps it in off the executor; this callback
        waits SYNC_WAIT_S for that and answers with the outcome when it came, else "accepted" (the
        change is then pending, /diagnostics says since when, and one that fails puts the parameters
        back and says why). Parameters that need a restart are declared read-only, and rclpy refuses
        them before this. Unconfigured, a change is only validated and stored."""
        updates = {p.name: p.value for p in changes}
        if self._reverting:         # _revert_failed_changes puts back values that are in force
            return SetParametersResult(successful=True)
        try:
            target = self._target.updated(**updates)
            pending, classifier = self.changes.pending(), self.classifier
            if classifier is None:
                slow = False
            elif pending:       # after them, in order, unless it is independent of them (rate_hz)
                slow = not _node_only(updates) or bool({n for c in pending for n in c.updates} & updates.keys())
            else:
                slow = needs_building(target, updates, len(classifier.prompt_labels))
            if slow:
                change = self.changes.submit(updates)
                if change.claim(SYNC_WAIT_S) and change.error is not None:
                    return self._refused(changes, change.error)
            else:
                with self._live_lock:
                    self._swap_in(self._prepare(self.live, updates))
        except (ValueError, NovicError) as e:
            return self._refused(changes, str(e))
        except Exception as e:  # noqa: BLE001 -- a bug refuses the change; it must not stop the executor
            self.log.unexpected('parameter change failed', e)
            return SetParametersResult(successful=False, reason=f"internal error: {type(e).__name__}: {e}")
        self._target = target
        return SetParametersResult(successful=True)

    @staticmethod
    def _refused(changes: list[Parameter], reason: str) -> SetParametersResult:
        if len(changes) == 1 and not reason.startswith(f"parameter '{changes[0].name}'"):
            # A check between parameters: SetParameters applies its list one at a time, each against
            # the values before it ([mode=prompted, labels=[...]] fails on mode).
            reason += ("; SetParameters applies parameters one at a time, each checked against the others' "
                       "current values: set related ones together with set_parameters_atomically")
        return SetParametersResult(successful=False, reason=reason)

    def _prepare(self, base: LiveSettings, updates: dict) -> PreparedChange:
        pubs = self.outputs
        return prepare_change(base, pubs.label_outputs if pubs is not None else None, updates,
                              pubs.objects if pubs is not None else None)

    def _build_change(self, change: Change) -> None:
        """On the settings thread: prepare `change` over the settings in force and swap it in. When
        something else swapped settings in meanwhile (a quick change, a transition), prepare again over
        those (the label embeddings are in the text cache by then)."""
        with paced(self._give_way):
            self._build_and_swap(change)

    def _give_way(self, step_s: float) -> None:
        """Between two steps of embedding a label list on the settings thread: wait while the worker
        computes a batch, at most as long as the step took. A batch then overlaps one step at most (a
        few ms), and a worker that never rests still leaves the list half of the time."""
        self.worker.wait_idle(step_s)

    def _build_and_swap(self, change: Change) -> None:
        for attempt in range(4):
            base, pubs = self.live, self.outputs
            prepared = self._prepare(base, change.updates)
            with self._live_lock:
                if self.live is base and self.outputs is pubs:
                    self._swap_in(prepared)
                    return
        with self._live_lock:      # it keeps changing: prepare under the lock (cached, rare)
            self._swap_in(self._prepare(self.live, change.updates))

    def _revert_failed_changes(self) -> None:
        """On the executor: a change that was answered "accepted" failed while being built. Its
        parameters go back to the values in force (except those a later pending change sets), so
        `ros2 param get` tells what the node uses; the reason is in the log and /diagnostics."""
        for change in self.changes.take_failed():
            self.get_logger().error(f"parameter change {', '.join(change.updates)} failed while being built, the "
                                    f"settings before it stay in force: {change.error}")
            later = self.changes.touched_after(change)
            flat = self.live.params.flat()
            back = [_ros_parameter(n, flat[n]) for n in change.updates if n not in later and n in flat]
            self._reverting = True
            try:
                self.set_parameters(back)
            finally:
                self._reverting = False
        target = self.live.params
        for change in self.changes.pending():
            try:
                target = target.updated(**change.updates)
            except (ValueError, NovicError):
                pass
        self._target = target

    def _swap_in(self, change: PreparedChange) -> None:
        """Put a prepared change in use: one assignment for what the worker reads, then the label outputs'
        settings, then the vocabulary version and VisionInfo. With _live_lock held, on the executor or
        the settings thread."""
        self.live = change.settings
        if change.apply_outputs is not None:
            change.apply_outputs()
        if change.apply_objects is not None:
            change.apply_objects()
        classifier = change.settings.classifier
        if classifier is not None and self.vocabulary.update(classifier.options):
            self.label_map.reset(classifier.options)
            self.get_logger().info(
                f"vocabulary {self.vocabulary.version}: "
                f"{vision_info.database_location(classifier.options, self.get_fully_qualified_name())}"
            )
            self._publish_vision_info()


def _node_only(updates: dict) -> bool:
    """Only parameters the classifier does not read and no check relates to others (rate_hz, the
    stable labels', the tracks'): applied at once even while a label change is being built."""
    return all(BY_NAME[n].group == 'node' for n in updates if n in BY_NAME)


_PARAMETER_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
                    str: Parameter.Type.STRING, list: Parameter.Type.STRING_ARRAY}


def _ros_parameter(name: str, value) -> Parameter:
    kind = _PARAMETER_TYPES[BY_NAME[name].type]
    return Parameter(name, kind, list(value) if kind == Parameter.Type.STRING_ARRAY else value)
