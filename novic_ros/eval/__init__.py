"""Evaluation on recorded bags (`novic-eval`).

Reading (bag_layout: which files make up a bag; bag_parts: one file, with rosbags or mcap; bagio:
frames, per-topic counts, decode and new bags), making bags from images or video (make_bag),
classifying offline through the pipeline or live through a running novic_node (offline, live),
ground truth and scores (annotations, scoring, category_scoring, object_scoring), and what comes out
(run_results, report).

May import: core, pipeline, params, lexicon, frames (ROS-free image files and message conversion),
atomic_file and the bag libraries. rclpy and message packages only in live.py,
the one module that talks to a running node.
"""
