"""The inference worker's watch (a mixin of InferenceWorker, worker.py), called by the node's 1 Hz
diagnostics timer: a thread that died (an exception outside the per-batch try) or that is stuck in
one batch while frames wait (STALL_MIN_S, or STALL_FACTOR times the slowest batch so far) is reported
(health(): ERROR with the cause, held HEALTH_HOLD_S after it is fixed) and replaced by a new thread,
at once the first time, then after a backoff doubling up to RESTART_BACKOFF_MAX_S while it keeps
failing. A stuck thread cannot be killed in Python: it is abandoned (it publishes nothing more if it
returns), and no new one replaces a replacement that is stuck too while the abandoned one still runs.

NOVIC_FAULT (read once at node start, from the process environment: no peer can set it) makes the
worker fail on purpose for tests: `worker_dies_after=N` (the thread dies after N batches) or
`worker_hangs_after=N` (it hangs in batch N+1).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

STALL_MIN_S = 5.0           # one batch taking longer than this (and STALL_FACTOR x the slowest) is stuck
STALL_FACTOR = 10.0
FIRST_BATCH_STALL_S = 60.0  # before any batch finished: no slowest batch to compare with
HEALTH_HOLD_S = 10.0        # ERROR stays this long after a failure, so a 1 Hz monitor sees it
RESTART_BACKOFF_MAX_S = 30.0


class InjectedFault(BaseException):
    """NOVIC_FAULT's failure (BaseException: it escapes the per-batch `except Exception`, as a bug
    outside that try would)."""


def parse_fault(text: str | None) -> tuple[str, int] | None:
    """NOVIC_FAULT='worker_dies_after=N' or 'worker_hangs_after=N' -> (kind, N); None when unset.
    ValueError for anything else (the node refuses to start rather than ignore a typo)."""
    if not text:
        return None
    kind, _, n = text.partition('=')
    if kind not in ('worker_dies_after', 'worker_hangs_after') or not n.isdigit():
        raise ValueError(f"NOVIC_FAULT={text!r}: expected worker_dies_after=N or worker_hangs_after=N (tests only)")
    return kind, int(n)


@dataclass(frozen=True)
class WorkerHealth:
    error: bool                 # ERROR on /diagnostics
    state: str                  # running, sleeping (rate_hz), in a batch for N s, restarting, stopped
    message: str                # the cause while error, else ''
    restarts: int
    last_failure: str           # '' until the first failure


class WorkerWatch:
    """watch(), health() and the injected faults of InferenceWorker (self: the worker, whose state
    and lock these read and write)."""

    def _inject(self, generation: int) -> None:
        if self._fault is None or self._batches < self._fault[1]:
            return
        kind, self._fault = self._fault[0], None        # once: the restarted worker runs normally
        if kind == 'worker_dies_after':
            raise InjectedFault(f"NOVIC_FAULT: the inference thread dies after {self._batches} batches")
        while generation == self._generation and not self._stop.is_set():
            time.sleep(0.05)                            # hangs until replaced (or the node stops)

    def watch(self, now: float | None = None) -> None:
        """Report a dead or stuck worker and replace it (see the module docstring)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self._running:
                return
            thread = self._thread
            if self._restart_at is not None:
                if now >= self._restart_at:
                    self._restart_at = None
                    self.restarts += 1
                    self._spawn()
                    self._log.warn_every('worker restart', f"inference worker restarted ({self.restarts} restarts)", 0)
                return
            if thread is not None and not thread.is_alive():
                error = self._died
                cause = (f"{type(error).__name__}: {error}" if error is not None else 'exited')
                self._failed(now, f"inference worker died ({cause})")
                if error is not None:
                    trace = ''.join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
                    self._log.warn_every(f"worker died {type(error).__name__}",
                                         f"inference worker died: {cause}\n{trace}")
                return
            started = self._batch_started
            if started is None or self._frames.received <= self._received_at_batch:
                if (
                    started is None
                    and thread is not None
                    and thread.is_alive()
                    and now - self._failed_at > HEALTH_HOLD_S
                ):
                    self._failures_in_a_row = 0
                return
            busy = now - started
            limit = max(STALL_MIN_S, STALL_FACTOR * self._slowest_s) if self._batches else FIRST_BATCH_STALL_S
            if busy <= limit:
                return
            if self._abandoned is not None and self._abandoned.is_alive():
                self._cause = (f"inference worker stuck in one batch for {busy:.0f} s while frames arrive "
                               "(an earlier stuck thread still runs: not replaced again)")
                self._failed_at = now
                return
            self._abandoned = thread
            self._failed(now, f"inference worker stuck in one batch for {busy:.0f} s while frames arrive")
            self._log.warn_every('worker stuck', self._cause + '; replacing it')

    def _failed(self, now: float, cause: str) -> None:
        """Under the lock: record the failure and schedule the replacement (backoff while it keeps failing)."""
        self._cause, self._failed_at = cause, now
        self._generation += 1                   # the old thread, if it ever returns, publishes nothing
        self._thread = None
        self._restart_at = now + (min(RESTART_BACKOFF_MAX_S, 2.0 ** (self._failures_in_a_row - 1))
                                  if self._failures_in_a_row else 0.0)
        self._failures_in_a_row += 1
        if self._restart_at <= now:
            self._restart_at = None
            self.restarts += 1
            self._spawn()

    def health(self, now: float | None = None) -> WorkerHealth:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = now - self._failed_at <= HEALTH_HOLD_S
            if not self._running:
                state = 'stopped'
            elif self._restart_at is not None:
                state = f"restarting in {max(0.0, self._restart_at - now):.0f} s"
            elif self._batch_started is not None:
                state = f"in a batch for {now - self._batch_started:.1f} s"
            elif self._sleeping:
                state = 'sleeping (rate_hz)'
            else:
                state = 'running'
            error = self._running and (recent or self._restart_at is not None)
            message = (f"{self._cause}; restarted ({self.restarts} restarts)" if self._restart_at is None
                       else f"{self._cause}; {state}") if error else ''
            return WorkerHealth(error, state, message, self.restarts, self._cause)
