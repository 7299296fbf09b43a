"""The torch-free inference core: frame -> preprocess -> encoder -> object decoder (greedy and beam
generation over a backend's decoder runner) -> labels with scores.

Holds the steps (preprocess, generation, windows, proposals), the classifier and object finder with
their frozen options (classifier, object_finder, options, text_cache), what a model is made of
without torch (bundle, clip_properties, label_tokens, clip_bpe, variants, object_calibration), what
happens to labels over time (stable_labels), how work beside inference gives way to it (pacing) and
the typed results and errors every layer above uses (frame_labels, errors). The torch models live
beside it in novic_ros.models.

May import: numpy, PIL, yaml, ftfy, regex and the leaf utilities novic_ros.paths and
novic_ros.atomic_file. Never torch or open_clip, never rclpy, and nothing above it (params,
pipeline, models, backends, frames, ros, eval, training, cli): everything above builds on the core,
not the other way round.
"""
