"""Fault injection for the fleet tests, loaded as `sitecustomize` by every Python process started with
this folder first on PYTHONPATH (the fleet's worker processes, Ray's workers). A process that opens a
file whose path holds NOVIC_TEST_KILL_BAG kills itself with SIGKILL at its second decoded frame: the
model loaded, the bag half read, nothing written: a worker really killed mid-bag, as the OOM killer
or a crash in a native decoder would. Without that variable it does nothing."""
import os
import signal
import sys

MARK = os.environ.get('NOVIC_TEST_KILL_BAG')


def _arm(event: str, args: tuple) -> None:
    if event != 'open' or not args or MARK not in str(args[0]):
        return
    bagio = sys.modules.get('novic_ros.eval.bagio')     # opening a bag: bagio is loaded (no import from a hook)
    if bagio is None or getattr(bagio.FrameDecoder, 'kill_armed', False):
        return
    decode, decoded = bagio.FrameDecoder.__call__, []

    def call(self, frame):
        decoded.append(frame)
        if len(decoded) >= 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return decode(self, frame)
    bagio.FrameDecoder.__call__, bagio.FrameDecoder.kill_armed = call, True


if MARK:
    sys.addaudithook(_arm)
