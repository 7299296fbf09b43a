"""Real photographs that ship inside installed Python packages (scikit-image, matplotlib): real
images for the demo, the tests and the evaluation examples, with nothing to download."""
from __future__ import annotations

import importlib.util
from pathlib import Path

# (package, path inside its data folder, nouns that name the main object)
SAMPLES = (
    ('skimage', 'chelsea.png', ('cat',)),
    ('skimage', 'coffee.png', ('coffee', 'cup', 'mug')),
    ('skimage', 'astronaut.png', ('astronaut', 'person')),
    ('skimage', 'rocket.jpg', ('rocket',)),
    ('skimage', 'motorcycle_left.png', ('motorcycle',)),
    ('skimage', 'camera.png', ('camera', 'man')),
    ('matplotlib', 'sample_data/grace_hopper.jpg', ('person', 'woman', 'officer')),
)


def _data_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    root = Path(spec.origin).parent
    return root / ('mpl-data' if package == 'matplotlib' else 'data')


def sample_photos() -> list[tuple[str, Path, tuple[str, ...]]]:
    """(name, path, nouns) of the sample photographs that are installed here."""
    found = []
    for package, rel, nouns in SAMPLES:
        folder = _data_dir(package)
        if folder is not None and (folder / rel).is_file():
            found.append((Path(rel).name, folder / rel, nouns))
    return found
