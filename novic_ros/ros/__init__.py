"""The thin ROS 2 layer: novic_node (subscriptions, the inference worker, publishing,
diagnostics, parameters declared from the one table), image message conversion without
cv_bridge, the overlay, statistics, and the launcher that starts the node as a process.

May import: rclpy and message packages (node.py, ros_params.py only), core, pipeline and params.
image_conversion, latest_frames, node_stats, overlay and node_process import no rclpy, so
evaluation tools and tests use them without ROS.
"""
