"""The torch models: open_clip loading and text encoding at the real token length (clip_encoder),
the object decoder (decoder), its key/value caches (kv_cache), its runners with numpy at the
boundary (torch_runners) and its safetensors checkpoints with their pairing checks (checkpoint).

Used by training, the torch backend, ONNX export and novic_ros.torch_pipeline; never by the runtime
path (a bundle on onnxruntime or tensorrt), which runs on novic_ros.core alone.

May import: torch, open_clip, safetensors, numpy, core, paths and atomic_file. Never params,
pipeline, backends, ros, eval, training or cli.
"""
