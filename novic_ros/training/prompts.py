"""Training prompts about nouns: many phrasings per noun, so that the decoder learns to name
the object and not the template.

Kinds of prompt (each carries one designated target noun, the one the decoder must output):
- single: "a photo of a {}." and ~70 other templates (photo styles, contexts, views);
- plural: "a photo of three {}." -> target is the singular noun;
- multi:  "a {} next to a {}." -> the first noun is the target, the second a distractor;
- hypernym: "a {}, a kind of {}." using the noun's WordNet hypernym when it has one.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Callable, Sequence

SINGLE = (
    '{}', 'a {}.', 'the {}.', 'a photo of a {}.', 'a photo of the {}.', 'a picture of a {}.', 'an image of a {}.',
    'a close-up photo of a {}.', 'a close-up of the {}.', 'a blurry photo of a {}.', 'a sharp photo of a {}.',
    'a bright photo of a {}.', 'a dark photo of the {}.', 'a cropped photo of a {}.', 'a low resolution photo of a {}.',
    'a jpeg photo of a {}.', 'a pixelated photo of the {}.', 'a good photo of a {}.', 'a bad photo of the {}.',
    'itap of a {}.', 'a photo of my {}.', 'a photo of one {}.', 'a small {}.', 'a big {}.', 'a large {}.',
    'a tiny {}.', 'a drawing of a {}.', 'a sketch of a {}.', 'a painting of a {}.', 'a cartoon {}.',
    'a cartoon of a {}.', 'an illustration of a {}.', 'a rendering of a {}.', 'a 3d rendering of a {}.',
    'an icon of a {}.', 'an emoji of a {}.', 'a sticker of a {}.', 'a clipart {}.', 'art of the {}.',
    'a colourful {}.', 'a colorful picture of a {}.', 'a {} on a plain background.', 'a {} on a colourful background.',
    'a {} on a striped background.', 'a {} in the middle of the picture.', 'a {} in the corner of the picture.',
    'a rotated {}.', 'a tilted photo of a {}.', 'a {} seen from the side.', 'a {} seen from the front.',
    'there is a {} in the picture.', 'there is a {} here.', 'this is a {}.', 'that is a {}.', 'look, a {}!',
    'a photo showing a {}.', 'a snapshot of a {}.', 'a camera frame with a {}.', 'a robot sees a {}.',
    'the robot is looking at a {}.', 'a {} in front of the camera.', 'an object: {}.', 'object: {}',
    'a {} on the table.', 'a {} on the floor.', 'a {} outdoors.', 'a {} indoors.', 'a {} in the room.',
    'a {} on the street.', 'a {} in the wild.', 'a single {}.', 'one {}.', 'a nice {}.', 'a {} for sale.',
)
PLURAL = (
    '{}', 'a photo of {}.', 'a photo of two {}.', 'a photo of three {}.', 'several {}.', 'a group of {}.',
    'many {}.', 'a pile of {}.', 'a drawing of some {}.', 'two {} side by side.', 'a row of {}.',
)
MULTI = (
    'a {} next to a {}.', 'a {} beside a {}.', 'a {} in front of a {}.', 'a photo of a {} and a {}.',
    'a {} with a {} behind it.', 'a {} near a {}.', 'a big {} and a small {}.', 'a {} on top of a {}.',
)
HYPERNYM = (
    'a {}, a kind of {}.', 'a photo of a {}, a type of {}.', 'a {}, which is a {}.', 'a {} ({}).',
)


# Bump when the way prompts are drawn changes. Templates, weights, nouns and plurals are hashed
# directly (PromptGenerator.fingerprint), and cached text embeddings are keyed by that hash.
DRAW_VERSION = 2


@dataclass(frozen=True)
class Prompt:
    text: str
    target: int          # index of the target noun


def _article(phrase: str) -> str:
    """Fix the article the templates write as 'a' before a vowel sound (a rough, cheap rule)."""
    out, words = [], phrase.split(' ')
    for i, w in enumerate(words):
        if w in ('a', 'A') and i + 1 < len(words) and words[i + 1][:1].lower() in 'aeiou':
            w = w + 'n'
        out.append(w)
    return ' '.join(out)


def default_plural(noun: str) -> str:
    head, _, last = noun.rpartition(' ')
    if last.endswith(('s', 'x', 'z', 'ch', 'sh')):
        last += 'es'
    elif last.endswith('y') and last[-2:-1] not in tuple('aeiou'):
        last = last[:-1] + 'ies'
    else:
        last += 's'
    return (head + ' ' + last).strip()


class PromptGenerator:
    """Draws prompts for noun indices. `hypernyms[i]` are hypernym labels of noun i (may be empty)."""

    def __init__(self, nouns: Sequence[str], hypernyms: Sequence[Sequence[str]] | None = None,
                 plural: Callable[[str], str] = default_plural, seed: int = 0,
                 weights: tuple[float, float, float, float] = (0.7, 0.1, 0.12, 0.08)):
        self.nouns = list(nouns)
        self.hypernyms = [list(h) for h in hypernyms] if hypernyms else [[] for _ in self.nouns]
        self.plural = plural
        self.seed = seed
        self.rng = random.Random(seed)
        self.weights = weights

    def prompt(self, i: int, rng: random.Random | None = None) -> Prompt:
        rng = rng or self.rng
        kind = rng.choices(('single', 'plural', 'multi', 'hypernym'), self.weights)[0]
        noun = self.nouns[i]
        if kind == 'plural':
            return Prompt(rng.choice(PLURAL).format(self.plural(noun)), i)
        if kind == 'multi' and len(self.nouns) > 1:
            other = rng.randrange(len(self.nouns) - 1)
            other += other >= i
            return Prompt(_article(rng.choice(MULTI).format(noun, self.nouns[other])), i)
        if kind == 'hypernym' and self.hypernyms[i]:
            return Prompt(_article(rng.choice(HYPERNYM).format(noun, rng.choice(self.hypernyms[i]))), i)
        return Prompt(_article(rng.choice(SINGLE).format(noun)), i)

    def noun_prompts(self, i: int, count: int) -> list[Prompt]:
        """`count` prompts for noun i, drawn from a generator seeded by (seed, i): the same in every
        process and whatever else was drawn before, so any part of a dataset can be rebuilt alone."""
        rng = random.Random(f"{self.seed}/{i}")
        return [self.prompt(i, rng) for _ in range(count)]

    def fingerprint(self) -> str:
        """Hash of everything that decides the prompts noun_prompts draws."""
        spec = {'version': DRAW_VERSION, 'templates': [SINGLE, PLURAL, MULTI, HYPERNYM], 'weights': self.weights,
                'seed': self.seed, 'nouns': self.nouns, 'hypernyms': self.hypernyms,
                'plurals': [self.plural(n) for n in self.nouns]}
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]

    def prompts(self, per_noun: int) -> list[Prompt]:
        """`per_noun` prompts for every noun, in a shuffled order."""
        out = [self.prompt(i) for i in range(len(self.nouns)) for _ in range(per_noun)]
        self.rng.shuffle(out)
        return out
