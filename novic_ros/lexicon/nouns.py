"""The noun dictionary the object decoder is trained to emit: English names of things a camera
can see, drawn from WordNet 3.0 nouns.

Which lexicographer files (OBJECT_LEXNAMES)
    noun.artifact, noun.animal, noun.plant, noun.food, noun.object, noun.person and noun.body
    name concrete, depictable things. noun.substance is kept as well, but only its tagged
    (frequency-attested) senses: a camera does see materials (water, sand, glass, granite,
    clay), yet the file is dominated by chemistry and pharmacology (benzofuran, asparagine,
    linuron) that no image shows, and the frequency signal separates the two well. From
    noun.Tops, the unique beginners, only those below 'object' or 'matter' count: that is
    where 'person', 'animal', 'food' and 'artifact' themselves live. Everything else
    (noun.act, noun.state, noun.feeling, noun.cognition, ...) is abstract.

The filter (build_dictionary)
    1. Synsets: in `lexnames`, not an instance (only '@i' hypernyms: Paris, Einstein) and not
       a group (a hyponym of 'group, grouping': taxa such as 'dicot family', fleets, sets).
       That is `physical_object_filter`.
    2. Lemmas: only letters, spaces, hyphens and apostrophes, at least two letters, at most
       `max_words` words; capitalised lemmas are proper nouns or scientific names and are
       dropped ('Canis familiaris', 'Chihuahua') unless keep_capitalised=True.
    3. Obscurity: a synset stays when its frequency signal (tag counts from cntlist.rev,
       summed over its lemmas) exceeds `min_freq`, or, with first_senses=True (the default),
       when it is the first object sense of one of its acceptable lemmas: the sense that the
       word primarily means among the synsets that passed 1 (monosemous names such as
       'golden retriever' included). Plain "first sense" would be wrong here because many
       object words list an abstract or proper sense first ('wasp' is WASP before the insect,
       'funnel' a shape before the utensil). noun.substance synsets pass only by frequency.
       Since most senses are untagged, `min_freq` mostly matters with first_senses=False.
    4. Labels: every acceptable lemma has one owner, its most frequent sense among the kept
       synsets (highest tag count of that word sense, then a thing before a person, then
       WordNet's sense order). A synset's
       label is its first lemma that it owns, so labels are unique and always name the
       preferred sense of the word ('mouse' the animal, 'computer mouse' the device). A
       synset that owns none of its lemmas is merged into the entry of the owner of its first
       lemma, whose synonyms it extends ('hot dog' the show-off joins 'hotdog' the sausage).

With the defaults this gives about 28k labels (see dictionary_summary). Tag counts are
sparse: cntlist.rev covers ~17k noun senses, and ~265 of its keys name senses that WordNet
3.0 no longer has (stale keys from older releases); those are ignored.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Collection, Iterable, Sequence

from ..atomic_file import atomic_write_text
from .wordnet import Synset, WordNet, index_key

log = logging.getLogger(__name__)

OBJECT_LEXNAMES: tuple[str, ...] = (
    'noun.artifact', 'noun.animal', 'noun.plant', 'noun.food', 'noun.object',
    'noun.person', 'noun.body', 'noun.substance', 'noun.Tops',
)
# Lexnames whose synsets stay only on frequency evidence (see the module docstring).
FREQUENCY_ONLY_LEXNAMES = frozenset({'noun.substance'})

GROUP_OFFSET = 31264  # 'group, grouping': taxa, fleets, sets; collections, not things
# noun.Tops holds the unique beginners; only those below 'object, physical object' or
# 'matter' are things (person, animal, plant, artifact, food), not 'location' or 'process'.
TOPS_LEXNAME = 'noun.Tops'
CONCRETE_TOPS_ROOTS = (2684, 20827)
LEMMA_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz -'")
PERSON_LEXNAME = 'noun.person'


@dataclass(frozen=True)
class NounEntry:
    """One label of the dictionary."""
    label: str
    synset: int
    synonyms: tuple[str, ...] = ()
    hypernyms: tuple[str, ...] = ()
    lexname: str = ''
    freq: int = 0


# -- filters ------------------------------------------------------------------------------

def physical_object_filter(wn: WordNet, synset: Synset, lexnames: Collection[str] = OBJECT_LEXNAMES) -> bool:
    """True for synsets that name a kind of concrete thing: in `lexnames`, not an instance
    (a proper noun such as a city or a person) and not a group (a taxon, a fleet); from
    noun.Tops only the concrete unique beginners."""
    if synset.lexname not in lexnames or synset.is_instance:
        return False
    if synset.lexname == TOPS_LEXNAME and not any(wn.is_a(synset.offset, r) for r in CONCRETE_TOPS_ROOTS):
        return False
    return not wn.is_a(synset.offset, GROUP_OFFSET)


def acceptable_lemma(lemma: str, max_words: int = 3, keep_capitalised: bool = False) -> bool:
    """Lemmas that can be labels: plain words (letters, spaces, hyphens, apostrophes), no
    digits or dots, starting and ending with a letter, at most `max_words` words."""
    text = lemma.lower() if keep_capitalised else lemma
    if len(text) < 2 or not set(text) <= LEMMA_CHARS:
        return False
    if not (text[0].isalpha() and text[-1].isalpha()) or '  ' in text:
        return False
    return len(text.split(' ')) <= max_words


def synonyms_of(synset: Synset, exclude: Iterable[str], max_words: int, keep_capitalised: bool) -> tuple[str, ...]:
    """The synset's acceptable lemmas other than those in `exclude` (case-insensitive)."""
    seen = {index_key(e) for e in exclude}
    out = []
    for lemma in synset.lemmas:
        key = index_key(lemma)
        if key not in seen and acceptable_lemma(lemma, max_words, keep_capitalised):
            seen.add(key)
            out.append(lemma)
    return tuple(out)


