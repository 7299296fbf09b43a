"""The console scripts (novic-classify, novic-eval, novic-train, novic-export, novic-build-engines,
novic-bench, novic-nouns, novic-toy) and the demo: argument parsing, progress and error reporting
around the library. Model flags come from novic_ros.params (add_model_arguments), classifiers from
novic_ros.pipeline.

May import anything in novic_ros. rclpy and message packages only inside the functions that need
them (they come from a ROS install, not from our requirements).
"""
