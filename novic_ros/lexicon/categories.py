"""Coarse categories for open-vocabulary labels: each label goes to its nearest listed ancestor
in WordNet ('golden retriever' -> animal, 'tractor' -> vehicle), or to 'other'.

A robot's behaviour is written against categories ("any animal", "any vehicle"), while the
decoder answers "golden retriever". The categories are a list of WordNet nouns:

    person              the first noun sense of 'person'
    plant.n.02          the second noun sense of 'plant' (plant.n.01 is a factory)
    n00017222           the synset at offset 00017222 of data.noun (ImageNet's wnid form)
    vehicle=public_transport.n.01
                        'name=' files a synset under another name: bus and train, which WordNet
                        puts under 'public transport' rather than 'vehicle', count as vehicles

Entries that share a name form one category with several synsets (the defaults list 'food' twice:
WordNet's food.n.01, nutrient, holds dishes and drinks, and food.n.02, solid food, holds fruit,
bread and cheese, and neither is below the other). Sense numbers are WordNet 3.0's, in the
order `wn` or `novic-nouns show` lists them; an unknown noun or a sense out of range is an
error that lists the senses there are.

Mapping a label: its senses, best first (label_senses: plurals, multi-word labels, the sense
order), then the listed synset reached from the first sense in the fewest hypernym links (all
hypernym paths are searched, through instance hypernyms too: WordNet has multiple inheritance),
ties going to the category listed first. A label itself listed is its own category (distance 0).
Where only WordNet's sense order separates the first senses (`tied` in label_senses: equally
concrete, equally often tagged, mostly never), the list decides, in its order of priority: the sense under the
category listed first wins ('mug' is a container, not a face; 'turtle' an animal before a
turtleneck; 'hammer' a tool before a gun's striker, a device). WordNet's evidence is never
overruled ('glass' stays the material, tagged 22 times, against 12 for the drinking glass). A
label WordNet does not know, or whose sense has no listed ancestor, is 'other'.

Standard library only, like the rest of lexicon/.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

from .label_senses import CACHE_SIZE, LabelSenses, synset_name
from .wordnet import WordNet, index_key

OTHER = 'other'

# Short, for robots: what a robot is usually told to treat differently (people, animals,
# vehicles), to pick up (food, containers, tools, devices) or to navigate around (furniture,
# plants). Checked against the synsets meant in test/test_categories.py.
DEFAULT_CATEGORIES: tuple[str, ...] = (
    'person',                           # person.n.01: a human being
    'animal',                           # animal.n.01
    'plant.n.02',                       # flora (plant.n.01 is an industrial plant)
    'food.n.01',                        # nutrient: dishes, drinks, meat
    'food.n.02',                        # solid food: fruit, vegetables, bread, cheese
    'vehicle',                          # vehicle.n.01: cars, bicycles, boats, aircraft
    'vehicle=public_transport.n.01',    # bus, train
    'furniture',                        # furniture.n.01: chairs, tables, beds, sofas
    'clothing',                         # clothing.n.01
    'clothing=footwear.n.02',           # shoes, boots (WordNet files them apart from clothing)
    'container',                        # container.n.01: cups, bottles, boxes, bags
    'tool=implement.n.01',              # hand tools, knives, utensils, brushes, pens
    'device',                           # device.n.01: machines, instruments, computers
    'device=electronic_equipment.n.01',  # phones, televisions, radios
    'device=home_appliance.n.01',       # refrigerators, ovens, toasters
)

_WORDS = r"[A-Za-z0-9][A-Za-z0-9 _'-]*?"
SPEC_RE = re.compile(
    rf"^(?:(?P<name>{_WORDS})\s*=\s*)?(?:(?P<offset>n\d{{8}})|(?P<lemma>{_WORDS})(?:\.n\.(?P<sense>\d{{1,3}}))?)$"
)
SPEC_HELP = ("write a WordNet noun ('animal'), one of its senses as noun.n.NN ('plant.n.02'), or a synset offset "
             "as nNNNNNNNN ('n00017222'), optionally prefixed by 'name=' to file it under another name")


@dataclass(frozen=True)
class Category:
    """One category: its name and the synsets listed under it."""
    name: str
    synsets: tuple[int, ...]


@dataclass(frozen=True)
class LabelCategory:
    """A label's category and how it was reached. `sense` is the label's synset as an NLTK-style
    name ('dog.n.01', '' when WordNet does not know the label); `hypernyms` the chain of names
    above it, up to 'entity', through the category's synset when there is a category."""
    label: str
    category: str
    sense: str = ''
    matched: str = ''
    hypernyms: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {'category': self.category, 'sense': self.sense, 'hypernyms': list(self.hypernyms)}


def parse_spec(spec: str) -> tuple[str | None, str | None, int | None, int | None]:
    """(name, lemma, sense number, offset) of one category entry; ValueError naming the fix."""
    m = SPEC_RE.match(spec.strip())
    if m is None:
        raise ValueError(f"category {spec!r} is not understood: {SPEC_HELP}")
    name = m['name'].strip() if m['name'] else None
    offset = int(m['offset'][1:]) if m['offset'] else None
    sense = int(m['sense']) if m['sense'] else None
    return name, (m['lemma'].strip() if m['lemma'] else None), sense, offset


def check_specs(specs: Iterable[str]) -> None:
    """Syntax only (no WordNet needed): for validating parameters before anything loads."""
    for spec in specs:
        parse_spec(spec)


