"""Image files on disk -> HxWx3 uint8 RGB frames: the one reader behind novic-classify, the demo,
`novic-eval make-bag` and the modality-gap tool, so every entry point accepts the same files and
rejects a bad one the same way (a FrameError naming the file and the problem)."""
from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.errors import FrameError
from ..params import DEFAULT_MAX_PIXELS
from .conversion import ImageConversionError, pillow_to_rgb

# What Pillow decodes that users keep images in.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.ppm', '.tif', '.tiff')
GLOB_CHARS = frozenset('*?[')


@dataclass(frozen=True)
class ImageInputs:
    """What a list of command-line image arguments names, in order: (file or argument, None) for an
    image file to read, (file or argument, why) for one that cannot be read (a FrameError's text)."""
    items: tuple[tuple[str, str | None], ...]

    @property
    def files(self) -> list[str]:
        return [name for name, why in self.items if why is None]

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(name, why) for name, why in self.items if why is not None]


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The image files of `folder`, sorted by path."""
    folder = Path(folder)
    found = folder.rglob('*') if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def not_images(folder: str | os.PathLike) -> list[Path]:
    """The files of `folder` that list_images leaves out (not an image suffix), sorted by path."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)


def check_image(path: str | os.PathLike) -> None:
    """FrameError saying why `path` cannot be an image, from its directory entry and header alone
    (missing, a folder, empty, not a format Pillow identifies); decoding errors come later, from
    read_image."""
    path = Path(path)
    if not path.exists():
        raise FrameError(f"{path}: no such file")
    if not path.is_file():
        raise FrameError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise FrameError(f"{path}: empty file (0 bytes)")
    try:
        # Only the header: Pillow's size warnings and errors are read_image's to report, with max_pixels.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path):
                pass
    except Image.DecompressionBombError:
        pass
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise FrameError(f"{path}: cannot read as an image ({e})") from None


def image_inputs(arguments: list[str]) -> ImageInputs:
    """Command-line image arguments -> ImageInputs: a folder stands for its images (list_images), a
    pattern the shell did not expand (quoted `'shots/*.jpg'`) for the files it matches, anything else
    for itself; each file is checked with check_image, so a run can refuse bad input before a model loads."""
    items: list[tuple[str, str | None]] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            found = list_images(path)
            if not found:
                items.append((arg, f"{arg}: a folder with no images ({', '.join(IMAGE_SUFFIXES)})"))
        elif not path.exists() and GLOB_CHARS & set(arg):
            found = sorted(Path(p) for p in glob.glob(arg) if Path(p).is_file())
            if not found:
                items.append((arg, f"{arg}: no file matches this pattern"))
        else:
            found = [path]
        for f in found:
            try:
                check_image(f)
                items.append((str(f), None))
            except FrameError as e:
                items.append((str(f), str(e)))
    return ImageInputs(tuple(items))


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
    except IsADirectoryError:
        raise FrameError(f"{path}: a folder, not an image file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise FrameError(f"{path}: empty file (0 bytes)") from None
        raise FrameError(f"{path}: cannot read as an image ({e})") from None
