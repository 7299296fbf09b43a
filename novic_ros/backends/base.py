"""What every inference backend provides, so the classifier does not care which one runs.

A backend encodes preprocessed pixels to unit CLIP embeddings, supplies a decoder runner (see
novic_ros.core.generation) and, where it has one, CLIP's text encoder; arrays cross this
interface as numpy. Tensor names of exported graphs are defined once here too.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..core.generation import DecoderRunner
from ..core.text_cache import TextEncoder

# Graph input/output names shared by export, ONNX Runtime and TensorRT.
ENCODER_INPUT, ENCODER_OUTPUT = 'pixels', 'embeddings'
PREFILL_INPUT = 'embeddings'
STEP_TOKEN_INPUT = 'tokens'
LOGITS, PAST_K, PAST_V, PRESENT_K, PRESENT_V = 'logits', 'past_k', 'past_v', 'present_k', 'present_v'
TEXT_INPUT, TEXT_OUTPUT = 'tokens', 'embeddings'


class InferenceBackend(Protocol):
    name: str                          # torch | onnxruntime | tensorrt
    device: str                        # cpu, cuda or cuda:N
    runner: DecoderRunner | None       # None when loaded without a decoder (prompted mode)
    text_encoder: TextEncoder | None   # None when the model has no usable text encoder

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """B x 3 x H x W float32 normalised pixels -> B x E unit-norm float32 embeddings."""
        ...

    def describe(self) -> str: ...
