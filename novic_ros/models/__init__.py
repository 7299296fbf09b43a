"""The torch models: open_clip loading and text encoding, the object decoder, its key/value caches,
its numpy-boundary runners and its safetensors checkpoints (training, export, the torch backend)."""
