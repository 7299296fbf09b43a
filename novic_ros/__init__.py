"""novic_ros: open-vocabulary image classification (NOVIC) for ROS 2.

The core (`novic_ros.core`) turns frames into ranked free-text labels and never imports
rclpy; `novic_ros.ros` is the thin ROS 2 layer on top of it.
"""
__version__ = '0.1.0'
