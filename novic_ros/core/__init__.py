"""The ROS-free inference core: frame -> preprocess -> CLIP encoder -> object decoder (greedy and
beam generation with a key/value cache) -> labels with scores.

Holds the models (clip_encoder, decoder, kv_cache, checkpoint, label_tokens, variants), the steps
(preprocess, generation), the classifier with its frozen options (classifier, options, text_cache),
what happens to labels over time (stable_labels) and the typed results and errors every layer
above uses.

May import: numpy, PIL, yaml, ftfy, regex and the leaf utilities novic_ros.paths and
novic_ros.atomic_file; torch and open_clip only in the model modules (clip_encoder, decoder,
kv_cache, torch_runners, checkpoint), which the runtime path (a bundle on onnxruntime or tensorrt)
never imports. Never rclpy, novic_ros.params, novic_ros.pipeline, backends, ros, eval,
training or cli: everything above builds on the core, not the other way round.
"""
