"""Exceptions of the core. Each message names the problem and, where there is one, the fix."""
from __future__ import annotations


class NovicError(Exception):
    """Base class of every error novic_ros raises on purpose."""


class FrameError(NovicError, ValueError):
    """A frame cannot be classified: wrong type, shape, dtype, empty or undecodable. `reason` is a short,
    stable category (the node counts rejected frames by it in diagnostics and throttles its warnings per
    reason); the message says what is wrong and the fix."""
    default_reason = 'invalid frame'

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or self.default_reason


class ModelLoadError(NovicError, RuntimeError):
    """A model, checkpoint or variant cannot be found or loaded."""


class DecoderLoadError(ModelLoadError):
    """The variant's decoder checkpoint is missing, unreadable or does not fit its CLIP model: the
    models load without it in prompted mode (pipeline.load_decoder_or_not), other modes stop."""


class CheckpointMismatchError(DecoderLoadError):
    """A decoder checkpoint does not fit the CLIP encoder it is paired with."""