# -- building -----------------------------------------------------------------------------

@dataclass
class _Candidate:
    synset: Synset
    lemmas: list[str]  # acceptable lemmas, in synset order
    freq: int


def build_dictionary(wn: WordNet, *, min_freq: int = 0, max_words: int = 3,
                     lexnames: Sequence[str] = OBJECT_LEXNAMES, first_senses: bool = True,
                     keep_capitalised: bool = False) -> list[NounEntry]:
    """The training noun dictionary, sorted by label; the rules are in the module docstring.

    first_senses=False keeps only synsets whose frequency signal exceeds `min_freq` (a
    compact dictionary of a few thousand well-attested labels). keep_capitalised=True keeps
    names like 'German shepherd' or 'Chihuahua' as labels, in their own case.
    """
    lexnames = tuple(lexnames)
    pool = _candidates(wn, lexnames, max_words, keep_capitalised)
    firsts = _first_object_senses(wn, pool) if first_senses else set()
    kept = [c for c in pool if _common_enough(c, firsts, min_freq)]
    entries = _assign_labels(wn, kept, max_words, keep_capitalised)
    log.info("noun dictionary: %d labels from %d candidate synsets", len(entries), len(pool))
    return entries


def _candidates(wn: WordNet, lexnames: tuple[str, ...], max_words: int, keep_capitalised: bool) -> list[_Candidate]:
    """Rules 1 and 2: object synsets with at least one acceptable lemma."""
    out = []
    for synset in wn.all_synsets():
        if not physical_object_filter(wn, synset, lexnames):
            continue
        lemmas = [l for l in synset.lemmas if acceptable_lemma(l, max_words, keep_capitalised)]
        if lemmas:
            out.append(_Candidate(synset, lemmas, wn.synset_tag_count(synset.offset)))
    return out


def _first_object_senses(wn: WordNet, pool: list[_Candidate]) -> set[int]:
    """Offsets that are, for at least one of their lemmas, the lowest-numbered sense among
    the pool. Frequency-only lexnames take no part: an untagged chemical that is dropped
    anyway must not stop the object sense of the same word from counting as its first."""
    best: dict[str, tuple[int, int]] = {}
    for c in pool:
        if c.synset.lexname in FREQUENCY_ONLY_LEXNAMES:
            continue
        for lemma in c.lemmas:
            key = index_key(lemma)
            rank = (wn.sense_number(c.synset.offset, lemma), c.synset.offset)
            if key not in best or rank < best[key]:
                best[key] = rank
    return {offset for _, offset in best.values()}


def _common_enough(c: _Candidate, first_object_senses: set[int], min_freq: int) -> bool:
    """Rule 3 (obscurity)."""
    if c.freq > min_freq:
        return True
    return c.synset.offset in first_object_senses


def _assign_labels(wn: WordNet, kept: list[_Candidate], max_words: int, keep_capitalised: bool) -> list[NounEntry]:
    """Rule 4: ownership of lemmas, one label per owning synset, merges for the rest."""
    owner = _lemma_owners(wn, kept)
    labels: dict[int, str] = {}
    orphans: list[_Candidate] = []
    for c in kept:
        label = next((l for l in c.lemmas if owner[index_key(l)] == c.synset.offset), None)
        if label is None:
            orphans.append(c)
        else:
            labels[c.synset.offset] = label if keep_capitalised else label.lower()
    extra: dict[int, list[str]] = {}
    for c in orphans:
        target = owner[index_key(c.lemmas[0])]
        extra.setdefault(target, []).extend(c.lemmas)
    by_offset = {c.synset.offset: c for c in kept}
    entries = [_entry(wn, by_offset[o], label, extra.get(o, ()), max_words, keep_capitalised)
               for o, label in labels.items()]
    entries.sort(key=lambda e: (e.label.lower(), e.synset))
    return entries


