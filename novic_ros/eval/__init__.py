"""Evaluation on recorded bags: reading and writing bags (rosbags), offline classification through
the pipeline, live playback into a running novic_node, annotations, scoring and reports.

May import: core, pipeline, params, lexicon, image_files and ros.image_conversion (ROS-free message
conversion). rclpy only in live.py, the one module that talks to a running node.
"""
