"""Exceptions of the core. Each message names the problem and, where there is one, the fix."""


class NovicError(Exception):
    """Base class of every error novic_ros raises on purpose."""


class FrameError(NovicError, ValueError):
    """A frame cannot be classified: wrong type, shape, dtype, empty or undecodable."""


class ModelLoadError(NovicError, RuntimeError):
    """A model, checkpoint or variant cannot be found or loaded."""


class CheckpointMismatchError(ModelLoadError):
    """A decoder checkpoint does not fit the CLIP encoder it is paired with."""
