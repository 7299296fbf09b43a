"""Image files on disk -> HxWx3 uint8 RGB frames: the one reader behind novic-classify, the demo,
`novic-eval make-bag` and the modality-gap tool, so every entry point accepts the same files and
rejects a bad one the same way (a FrameError naming the file and the problem)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from ..core.errors import FrameError
from ..params import DEFAULT_MAX_PIXELS
from .conversion import ImageConversionError, pillow_to_rgb

# What Pillow decodes that users keep images in.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.ppm', '.tif', '.tiff')


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The image files of `folder`, sorted by path."""
    folder = Path(folder)
    found = folder.rglob('*') if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The file as an HxWx3 uint8 RGB array (possibly read-only), or FrameError saying why it cannot
    be one; a file whose header declares more than `max_pixels` pixels is refused before decoding,
    with the same bound and message as the node's frames (ImageConversionError, reason 'too large')."""
    try:
        return pillow_to_rgb(path, max_pixels)
    except ImageConversionError as e:
        raise ImageConversionError(f"{path}: {e}", reason=e.reason) from None
    except FileNotFoundError:
        raise FrameError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise FrameError(f"{path}: cannot read as an image ({e})") from None
