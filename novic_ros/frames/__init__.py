"""Frames without ROS: decoding, converting, reading and drawing on RGB frames."""
