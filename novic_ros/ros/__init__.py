"""The thin ROS 2 layer: novic_node (subscriptions, the inference worker, publishing,
diagnostics, parameters declared from the one table), statistics, and the launcher that starts
the node as a process. Frame conversion and the overlay live in novic_ros.frames.

May import: rclpy and message packages, frames, core, pipeline, params and lexicon (categories). latest_frames,
node_stats and node_process import no rclpy, so evaluation tools and tests use them without ROS.
"""
