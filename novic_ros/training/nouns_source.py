"""The nouns a decoder is trained to output: the toy world's, or the WordNet object dictionary."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..lexicon.nouns import build_dictionary, load_dictionary, lookup_entry
from ..lexicon.wordnet import WordNet
from . import toy_world
from .prompts import default_plural

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NounSet:
    labels: list[str]
    hypernyms: list[list[str]]
    plural: Callable[[str], str] = default_plural
    source: str = ''
    synonyms: list[list[str]] = field(default_factory=list)

    def subset(self, keep: list[int]) -> 'NounSet':
        return NounSet([self.labels[i] for i in keep], [self.hypernyms[i] for i in keep], self.plural, self.source,
                       [self.synonyms[i] for i in keep] if self.synonyms else [])


def _wordnet():
    """Debian's WordNet, or None (with a warning) when wordnet-base is not installed."""
    try:
        return WordNet.load()
    except FileNotFoundError as e:
        log.warning("%s; prompts will have no hypernyms and regular plurals only", e)
        return None


def toy_nouns() -> NounSet:
    wn = _wordnet()
    entries = [lookup_entry(wn, n) if wn else None for n in toy_world.NOUNS]
    return NounSet(list(toy_world.NOUNS), [list(e.hypernyms) if e else [] for e in entries],
                   wn.plural if wn else default_plural, 'toy', [list(e.synonyms) if e else [] for e in entries])


def dictionary_nouns(path: str | None, max_nouns: int = 0) -> NounSet:
    wn = _wordnet()
    if path:
        entries = load_dictionary(path)
        source = str(path)
    else:
        if wn is None:
            raise FileNotFoundError(
                "the WordNet noun dictionary needs Debian's wordnet-base (apt-get install wordnet-base)"
            )
        entries = build_dictionary(wn)
        source = 'wordnet'
    if max_nouns and len(entries) > max_nouns:
        entries = sorted(entries, key=lambda e: -e.freq)[:max_nouns]
    return NounSet([e.label for e in entries], [list(e.hypernyms) for e in entries],
                   wn.plural if wn else default_plural, source, [list(e.synonyms) for e in entries])


def load_nouns(spec: str, max_nouns: int = 0) -> NounSet:
    """'toy', 'wordnet', or the path of a dictionary written by `novic-nouns build`."""
    if spec == 'toy':
        nouns = toy_nouns()
        return nouns.subset(list(range(min(len(nouns.labels), max_nouns)))) if max_nouns else nouns
    if spec == 'wordnet':
        return dictionary_nouns(None, max_nouns)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"noun source {spec!r} is neither 'toy', 'wordnet' nor an existing dictionary file "
                                "(make one with: novic-nouns build --out nouns.jsonl)")
    return dictionary_nouns(spec, max_nouns)
