"""How novic_node ends on SIGINT (Ctrl-C, `ros2 launch` stopping it) and SIGTERM (systemd, docker
stop, launch's escalation): at any moment, exit code 0, no traceback, in under 2 s.

install() runs before the node's heavy imports. Until the node spins, a signal raises Stop in the
main thread, which interrupts whatever it does (imports, rclpy.init, loading the model in
configure); node_main.main() catches it and exits 0. Once the node spins (its executor on a thread of its own),
a signal only sets `requested`: the main thread, waiting on it, shuts the node down in order while
the ROS context is still valid (worker stopped, the bond ended with `active: false`, then
rclpy.shutdown), so nothing publishes on a dead context. rclpy's own signal handlers are not
installed (they shut the context down first, which made bond.close() raise RCLError, exit 1).

A Stop that lands where Python cannot raise it (a weakref callback such as the import system's module
locks, a __del__) is handed to sys.unraisablehook, which would print it as "Exception ignored ...
Traceback" and carry on loading; our hook exits at once instead, with the same code, silently.

The first signal also arms a deadline: if the shutdown has not finished HARD_EXIT_S later (a
transition or a batch that does not return), the process says so on stderr and exits 0 at once
(os._exit). Later signals are ignored: the shutdown is under way. A SIGINT the parent set to be
ignored (a background job in a script) stays ignored, as for any program.

Before install() Python's defaults apply: the first 0.1-0.3 s of the interpreter's own start-up (more
on a loaded machine). NodeProcess (the demo, novic-eval, the tests) starts the node with the two
signals blocked (block_in_child), so they wait for install(); `ros2 run` and `ros2 launch` do not,
so a Ctrl-C within that first instant prints Python's KeyboardInterrupt. ROS-free.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading

HARD_EXIT_S = 1.7       # the whole exit stays under 2 s
EXIT_CODE = 0           # for SIGINT and SIGTERM alike, as rclcpp nodes exit


EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def block_in_child() -> None:
    """subprocess preexec_fn for a novic_node child: SIGINT and SIGTERM stay pending (the mask is
    inherited across exec) until install() is in, instead of hitting the interpreter's own start-up
    (0.1-1 s before any of our code runs), where they would print KeyboardInterrupt or kill it. Both
    are also set back to their default action: a launcher started in the background by a shell has
    SIGINT ignored, which its child would inherit (and keep, as Python does), so stop() could not end it."""
    for sig in EXIT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, EXIT_SIGNALS)


class Stop(BaseException):
    """A signal arrived before the node was spinning (BaseException: no `except Exception` swallows it)."""


class ExitSignals:
    def __init__(self):
        self.requested = threading.Event()
        self.signal: int | None = None
        self.doing = 'starting'             # what the deadline message names
        self._interrupt = True              # raise Stop in the main thread (until spinning)
        self._installed = False
        self.exited = threading.Event()     # set by finished(): the deadline does nothing then

    def install(self) -> 'ExitSignals':
        if self._installed or threading.current_thread() is not threading.main_thread():
            return self
        for sig in EXIT_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, self._handle)
        self._installed = True
        self._unraisable_default = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        # A launcher that held the signals back while the interpreter started (block_in_child) lets them
        # through now: one that came meanwhile is handled at once (Stop).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, EXIT_SIGNALS)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            return                          # already stopping; the deadline holds
        self.signal = signum
        self.requested.set()
        threading.Thread(target=self._deadline, name='novic-exit-deadline', daemon=True).start()
        if self._interrupt:
            self._interrupt = False
            raise Stop(signal.Signals(signum).name)

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, Stop):
            self._exit_now()
        self._unraisable_default(unraisable)

    def _exit_now(self) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(EXIT_CODE)

    def spinning(self) -> None:
        """From now on a signal only sets `requested` (the main thread waits for it)."""
        self._interrupt = False
        self.doing = 'spinning'

    def stopping(self, doing: str) -> None:
        """The shutdown step under way (named if the deadline passes); no Stop is raised any more."""
        self._interrupt = False
        self.doing = doing

    def finished(self) -> None:
        self.exited.set()

    def _deadline(self) -> None:
        if self.exited.wait(HARD_EXIT_S):
            return
        try:
            sys.stderr.write(f"novic_node: shutdown not finished after {HARD_EXIT_S:.1f} s (while {self.doing}); "
                             "exiting now\n")
        finally:
            self._exit_now()


EXIT = ExitSignals()        # one per process: signal handlers are process-wide


def install() -> ExitSignals:
    return EXIT.install()


def run_node() -> int:
    """The novic_node process (console script and `python -m novic_ros.ros.node`): the handlers
    first, then the node's imports (1-2 s of rclpy, numpy, scipy), so a signal during them exits
    cleanly too; node_main.main() runs the node and shuts it down. Then the process ends at once (os._exit,
    after flushing): the interpreter's own teardown of torch and the middleware took 3 s after a
    shutdown that took 10 ms, and a thread still in a transition or a batch could hold it up."""
    code = EXIT_CODE
    try:
        install()
        from .node_help import NO_RCLPY, usage, wants_help
        if wants_help(sys.argv[1:]):            # before rclpy: a runtime install may not have ROS sourced yet
            print(usage())
            code = 0
        elif importlib.util.find_spec('rclpy') is None:
            print(NO_RCLPY, file=sys.stderr)
            code = 1
        else:
            from .node_main import main
            code = main()
    except Stop:
        pass
    EXIT.finished()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