def _lemma_owners(wn: WordNet, kept: list[_Candidate]) -> dict[str, int]:
    """lemma key -> offset of its preferred kept sense: most tagged, then a thing before a
    person (WordNet lists figurative person senses first: 'hotdog' the show-off before the
    sausage), then WordNet's sense order."""
    best: dict[str, tuple[int, bool, int, int]] = {}
    for c in kept:
        for lemma in c.lemmas:
            key = index_key(lemma)
            rank = (-wn.tag_count(c.synset.offset, lemma), c.synset.lexname == PERSON_LEXNAME,
                    wn.sense_number(c.synset.offset, lemma), c.synset.offset)
            if key not in best or rank < best[key]:
                best[key] = rank
    return {key: rank[-1] for key, rank in best.items()}


def _entry(wn: WordNet, c: _Candidate, label: str, merged: Iterable[str], max_words: int,
           keep_capitalised: bool) -> NounEntry:
    synonyms = list(synonyms_of(c.synset, [label], max_words, keep_capitalised))
    seen = {index_key(s) for s in synonyms} | {index_key(label)}
    for lemma in merged:
        if index_key(lemma) not in seen:
            seen.add(index_key(lemma))
            synonyms.append(lemma)
    hypernyms = tuple(wn.synset(h).name for h in c.synset.hypernyms)
    return NounEntry(label, c.synset.offset, tuple(synonyms), hypernyms, c.synset.lexname, c.freq)


# -- single labels -----------------------------------------------------------------------

def lookup_entry(wn: WordNet, label: str, lexnames: Collection[str] = OBJECT_LEXNAMES) -> NounEntry | None:
    """A NounEntry for a caller's own label ('dog', 'hot dogs', 'ladybug'); None if WordNet
    has no noun for it. The label is kept as given; the sense is found through morphy.

    Sense choice: the first noun sense, except that object senses (physical_object_filter)
    beat abstract ones, more-tagged senses beat less-tagged ones, and among untagged ones a
    thing beats a person ('hot dog' is listed first as a show-off, but a caller naming
    objects means the sausage).
    """
    text = ' '.join(label.replace('_', ' ').split())
    for base in wn.morphy_candidates(text):
        senses = ranked_senses(wn, base, lexnames)
        if not senses:
            continue
        synset = senses[0]
        synonyms = synonyms_of(synset, [text], max_words=99, keep_capitalised=False)
        hypernyms = tuple(wn.synset(h).name for h in synset.hypernyms)
        return NounEntry(text, synset.offset, synonyms, hypernyms, synset.lexname,
                         wn.synset_tag_count(synset.offset))
    return None


def ranked_senses(wn: WordNet, lemma: str, lexnames: Collection[str] = OBJECT_LEXNAMES) -> list[Synset]:
    """The noun senses of `lemma` (a base form: no plural), best first by lookup_entry's rule."""
    senses = wn.synsets(lemma)
    lexnames = tuple(lexnames)
    return sorted(senses, key=lambda s: _lookup_rank(wn, s, lemma, senses, lexnames))


def _lookup_rank(wn: WordNet, synset: Synset, lemma: str, senses: list[Synset],
                 lexnames: tuple[str, ...]) -> tuple[bool, int, bool, int]:
    return (not physical_object_filter(wn, synset, lexnames),
            -wn.tag_count(synset.offset, lemma),
            synset.lexname == PERSON_LEXNAME,
            senses.index(synset))


# -- files and summaries -----------------------------------------------------------------

def save_dictionary(entries: Iterable[NounEntry], path: str | os.PathLike) -> None:
    """JSON Lines, one entry per line, fields as in NounEntry (tuples as lists)."""
    # Never leave a half-written dictionary behind.
    atomic_write_text(path, ''.join(json.dumps(dataclasses.asdict(e), ensure_ascii=False) + '\n' for e in entries))


def load_dictionary(path: str | os.PathLike) -> list[NounEntry]:
    """Read a file written by save_dictionary; ValueError naming the line on bad input."""
    entries = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entries.append(_entry_from_json(json.loads(line)))
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"{path}:{number}: not a noun dictionary entry ({e})") from e
    return entries


def _entry_from_json(obj: dict) -> NounEntry:
    return NounEntry(label=str(obj['label']), synset=int(obj['synset']),
                     synonyms=tuple(obj.get('synonyms', ())), hypernyms=tuple(obj.get('hypernyms', ())),
                     lexname=str(obj.get('lexname', '')), freq=int(obj.get('freq', 0)))


def dictionary_summary(entries: Sequence[NounEntry]) -> dict:
    """count, per-lexname counts, the share of multi-word labels and of tagged entries."""
    count = len(entries)
    lexnames = Counter(e.lexname for e in entries)
    multi = sum(1 for e in entries if ' ' in e.label)
    tagged = sum(1 for e in entries if e.freq > 0)
    return {
        'count': count,
        'lexnames': dict(sorted(lexnames.items(), key=lambda kv: (-kv[1], kv[0]))),
        'multi_word_share': multi / count if count else 0.0,
        'tagged_share': tagged / count if count else 0.0,
    }
