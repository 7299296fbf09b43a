"""The toy world: object pictograms from Debian's Noto Color Emoji font, rendered with Pillow at
random scales, rotations and positions on random backgrounds, each named by a short noun.

No pretrained CLIP can be downloaded here, and a randomly initialised CLIP has no image-text
alignment, so nothing could show that a decoder trained on text alone transfers to images.
This world is small enough to train an aligned CLIP on a CPU in minutes (see toy_clip.py),
and real enough to test that transfer honestly: the decoder never sees these pictures.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_PATH = os.environ.get('NOVIC_EMOJI_FONT', '/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf')
FONT_SIZE = 109   # the only size of Noto Color Emoji's bitmap strikes

# (code point, noun). Nouns are common English object names (all in WordNet), one per pictogram;
# pictograms that are faces, symbols or scenes are left out.
OBJECTS: tuple[tuple[int, str], ...] = (
    # animals
    (0x1F415, 'dog'), (0x1F408, 'cat'), (0x1F40E, 'horse'), (0x1F404, 'cow'), (0x1F416, 'pig'),
    (0x1F411, 'sheep'), (0x1F410, 'goat'), (0x1F407, 'rabbit'), (0x1F401, 'mouse'), (0x1F405, 'tiger'),
    (0x1F406, 'leopard'), (0x1F418, 'elephant'), (0x1F992, 'giraffe'), (0x1F993, 'zebra'), (0x1F42A, 'camel'),
    (0x1F412, 'monkey'), (0x1F98D, 'gorilla'), (0x1F43B, 'bear'), (0x1F43C, 'panda'), (0x1F428, 'koala'),
    (0x1F98A, 'fox'), (0x1F43A, 'wolf'), (0x1F981, 'lion'), (0x1F98C, 'deer'), (0x1F994, 'hedgehog'),
    (0x1F987, 'bat'), (0x1F413, 'rooster'), (0x1F427, 'penguin'), (0x1F986, 'duck'), (0x1F985, 'eagle'),
    (0x1F989, 'owl'), (0x1F99C, 'parrot'), (0x1F9A9, 'flamingo'), (0x1F422, 'turtle'), (0x1F40A, 'crocodile'),
    (0x1F40D, 'snake'), (0x1F98E, 'lizard'), (0x1F438, 'frog'), (0x1F433, 'whale'), (0x1F42C, 'dolphin'),
    (0x1F988, 'shark'), (0x1F41F, 'fish'), (0x1F419, 'octopus'), (0x1F980, 'crab'), (0x1F40C, 'snail'),
    (0x1F98B, 'butterfly'), (0x1F41C, 'ant'), (0x1F41D, 'bee'), (0x1F41E, 'ladybug'), (0x1F577, 'spider'),
    # food
    (0x1F34E, 'apple'), (0x1F350, 'pear'), (0x1F34C, 'banana'), (0x1F34D, 'pineapple'), (0x1F349, 'watermelon'),
    (0x1F347, 'grapes'), (0x1F353, 'strawberry'), (0x1F352, 'cherries'), (0x1F351, 'peach'), (0x1F34B, 'lemon'),
    (0x1F965, 'coconut'), (0x1F95D, 'kiwi'), (0x1F345, 'tomato'), (0x1F346, 'eggplant'), (0x1F955, 'carrot'),
    (0x1F33D, 'corn'), (0x1F336, 'chili'), (0x1F966, 'broccoli'), (0x1F344, 'mushroom'), (0x1F954, 'potato'),
    (0x1F951, 'avocado'), (0x1F35E, 'bread'), (0x1F950, 'croissant'), (0x1F968, 'pretzel'), (0x1F9C0, 'cheese'),
    (0x1F95A, 'egg'), (0x1F354, 'hamburger'), (0x1F355, 'pizza'), (0x1F32D, 'hotdog'), (0x1F32E, 'taco'),
    (0x1F36A, 'cookie'), (0x1F369, 'doughnut'), (0x1F370, 'cake'), (0x1F37F, 'popcorn'), (0x1F36D, 'lollipop'),
    # vehicles
    (0x1F6B2, 'bicycle'), (0x1F697, 'car'), (0x1F68C, 'bus'), (0x1F69A, 'truck'), (0x1F69C, 'tractor'),
    (0x1F691, 'ambulance'), (0x1F692, 'firetruck'), (0x1F695, 'taxi'), (0x1F682, 'locomotive'), (0x1F681, 'helicopter'),
    (0x1F680, 'rocket'), (0x1F6E9, 'airplane'), (0x1F6A2, 'ship'), (0x1F6F6, 'canoe'), (0x1F6F4, 'scooter'),
    (0x1F6F9, 'skateboard'), (0x1F3CD, 'motorcycle'),
    # things
    (0x1F3B8, 'guitar'), (0x1F3BA, 'trumpet'), (0x1F3BB, 'violin'), (0x1F3B7, 'saxophone'), (0x1F941, 'drum'),
    (0x1F3A4, 'microphone'), (0x1F3A7, 'headphones'), (0x1F4F7, 'camera'), (0x1F4FA, 'television'), (0x1F4FB, 'radio'),
    (0x1F4BB, 'laptop'), (0x1F5A8, 'printer'), (0x1F50B, 'battery'), (0x1F4A1, 'lightbulb'), (0x1F56F, 'candle'),
    (0x1F511, 'key'), (0x1F512, 'padlock'), (0x1F514, 'bell'), (0x1F528, 'hammer'), (0x1F527, 'wrench'),
    (0x1F302, 'umbrella'), (0x1F388, 'balloon'), (0x1F381, 'present'), (0x1F3C6, 'trophy'), (0x1F451, 'crown'),
    (0x1F453, 'eyeglasses'), (0x1F454, 'necktie'), (0x1F455, 'shirt'), (0x1F456, 'jeans'), (0x1F457, 'dress'),
    (0x1F45C, 'handbag'), (0x1F45F, 'sneaker'), (0x1F462, 'boot'), (0x1F3A9, 'hat'), (0x1F48D, 'ring'),
    (0x1F4D5, 'book'), (0x1F4E6, 'package'), (0x1F3C0, 'basketball'), (0x1F3C8, 'football'), (0x1F3B3, 'bowling'),
    (0x1FA91, 'chair'), (0x1F6CF, 'bed'), (0x1F6BD, 'toilet'), (0x1F6C1, 'bathtub'), (0x1F6AA, 'door'),
    (0x1F3E0, 'house'), (0x1F3F0, 'castle'), (0x1F3D5, 'tent'), (0x1F333, 'tree'), (0x1F334, 'palm'),
    (0x1F335, 'cactus'), (0x1F33B, 'sunflower'), (0x1F339, 'rose'), (0x1F337, 'tulip'), (0x1F52D, 'telescope'),
    (0x1F52C, 'microscope'), (0x1F9ED, 'compass'), (0x1F9F2, 'magnet'), (0x1F9F8, 'teddy'), (0x1FA81, 'kite'),
)

NOUNS: tuple[str, ...] = tuple(n for _, n in OBJECTS)


@lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont:
    if not os.path.isfile(FONT_PATH):
        raise FileNotFoundError(f"emoji font {FONT_PATH} not found: install Debian's fonts-noto-color-emoji "
                                "(apt-get install fonts-noto-color-emoji) or set NOVIC_EMOJI_FONT")
    return ImageFont.truetype(FONT_PATH, FONT_SIZE)


@lru_cache(maxsize=None)
def glyph(index: int) -> Image.Image:
    """The pictogram of OBJECTS[index] as a tightly cropped RGBA image (rendered once)."""
    canvas = Image.new('RGBA', (FONT_SIZE * 3 // 2, FONT_SIZE * 3 // 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((4, 4), chr(OBJECTS[index][0]), font=_font(), embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        raise RuntimeError(f"the emoji font has no glyph for U+{OBJECTS[index][0]:X} ({OBJECTS[index][1]})")
    return canvas.crop(box)


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Plain colour, gradient, noise or stripes: enough variety that the object is the constant."""
    kind = rng.integers(4)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    if kind == 0:
        arr = np.broadcast_to(c1, (h, w, 3))
    elif kind == 1:
        t = np.linspace(0, 1, w if rng.random() < 0.5 else h)
        ramp = c1[None] * (1 - t[:, None]) + c2[None] * t[:, None]
        arr = np.broadcast_to(ramp[None], (h, w, 3)) if len(t) == w else np.broadcast_to(ramp[:, None], (h, w, 3))
    elif kind == 2:
        small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
        return Image.fromarray(small).resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    else:
        period = int(rng.integers(4, 16))
        stripes = (np.arange(w + h)[None] // period % 2).astype(bool)
        ii, jj = np.mgrid[0:h, 0:w]
        mask = stripes[0][(ii + jj) % (w + h)]
        arr = np.where(mask[..., None], c1, c2)
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def render(index: int, size: tuple[int, int] = (64, 64), rng: np.random.Generator | None = None,
           scale: tuple[float, float] = (0.45, 0.95), max_rotation: float = 30.0) -> np.ndarray:
    """OBJECTS[index] on a random background: H x W x 3 uint8 RGB. `size` is (height, width)."""
    rng = rng if rng is not None else np.random.default_rng()
    h, w = size
    img = _background(rng, w, h)
    g = glyph(index)
    side = max(4, int(min(h, w) * rng.uniform(*scale)))
    g = g.resize((max(1, int(side * g.width / max(g.size))), max(1, int(side * g.height / max(g.size)))),
                 Image.LANCZOS)
    g = g.rotate(float(rng.uniform(-max_rotation, max_rotation)), resample=Image.BICUBIC, expand=True)
    if rng.random() < 0.5:
        g = g.transpose(Image.FLIP_LEFT_RIGHT)
    x = int(rng.integers(0, max(1, w - g.width + 1)))
    y = int(rng.integers(0, max(1, h - g.height + 1)))
    img.paste(g, (x, y), g)
    return np.asarray(img, dtype=np.uint8).copy()


@dataclass(frozen=True)
class ToyImage:
    image: np.ndarray          # H x W x 3 uint8
    label: str
    index: int


def render_set(per_class: int, size: tuple[int, int] = (64, 64), seed: int = 0,
               classes: list[int] | None = None) -> list[ToyImage]:
    """A reproducible labelled set: `per_class` renders of each object (all objects by default)."""
    rng = np.random.default_rng(seed)
    classes = list(range(len(OBJECTS))) if classes is None else classes
    return [ToyImage(render(c, size, rng), NOUNS[c], c) for _ in range(per_class) for c in classes]