def resolve_spec(wn: WordNet, spec: str) -> tuple[str, int]:
    """(category name, synset offset) of one entry; ValueError naming the senses there are."""
    name, lemma, sense, offset = parse_spec(spec)
    if offset is not None:
        try:
            synset = wn.synset(offset)
        except KeyError:
            raise ValueError(f"category {spec!r}: WordNet 3.0 has no noun synset at offset {offset:08d}") from None
        return name or synset.name.lower(), offset
    senses = wn.synsets(lemma)
    if not senses:
        base = wn.morphy(lemma)
        hint = f" (did you mean {base!r}?)" if base and index_key(base) != index_key(lemma) else ''
        raise ValueError(f"category {spec!r}: WordNet has no noun {lemma!r}{hint}; {SPEC_HELP}")
    number = sense or 1
    if not 1 <= number <= len(senses):
        listed = '; '.join(f"{lemma}.n.{i:02d}: {s.gloss.split(';')[0]}" for i, s in enumerate(senses, 1))
        raise ValueError(f"category {spec!r}: {lemma!r} has {len(senses)} noun senses: {listed}")
    return name or ' '.join(lemma.replace('_', ' ').split()).lower(), senses[number - 1].offset


def resolve_categories(wn: WordNet, specs: Sequence[str]) -> tuple[Category, ...]:
    """Categories in list order; entries with the same name merge into one. The name 'other'
    is reserved for labels with no category."""
    by_name: dict[str, list[int]] = {}
    for spec in specs:
        name, offset = resolve_spec(wn, spec)
        if name == OTHER:
            raise ValueError(f"category {spec!r}: the name {OTHER!r} is reserved for labels under no category")
        offsets = by_name.setdefault(name, [])
        if offset not in offsets:
            offsets.append(offset)
    return tuple(Category(name, tuple(offsets)) for name, offsets in by_name.items())


class CategoryMap:
    """Labels -> categories (module docstring). Lookups are memoised per label text."""

    def __init__(self, wn: WordNet, specs: Sequence[str] = DEFAULT_CATEGORIES, senses: LabelSenses | None = None):
        self.wn = wn
        self.senses = senses or LabelSenses(wn)
        self.categories = resolve_categories(wn, specs)
        self.names: tuple[str, ...] = tuple(c.name for c in self.categories) + (OTHER,)
        # synset -> index of the first category listing it: the listed order breaks ties in distance.
        self._listed: dict[int, int] = {}
        for i, c in enumerate(self.categories):
            for o in c.synsets:
                self._listed.setdefault(o, i)
        self.categorise = lru_cache(maxsize=CACHE_SIZE)(self._categorise)

    @classmethod
    def load(cls, specs: Sequence[str] = DEFAULT_CATEGORIES, root=None) -> 'CategoryMap':
        """Load WordNet (FileNotFoundError naming the fix when it is not installed) and resolve `specs`."""
        return cls(WordNet.load(root), specs)

    def describe(self) -> str:
        """One line per category with its synsets, for logs: 'plant: plant.n.02 (a living organism ...)'."""
        return '\n'.join(
            f"{c.name}: "
            + ', '.join(f"{synset_name(self.wn, o)} ({self.wn.synset(o).gloss.split(';')[0]})" for o in c.synsets)
            for c in self.categories
        )

    def category_of(self, label: str) -> str:
        return self.categorise(label).category

    def _categorise(self, label: str) -> LabelCategory:
        sense = self.senses.lookup(label)
        if sense is None:
            return LabelCategory(label, OTHER)
        best = None     # (category index, links, sense, listed synset)
        for offset in sense.senses[:sense.tied]:
            found = self._nearest(self._ancestors(offset))
            if found is not None and (best is None or found[:2] < best[:2]):
                best = (*found[:2], offset, found[2])
        if best is None:
            offset, category = sense.synset, OTHER
            chain = self.wn.hypernym_path(offset)[1:]
        else:
            index, _, offset, _ = best
            category = self.categories[index].name
            chain = self.wn.hypernym_path(offset, through=self.categories[index].synsets)[1:]
        return LabelCategory(label, category, synset_name(self.wn, offset), sense.matched,
                             tuple(self.wn.synset(o).name for o in chain))

    def _ancestors(self, offset: int) -> dict[int, tuple[int, int | None]]:
        """{synset: (hypernym links from `offset`, the synset it was reached from)}, by BFS,
        `offset` itself included at distance 0."""
        found: dict[int, tuple[int, int | None]] = {offset: (0, None)}
        queue = deque([offset])
        while queue:
            current = queue.popleft()
            depth = found[current][0]
            for parent in self.wn.synset(current).hypernyms:
                if parent not in found:
                    found[parent] = (depth + 1, current)
                    queue.append(parent)
        return found

    def _nearest(self, ancestors: dict[int, tuple[int, int | None]]) -> tuple[int, int, int] | None:
        """(category index, links, listed synset) of the listed ancestor the fewest links up; the
        earlier category on a tie."""
        best = None
        for offset, (depth, _) in ancestors.items():
            index = self._listed.get(offset)
            if index is not None and (best is None or (depth, index) < best[:2]):
                best = (depth, index, offset)
        return None if best is None else (best[1], best[0], best[2])

    def scores(self, labels: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
        """Category scores of one frame: the sum of the probabilities of its labels under each,
        best first (ties in list order); categories no label falls under are left out."""
        totals: dict[str, float] = {}
        for text, score in labels:
            name = self.category_of(text)
            totals[name] = totals.get(name, 0.0) + float(score)
        order = {n: i for i, n in enumerate(self.names)}
        return sorted(totals.items(), key=lambda kv: (-kv[1], order[kv[0]]))

