"""The bond heartbeat nav2_lifecycle_manager keeps with the nodes it manages, without bondpy.

nav2's manager (bond_timeout > 0, 4 s by default) forms a bond with each node right after
activating it and fails the bringup when none forms within bond_timeout / 2; once formed, a node
whose heartbeats stop for bond_timeout is taken as crashed and the whole stack is reset. nav2's own
nodes create the bond in on_activate and destroy it in on_deactivate; so does novic_node.

The protocol is bondcpp's (bond_core, ros2 branch): both sides publish bond/msg/Status on the
relative topic `bond` (so the manager and the node share a namespace, as nav2 nodes do), with the
bond id (the managed node's name), a random instance id and `active`. A side is formed when it hears
`active` from another instance of the same id; `active: false` announces a clean end, answered
once. A side that hears nothing for heartbeat_timeout (or is not joined within connect_timeout) is
dead and stops publishing.
"""
from __future__ import annotations

import threading
import time
import uuid

from bond.msg import Constants, Status
from rclpy.duration import Duration
from rclpy._rclpy_pybind11 import RCLError      # what publishing on a dead context raises
from rclpy.qos import QoSProfile, ReliabilityPolicy

WAITING, ALIVE, DEAD = 'waiting for the manager', 'alive', 'dead'


class Bond:
    def __init__(self, node, bond_id: str, heartbeat_period: float, *, topic: str = 'bond',
                 heartbeat_timeout: float = Constants.DEFAULT_HEARTBEAT_TIMEOUT,
                 connect_timeout: float = Constants.DEFAULT_CONNECT_TIMEOUT, callback_group=None):
        self.node, self.id, self.period = node, bond_id, heartbeat_period
        self.heartbeat_timeout, self.connect_timeout = heartbeat_timeout, connect_timeout
        self.instance_id = str(uuid.uuid4())
        self.state = WAITING
        self._lock = threading.Lock()
        self._started = self._heard = time.monotonic()
        # bondcpp's QoS: KeepLast(5) for the publisher, depth 100 for the subscription, reliable, volatile.
        self._pub = node.create_publisher(Status, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self._sub = node.create_subscription(Status, topic, self._on_status,
                                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
                                             callback_group=callback_group)
        self._timer = node.create_timer(heartbeat_period, self._beat, callback_group=callback_group)
        self._publish(True)

    def _publish(self, active: bool) -> None:
        msg = Status(id=self.id, instance_id=self.instance_id, active=active,
                     heartbeat_timeout=float(self.heartbeat_timeout), heartbeat_period=float(self.period))
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._pub.publish(msg)

    def _beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self.state == WAITING and now - self._started > self.connect_timeout:
                self.state = DEAD       # no manager keeps a bond with us (its bond_timeout may be 0): stay quiet
            elif self.state == ALIVE and now - self._heard > self.heartbeat_timeout:
                self.state = DEAD
                self.node.get_logger().warning(
                    f"bond {self.id}: no heartbeat from the lifecycle manager for {self.heartbeat_timeout:.1f} s")
            alive = self.state != DEAD
        if alive:
            self._publish(True)

    def _on_status(self, msg: Status) -> None:
        if msg.id != self.id or msg.instance_id == self.instance_id:
            return                          # another bond, or our own heartbeat
        with self._lock:
            if self.state == DEAD:
                return
            if msg.active:
                if self.state == WAITING:
                    self.node.get_logger().info(f"bond {self.id} formed with the lifecycle manager")
                self.state, self._heard = ALIVE, time.monotonic()
                return
            self.state = DEAD
        self._publish(False)                # acknowledge the manager's end of the bond

    def close(self, ack_timeout: float = 0.5) -> None:
        """End the bond cleanly (deactivate, process exit): the manager sees `active: false`, not a
        crash. With the ROS context already shut down nothing can be sent: the bond just goes."""
        with self._lock:
            was = self.state
            self.state = DEAD
        if was != DEAD and self.node.context.ok():
            try:
                self._publish(False)
                self._pub.wait_for_all_acked(Duration(seconds=ack_timeout))    # delivered before the writer goes
            except RCLError as e:       # the context went away meanwhile
                self.node.get_logger().info(f"bond {self.id}: could not announce its end ({e})")
        for destroy, entity in ((self.node.destroy_timer, self._timer), (self.node.destroy_subscription, self._sub),
                                (self.node.destroy_publisher, self._pub)):
            try:
                destroy(entity)
            except RCLError:
                pass
