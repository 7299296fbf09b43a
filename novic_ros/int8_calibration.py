"""The frames the int8 quantisers calibrate on and check against (backends/ov_quantize.py takes
them from its caller: the pipeline, when a bundle lacks its OpenVINO int8 graphs, and novic-export
--precisions ov_int8): toy renders (numpy + Pillow, always here) and random crops of the real
photographs installed with scikit-image and matplotlib, when present.

A module of its own, above backends/: the images come from frames/ and training/ (the toy world),
which backends/ may not import. Imports no torch and no ROS."""
from __future__ import annotations

import numpy as np

from .frames.image_files import read_image
from .frames.sample_images import sample_photos
from .training import toy_world


def calibration_frames(n: int, seed: int) -> list[np.ndarray]:
    """n RGB frames: toy renders of varied sizes, plus the installed real photographs (random crops)."""
    rng = np.random.default_rng(seed)
    photos = [read_image(path) for _, path, _ in sample_photos()]
    frames = []
    for i in range(n):
        if photos and i % 2:
            p = photos[rng.integers(len(photos))]
            h, w = p.shape[:2]
            ch, cw = int(h * rng.uniform(0.5, 1)), int(w * rng.uniform(0.5, 1))
            y, x = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
            frames.append(np.ascontiguousarray(p[y:y + ch, x:x + cw]))
        else:
            size = (int(rng.integers(120, 480)), int(rng.integers(160, 640)))
            frames.append(toy_world.render(int(rng.integers(len(toy_world.OBJECTS))), size, rng))
    return frames
