"""exit_signals without a node: a signal whose Stop lands where Python cannot raise it (a weakref
callback, as the import system's module locks use during the node's imports) still exits 0 at once
and prints no traceback (CI once saw "Exception ignored in: _get_module_lock.<locals>.cb")."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from novic_ros.ros.exit_signals import block_in_child

CHILD = textwrap.dedent("""
    import os, signal, sys, time, weakref
    from novic_ros.ros import exit_signals
    exit_signals.install()

    class Thing:
        pass

    def callback(_ref):
        os.kill(os.getpid(), signal.SIG{sig})
        for _ in range(1000):       # the handler runs between these bytecodes, inside the callback
            pass

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing                       # runs the callback: Stop cannot leave it
    print('carried on loading', flush=True)
    time.sleep(5)
    print('still here', flush=True)
""")


def run_child(sig: str, code: str = CHILD) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    # As a launcher starts the node (block_in_child): SIGINT at its default action even where this test
    # runs in a background job, whose shell has SIGINT ignored.
    done = subprocess.run([sys.executable, '-c', code.format(sig=sig)], capture_output=True, text=True, timeout=30,
                          preexec_fn=block_in_child)
    return done, time.monotonic() - start


def test_a_signal_inside_a_weakref_callback_exits_0_at_once_without_a_traceback():
    for sig in ('INT', 'TERM'):
        done, took = run_child(sig)
        assert done.returncode == 0, (sig, done.returncode, done.stderr)
        assert 'Traceback' not in done.stderr and 'Exception ignored' not in done.stderr, done.stderr
        assert 'carried on loading' not in done.stdout, done.stdout
        assert took < 4, f"SIG{sig}: exited after {took:.1f} s, not at once"


def test_other_unraisable_exceptions_are_still_reported():
    code = textwrap.dedent("""
        import weakref
        from novic_ros.ros import exit_signals
        exit_signals.install()
        class Thing:
            pass
        def callback(_ref):
            raise ValueError('a real bug in a callback')
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing
        print('went on', flush=True)
    """)
    done, _ = run_child('', code.replace('{', '{{').replace('}', '}}'))
    assert done.returncode == 0
    assert 'a real bug in a callback' in done.stderr and 'went on' in done.stdout
