"""What every inference backend provides, so the classifier does not care which one runs.

A backend encodes preprocessed pixels to unit CLIP embeddings and supplies a decoder runner
(see novic_ros.core.generation). Tensor names of exported graphs are defined once here too.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..core.generation import DecoderRunner

# Graph input/output names shared by export, ONNX Runtime and TensorRT.
ENCODER_INPUT, ENCODER_OUTPUT = 'pixels', 'embeddings'
PREFILL_INPUT = 'embeddings'
STEP_TOKEN_INPUT = 'tokens'
LOGITS, PAST_K, PAST_V, PRESENT_K, PRESENT_V = 'logits', 'past_k', 'past_v', 'present_k', 'present_v'


class InferenceBackend(Protocol):
    name: str                  # torch | onnxruntime | tensorrt
    device: torch.device       # where preprocessed pixels should be placed
    input_dtype: torch.dtype   # dtype of preprocessed pixels
    runner: DecoderRunner

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W normalised pixels -> B x E unit-norm float32 embeddings."""
        ...

    def describe(self) -> str: ...
