"""The novic_node process: rclpy started without its signal handlers (exit_signals.py owns SIGINT and
SIGTERM), novic_ros's Python logging sent to the node's ROS log, the node (ros/node.py) configured and
activated when `autostart` says so, a single-threaded executor spinning on a thread of its own while
the main thread waits for a signal, and the shutdown in the order that keeps the context valid while
anything still publishes. exit_signals.run_node (the console script, `python -m novic_ros.ros.node`)
calls main() after installing the handlers.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

import rclpy
from rclpy._rclpy_pybind11 import RCLError      # what rcl raises when it cannot init or create the node
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import LoggingSeverity
from rclpy.signals import SignalHandlerOptions

from ..core.errors import NovicError
from ..params import NODE_NAME
from . import exit_signals
from .node import SUCCESS, NovicNode
from .ros_log import RosLogHandler
from .node_help import usage, wants_help

EXIT_STEP_S = 0.35     # each shutdown step's wait (executor, worker): the whole exit stays under 2 s


def main(args=None) -> int:
    """Run novic_node until SIGINT or SIGTERM (exit 0, see exit_signals.py); 1 when it cannot start.
    --help (before --ros-args) prints the parameters and exits 0."""
    if wants_help(sys.argv[1:] if args is None else list(args)):
        print(usage())
        return 0
    signals = exit_signals.install()
    node = executor = spinner = None
    code = 0
    try:
        # rclpy's signal handlers would shut the context down before we stop (exit_signals.py).
        try:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except RCLError as e:       # e.g. SROS2 on with no enclave for this node in the keystore
            print(f"novic_node: cannot start: {_first_line(e)}{_security_hint()}", file=sys.stderr)
            code = 1
            return code
        handler = RosLogHandler(rclpy.logging.get_logger(NODE_NAME))     # the node's own logger once it exists
        py_log = logging.getLogger('novic_ros')
        py_log.addHandler(handler)
        # DEBUG records reach the ROS logger, which drops them unless --log-level debug asks for them.
        py_log.setLevel(logging.DEBUG if handler.ros_logger.get_effective_level() <= LoggingSeverity.DEBUG
                        else logging.INFO)
        py_log.propagate = False        # open_clip's root-logger calls install a stderr handler there
        try:
            node = NovicNode()
        except (NovicError, ValueError, FileNotFoundError) as e:
            handler.ros_logger.fatal(f"cannot start: {e}")
            code = 1
            return code
        except RCLError as e:       # the middleware refused the node (SROS2 on a Fast DDS without security)
            handler.ros_logger.fatal(f"cannot start: the middleware refused to create the node: {_first_line(e)}"
                                     f"{_security_hint()}")
            code = 1
            return code
        logger = node.get_logger()
        # Single-threaded: rclpy's MultiThreadedExecutor kept its main thread at 100% CPU in its wait
        # loop while frames flowed (top -H), holding the GIL against the inference thread: some frames
        # waited 0.3-6 s. Inference runs in the node's own worker thread, so one executor thread loses
        # nothing; the callback groups stay for a multi-threaded container.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.params.autostart:
            # As `ros2 run` users expect: labelling from the start. A model that cannot be loaded is
            # one clear error (logged by configure) and a non-zero exit, not a node left unconfigured.
            if node.trigger_configure() != SUCCESS or node.trigger_activate() != SUCCESS:
                logger.fatal("cannot start: see the error above (autostart:=false leaves the node unconfigured "
                             "for a lifecycle manager instead)")
                code = 1
                return code
        else:
            logger.info("unconfigured, waiting for a lifecycle manager (autostart is false)")
        spinner = threading.Thread(target=_spin, args=(executor, logger), name='novic-executor', daemon=True)
        signals.spinning()
        spinner.start()
        # The main thread only waits: a signal handler runs here at once, whatever the executor does.
        while not signals.requested.wait(0.5):
            if not spinner.is_alive():
                logger.fatal("the executor stopped (see the error above); exiting")
                code = 1
                break
    except exit_signals.Stop:
        pass
    finally:
        _shut_down(signals, node, executor)
    return code


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _security_hint() -> str:
    """What to check when SROS2 is switched on (README "Security")."""
    if os.environ.get('ROS_SECURITY_ENABLE', '').lower() != 'true':
        return ''
    return ("; ROS_SECURITY_ENABLE is true: SROS2 needs ROS_SECURITY_KEYSTORE with an enclave for this node "
            "(ros2 security create_enclave KEYSTORE /novic/novic_node, then --ros-args --enclave /novic/novic_node) "
            "and a Fast DDS built with security, which ROS 2 from apt has and the PyPI wheels do not")


def _spin(executor, logger) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception as e:  # noqa: BLE001 -- main() sees the thread end and exits 1
        logger.fatal(f"executor failed: {type(e).__name__}: {e}")


def _shut_down(signals, node, executor) -> None:
    """Stop in the order that keeps the context valid while anything still publishes (the executor,
    then the worker and the bond, then rclpy); each step on its own, so one that fails (one line, no
    traceback) does not keep the others from running."""
    steps = [
        ('stopping the executor', lambda: executor.shutdown(timeout_sec=EXIT_STEP_S)) if executor is not None else None,
        ('stopping the worker', lambda: node.stop_now(EXIT_STEP_S)) if node is not None else None,
        ('destroying the node', node.destroy_node) if node is not None else None,
        ('shutting rclpy down', rclpy.try_shutdown),
    ]
    for doing, step in filter(None, steps):
        signals.stopping(doing)
        try:
            step()
        except exit_signals.Stop:
            pass
        except Exception as e:  # noqa: BLE001 -- exiting anyway
            print(f"novic_node: while {doing}: {type(e).__name__}: {e}", file=sys.stderr)

