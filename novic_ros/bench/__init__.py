"""Benchmarks (novic-bench / make bench): every figure is a ratio measured side by side in one run.

May import anything in novic_ros (it measures all layers); rclpy only in the node section.
"""
