"""Evaluation on recorded bags (`novic-eval`).

Reading (bag_layout: which files make up a bag; bag_parts: one file, with rosbags or mcap; bagio:
frames, per-topic counts, decode and new bags), making bags from images or video (make_bag),
classifying offline through the pipeline or live through a running novic_node (offline, live),
ground truth and scores (annotations, scoring), and what comes out (results, report).

May import: core, pipeline, params, lexicon, image_files, atomic_file, ros.image_conversion
(ROS-free message conversion) and the bag libraries. rclpy and message packages only in live.py,
the one module that talks to a running node.
"""
