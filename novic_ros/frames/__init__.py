"""Frames without ROS: image messages' bytes <-> HxWx3 uint8 RGB (conversion: every sensor_msgs
encoding, compressed images, the max_pixels check before decoding), image files (image_files),
the sample photographs installed with scikit-image and matplotlib (sample_images), labels
drawn onto a frame (overlay), and H.264/H.265 packet streams <-> pictures (video, keyframe-aware).

May import: numpy, PIL, PyAV (video, imported where used), core (errors) and params (the max_pixels
default, the video_decoding choices). Never rclpy or a
message package: the node, the evaluation tools, training and the tests share this code.
"""
