"""SIGTERM and SIGINT as a request to stop training cleanly.

SIGTERM is what systemd, Slurm, container runtimes and torchrun (on shutdown) send; SIGINT is
Ctrl-C. Either one makes the training loop finish its step, write a checkpoint and stop. A
SIGINT its parent set to be ignored (a background job started by a script) stays ignored; a
second Ctrl-C aborts at once (the checkpoint files are written atomically, so nothing breaks).
"""
from __future__ import annotations

import signal
import threading


class StopSignals:
    HANDLED = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signum

    def __enter__(self) -> 'StopSignals':
        if threading.current_thread() is threading.main_thread():    # Python delivers signals there only
            for sig in self.HANDLED:
                previous = signal.getsignal(sig)
                if sig == signal.SIGINT and previous is signal.SIG_IGN:
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
