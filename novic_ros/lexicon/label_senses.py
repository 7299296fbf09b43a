"""Which WordNet noun sense a free-text label means.

The decoder answers in free English ('golden retriever', 'red bicycle', 'mice'), and both the
category mapping and the merging of synonyms over time need one WordNet synset per label.

Lookup
    The label is normalised (case, '_' as a space, a leading article dropped) and looked up as
    a noun through morphy, so plurals find their singular ('mice' -> 'mouse', 'hot dogs' ->
    'hot dog'). A phrase WordNet does not list is shortened from the left, one word at a time,
    because English compounds are head-final: 'red bicycle' is read as 'bicycle', 'big red
    fire truck' as 'fire truck'. Such a match is marked `exact=False`.

Sense order (labels with several senses)
    The senses are ranked by the training dictionary's rule (nouns.ranked_senses, as in
    nouns.lookup_entry and `novic-nouns show LABEL`): concrete senses (things, animals, plants,
    food, people, body parts) before abstract ones, then the sense tagged most often in
    WordNet's semantic concordances, then a thing before a person, then WordNet's own sense
    order. The first is what the label means for merging synonyms ('mouse' the animal, 'car'
    the automobile). Where only WordNet's sense order separates the first senses (equally
    concrete, equally often tagged, mostly never, and each a thing or each a person: 'mug' the
    face and 'mug' the drinking vessel), they are `tied`, and the category mapping lets the
    category list choose among them.

Standard library only, like the rest of lexicon/.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .nouns import PERSON_LEXNAME, physical_object_filter, ranked_senses
from .wordnet import Synset, WordNet

ARTICLES = frozenset({'a', 'an', 'the'})
# Open vocabulary: the set of distinct labels is unbounded over a long run, the cache is not.
CACHE_SIZE = 8192


@dataclass(frozen=True)
class LabelSense:
    """The senses of a label, best first (`synset` is the first). `matched` is the part of the
    label that WordNet knows, in its base form (the label itself when `exact`, else its head:
    'bicycle' for 'red bicycles')."""
    senses: tuple[int, ...]
    matched: str
    exact: bool
    # How many of the first senses the ranking cannot tell apart but by WordNet's sense order:
    # equally concrete, equally often tagged, each a thing or each a person.
    tied: int = 1

    @property
    def synset(self) -> int:
        return self.senses[0]


def normalise_label(label: str) -> str:
    """Lower case, '_' as a space, single spaces, no leading article ('The_Golden Retriever'
    -> 'golden retriever')."""
    words = label.lower().replace('_', ' ').split()
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return ' '.join(words)


def synset_name(wn: WordNet, offset: int) -> str:
    """NLTK-style name of a synset, 'dog.n.01': its first lemma and that lemma's sense number."""
    synset = wn.synset(offset)
    lemma = synset.lemmas[0]
    return f"{lemma.replace(' ', '_')}.n.{wn.sense_number(offset, lemma):02d}"


class LabelSenses:
    """Resolves labels to synsets (module docstring), memoised per label text."""

    def __init__(self, wn: WordNet):
        self.wn = wn
        self.lookup = lru_cache(maxsize=CACHE_SIZE)(self._lookup)

    def _lookup(self, label: str) -> LabelSense | None:
        words = normalise_label(label).split()
        for start in range(len(words)):
            phrase = ' '.join(words[start:])
            # WordNet spells some compounds with a hyphen ('t-shirt'), others with a space.
            for variant in dict.fromkeys((phrase, phrase.replace('-', ' '))):
                for base in self.wn.morphy_candidates(variant):
                    senses = ranked_senses(self.wn, base)
                    if senses:
                        evidence = [self._evidence(s, base) for s in senses]
                        tied = sum(1 for e in evidence if e == evidence[0])
                        return LabelSense(tuple(s.offset for s in senses), base, start == 0, tied)
        return None

    def _evidence(self, synset: Synset, lemma: str) -> tuple[bool, int, bool]:
        """What nouns.ranked_senses ranks by before it falls back on WordNet's sense order."""
        return (physical_object_filter(self.wn, synset), self.wn.tag_count(synset.offset, lemma),
                synset.lexname == PERSON_LEXNAME)

    def merge_key(self, label: str) -> str:
        """What labels that are synonyms have in common: the synset offset ('n02958343' for
        both 'car' and 'automobiles') when the whole label is a WordNet noun; otherwise the
        normalised text, so a label is never merged with its head noun ('toy car' is not a
        car) or with another label WordNet does not know."""
        sense = self.lookup(label)
        if sense is not None and sense.exact:
            return f"n{sense.synset:08d}"
        return normalise_label(label)
