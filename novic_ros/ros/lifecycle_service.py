"""The lifecycle node's ~/change_state service answers a transition that does not exist from the
current state (activate while unconfigured, an unknown id) with success=False, on every distribution.

Kilted's rclpy catches the RCLError that rcl_lifecycle raises for such a request and answers false.
Jazzy's (rclpy 7.1) and Humble's let it out of the service callback: the executor's spin ends with it,
and the node then answers nothing more (no service, no timer, no frame) while its process lives on.
One mistyped `ros2 lifecycle set` from a lifecycle manager or a user would silence the node there.
"""
from __future__ import annotations

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy


def refuse_impossible_transitions(node) -> None:
    """Wrap `node`'s change_state service callback (rclpy.lifecycle's, created in LifecycleNode's
    __init__) so that an RCLError from the state machine becomes success=False and a warning.
    Nothing is wrapped where the node has no such service (an rclpy whose lifecycle node stores it
    elsewhere); that rclpy's own behaviour then applies."""
    service = getattr(node, '_service_change_state', None)
    inner = getattr(service, 'callback', None)
    if inner is None or getattr(inner, 'novic_refuses', False):
        return

    def change_state(request, response):
        try:
            return inner(request, response)
        except _rclpy.RCLError as e:
            state = node._state_machine.current_state[1] if hasattr(node, '_state_machine') else '?'
            t = request.transition
            node.get_logger().warning(f"lifecycle transition {t.label or t.id} refused: it does not exist from "
                                      f"state {state} ({str(e).strip()})")
            response.success = False
            return response

    change_state.novic_refuses = True
    service.callback = change_state
