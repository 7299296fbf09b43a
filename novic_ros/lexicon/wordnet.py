"""A small, fast reader of the WordNet 3.0 noun database (data.noun, index.noun, noun.exc,
cntlist.rev), as installed by Debian's `wordnet-base` package.

Why not nltk: the noun dictionary only needs nouns, hypernyms, sense order, tag counts and
morphology, and nltk would bring a download step and a heavy dependency into a ROS package.
The formats are documented in wndb(5WN), lexnames(5WN) and cntlist(5WN); this module parses
exactly those with str.split (no regex per line). The index, counts and exceptions are read
at load (about 0.2 s); data.noun's synsets are read by byte offset when first asked for, so a
node mapping a few labels to categories does not parse ~82k synsets (0.7 s) at start.

Nothing here imports torch or ROS.
"""
from __future__ import annotations

import logging
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator

log = logging.getLogger(__name__)

DEFAULT_ROOT = '/usr/share/wordnet'
ROOT_ENV = 'NOVIC_WORDNET_DIR'
REQUIRED_FILES = ('data.noun', 'index.noun', 'noun.exc', 'cntlist.rev')

# lexnames(5WN): the 45 lexicographer files, indexed by the two-digit `lex_filenum` field.
# Debian's wordnet-base lacks the `lexnames` file itself, so the table lives here.
LEXNAMES: tuple[str, ...] = (
    'adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal',
    'noun.artifact', 'noun.attribute', 'noun.body', 'noun.cognition', 'noun.communication',
    'noun.event', 'noun.feeling', 'noun.food', 'noun.group', 'noun.location', 'noun.motive',
    'noun.object', 'noun.person', 'noun.phenomenon', 'noun.plant', 'noun.possession',
    'noun.process', 'noun.quantity', 'noun.relation', 'noun.shape', 'noun.state',
    'noun.substance', 'noun.time', 'verb.body', 'verb.change', 'verb.cognition',
    'verb.communication', 'verb.competition', 'verb.consumption', 'verb.contact',
    'verb.creation', 'verb.emotion', 'verb.motion', 'verb.perception', 'verb.possession',
    'verb.social', 'verb.stative', 'verb.weather', 'adj.ppl',
)

HYPERNYM_POINTERS = frozenset({'@', '@i'})
HYPONYM_POINTERS = frozenset({'~', '~i'})
INSTANCE_HYPERNYM = '@i'

# morphy's detachment rules for nouns (morph.c in the WordNet library), in its order.
NOUN_DETACHMENT_RULES: tuple[tuple[str, str], ...] = (
    ('s', ''), ('ses', 's'), ('xes', 'x'), ('zes', 'z'),
    ('ches', 'ch'), ('shes', 'sh'), ('men', 'man'), ('ies', 'y'),
)

# noun.exc also lists plurals whose inverse is unique but which are archaic (brother ->
# brethren, cow -> kine) or belong to a sense that is not the object (penny -> pence, the
# money, where coins are pennies; iris -> irides, anatomy). The regular plural wins for these.
SKIPPED_EXCEPTIONS = frozenset({'brethren', 'kine', 'eyen', 'hosen', 'shoon', 'kye', 'pence', 'irides'})

# Nouns whose plural is the singular. noun.exc cannot list them (morphy finds 'sheep' in the
# index as it is), so WordNet holds no trace of them; a short list of common ones is enough
# for labels.
INVARIANT_PLURALS = frozenset({
    'sheep', 'deer', 'fish', 'moose', 'swine', 'bison', 'salmon', 'trout', 'cod', 'squid',
    'aircraft', 'spacecraft', 'hovercraft', 'watercraft', 'series', 'species', 'offspring',
    'scissors', 'pliers', 'tweezers', 'binoculars', 'shears',
})

# '-man' words that are not compounds of 'man' although their stem happens to be a lemma.
NOT_MAN_COMPOUNDS = frozenset({'cayman', 'dolman', 'caiman', 'shaman', 'talisman', 'ottoman'})


@dataclass(frozen=True)
class Synset:
    """One noun synset. `lemmas` keep the lexicographer's case (proper nouns are capitalised),
    with underscores turned into spaces."""
    offset: int
    lexname: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[int, ...]
    hyponyms: tuple[int, ...]
    gloss: str
    # Instance synsets (Paris, Einstein) point up only through '@i'; kept so that callers
    # can tell proper-noun instances from classes without re-reading the file.
    instance_hypernyms: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.lemmas[0]

    @property
    def is_instance(self) -> bool:
        """True when every hypernym pointer is '@i', i.e. the synset names an individual."""
        return bool(self.instance_hypernyms) and set(self.hypernyms) == set(self.instance_hypernyms)


def index_key(lemma: str) -> str:
    """The form index.noun and cntlist.rev use: lower case, words joined by underscores."""
    return '_'.join(lemma.strip().lower().replace('_', ' ').split())


def display_form(key: str) -> str:
    return key.replace('_', ' ')


def strip_marker(word: str) -> str:
    """Drop an adjective syntactic marker such as '(p)'; never present in nouns, but the
    format allows it and a stray marker would otherwise end up in a label."""
    if word.endswith(')'):
        cut = word.rfind('(')
        if cut > 0:
            return word[:cut]
    return word


def regular_plural(word: str) -> str:
    """English plural by spelling rules alone (the inverse of morphy's detachment rules)."""
    lower = word.lower()
    if lower.endswith(('s', 'x', 'z', 'ch', 'sh')):
        return word + 'es'
    if lower.endswith('y') and len(lower) > 1 and lower[-2] not in 'aeiou':
        return word[:-1] + 'ies'
    return word + 's'


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """An explicit root wins, then $NOVIC_WORDNET_DIR, then Debian's install location."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


class WordNet:
    """The WordNet 3.0 noun database: the index, counts and exceptions in dicts, the synsets of
    data.noun parsed when first asked for (a node that names a few labels reads a few lines
    instead of 82k; the whole file, about 0.7 s, only for `all_synsets`)."""

    def __init__(self, root: Path, data: 'NounData', index: dict[str, tuple[int, ...]],
                 tag_counts: dict[str, int], exceptions: dict[str, tuple[str, ...]]):
        self.root = root
        self._data = data
        self._index = index
        self._tag_counts = tag_counts
        self._exceptions = exceptions
        self._irregular_plurals = invert_exceptions(exceptions)
        self._closure_cache: dict[int, frozenset[int]] = {}

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, root: str | os.PathLike | None = None) -> 'WordNet':
        """Read the noun database from `root` (default: $NOVIC_WORDNET_DIR, else
        /usr/share/wordnet)."""
        path = resolve_root(root)
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"WordNet 3.0 noun files missing in {path}: {', '.join(missing)}; install them with "
                f"`sudo apt-get install wordnet-base`, or point ${ROOT_ENV} (or --wordnet) at a "
                f"directory holding {', '.join(REQUIRED_FILES)}")
        wn = cls(path, NounData(path / 'data.noun'), read_index(path / 'index.noun'),
                 read_cntlist(path / 'cntlist.rev'), read_exceptions(path / 'noun.exc'))
        log.debug("loaded %d lemmas from %s", len(wn._index), path)
        return wn

    # -- synsets -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._data.all())

    def synset(self, offset: int) -> Synset:
        """The synset at byte offset `offset` of data.noun; KeyError if there is none."""
        return self._data[offset][0]

    def all_synsets(self) -> Iterator[Synset]:
        """Every noun synset, in file (offset) order."""
        return (synset for synset, _ in self._data.all().values())

    def has_lemma(self, lemma: str) -> bool:
        return index_key(lemma) in self._index

    def synsets(self, lemma: str) -> list[Synset]:
        """The senses of noun `lemma` in WordNet's sense order (most frequent first).
        Spaces or underscores, any case; [] for an unknown lemma."""
        return [self._data[o][0] for o in self._index.get(index_key(lemma), ())]

    def sense_number(self, offset: int, lemma: str) -> int:
        """1-based position of synset `offset` among the senses of `lemma`; 0 if not a sense."""
        offsets = self._index.get(index_key(lemma), ())
        return offsets.index(offset) + 1 if offset in offsets else 0

    # -- frequency -----------------------------------------------------------------------

    def sense_key(self, offset: int, lemma: str) -> str:
        """senseidx(5WN) key `lemma%1:LL:II::` of one word sense. Noun keys never carry the
        adjective-satellite head fields, hence the two empty fields at the end."""
        synset, lex_ids = self._data[offset]
        key = index_key(lemma)
        for word, lex_id in zip(synset.lemmas, lex_ids):
            if index_key(word) == key:
                filenum = LEXNAMES.index(synset.lexname)
                return f'{key}%1:{filenum:02d}:{lex_id:02d}::'
        raise ValueError(f"{lemma!r} is not a lemma of synset {offset} ({', '.join(synset.lemmas)})")

    def tag_count(self, offset: int, lemma: str) -> int:
        """How often this word sense was tagged in the semantic concordances (cntlist.rev,
        looked up by sense key); 0 for untagged senses. ValueError if `lemma` is not in
        the synset."""
        return self._tag_counts.get(self.sense_key(offset, lemma), 0)

    def synset_tag_count(self, offset: int) -> int:
        """Tag counts summed over the synset's lemmas: a frequency signal for the concept."""
        return sum(self.tag_count(offset, word) for word in self._data[offset][0].lemmas)

    # -- hierarchy -----------------------------------------------------------------------

    def hypernym_closure(self, offset: int) -> frozenset[int]:
        """All ancestors of `offset` (through '@' and '@i'), excluding itself. Memoised,
        because building the dictionary asks for thousands of overlapping closures."""
        cached = self._closure_cache.get(offset)
        if cached is not None:
            return cached
        ancestors: set[int] = set()
        for parent in self._data[offset][0].hypernyms:
            ancestors.add(parent)
            ancestors |= self.hypernym_closure(parent)
        result = frozenset(ancestors)
        self._closure_cache[offset] = result
        return result

    def is_a(self, offset: int, ancestor_offset: int) -> bool:
        """True when `ancestor_offset` is `offset` or one of its (transitive) hypernyms."""
        return offset == ancestor_offset or ancestor_offset in self.hypernym_closure(offset)

    def hypernym_path(self, offset: int, through: Collection[int] = ()) -> list[int]:
        """One chain from `offset` up to the root, following the first hypernym each time:
        what a human reads as "dog > canine > carnivore > ... > entity". With `through`
        (ancestors, such as the synsets of a label's category), the chain passes through one of
        them: the first path up to one in WordNet's order of hypernyms (depth first, the first
        hypernym tried first), then first hypernyms again. Where the first-hypernym chain
        already passes through one, that is the same chain, so every tool prints one chain per
        label ('dog' reaches 'animal' through 'canine', not the shorter way through 'domestic
        animal'). ValueError when none of `through` is `offset` or above it."""
        path = self._path_up_to(offset, frozenset(through)) if through else [offset]
        while self._data[path[-1]][0].hypernyms:
            parent = self._data[path[-1]][0].hypernyms[0]
            if parent in path:  # WordNet has no cycles; guard anyway rather than hang
                break
            path.append(parent)
        return path

    def _path_up_to(self, offset: int, targets: frozenset[int]) -> list[int]:
        def leads(o: int) -> bool:
            return any(self.is_a(o, t) for t in targets)
        if not leads(offset):
            raise ValueError(f"none of {sorted(targets)} is synset {offset:08d} or a hypernym of it")
        path = [offset]
        while path[-1] not in targets:
            # The closure makes this greedy walk exact: the first hypernym that leads to a target
            # is the one a depth-first search would take.
            path.append(next(p for p in self._data[path[-1]][0].hypernyms if leads(p)))
        return path

    # -- morphology ----------------------------------------------------------------------

    def morphy_candidates(self, word: str) -> list[str]:
        """Noun base forms of `word` that exist in index.noun, best first: the word itself,
        then noun.exc exceptions, then the detachment rules. For phrases ('hot dogs') the
        last word is reduced, since English inflects the head of a compound."""
        key = index_key(word)
        if not key:
            return []
        found = [k for k in self._base_forms(key) if k in self._index]
        if not found and '_' in key:
            head, _, last = key.rpartition('_')
            found = [f'{head}_{k}' for k in self._base_forms(last) if f'{head}_{k}' in self._index]
        return [display_form(k) for k in dict.fromkeys(found)]

    def morphy(self, word: str) -> str | None:
        """The noun base form of `word` ('mice' -> 'mouse'), or None if it is not a noun."""
        candidates = self.morphy_candidates(word)
        return candidates[0] if candidates else None

    def _base_forms(self, key: str) -> list[str]:
        forms = [key, *self._exceptions.get(key, ())]
        # morph.c: no detachment for words ending in 'ss' (glass) or of two letters or fewer
        if not key.endswith('ss') and len(key) > 2:
            forms += [key[:-len(suffix)] + ending for suffix, ending in NOUN_DETACHMENT_RULES
                      if key.endswith(suffix)]
        return forms

    def plural(self, noun: str) -> str:
        """An English plural of `noun`: the irregular form from noun.exc where exactly one
        inflected form maps to the noun (mouse -> mice), else spelling rules (city ->
        cities). Multi-word nouns pluralise their last word (hot dog -> hot dogs)."""
        text = ' '.join(noun.replace('_', ' ').split())
        if not text:
            raise ValueError("cannot pluralise an empty noun")
        whole = self._irregular(text)
        if whole is not None:
            return whole
        head, sep, last = text.rpartition(' ')
        irregular = self._irregular(last)
        if irregular is None:
            irregular = self._rule_plural(last)
        return head + sep + irregular

    def _rule_plural(self, word: str) -> str:
        """Plural of one word that noun.exc does not list."""
        lower = word.lower()
        if lower in INVARIANT_PLURALS or self._is_plural_form(lower):
            return word
        if lower.endswith('man') and lower not in NOT_MAN_COMPOUNDS and self._is_man_compound(lower):
            # morphy reduces '-men' by rule, so noun.exc omits fireman/firemen and friends
            return word[:-3] + word[-3] + 'e' + word[-1]
        return regular_plural(word)

    def _is_plural_form(self, lower: str) -> bool:
        """A noun that is already plural (glasses, pants, jeans): its plural is itself. Judged
        by a reduced form, other than the word, that is a lemma of three letters or more;
        the length keeps 'gas' (-> 'ga', gallium) singular."""
        if not lower.endswith('s') or lower.endswith(('ss', 'us', 'is')):
            return False
        key = index_key(lower)
        return any(k != key and len(k) >= 3 and k in self._index for k in self._base_forms(key))

    def _is_man_compound(self, lower: str) -> bool:
        """fireman, policeman, craftsman: a noun stem before 'man' (woman counts too)."""
        stem = lower[:-3].rstrip(' -')
        if stem == 'wo':
            return True
        # a short stem ('hu' of human, 'sha' of shaman) is no word: not a compound
        return len(stem) >= 3 and (self.has_lemma(stem) or self.morphy(stem) is not None)

    def _irregular(self, text: str) -> str | None:
        form = self._irregular_plurals.get(index_key(text))
        if form is None:
            return None
        if text[:1].isupper():  # keep a capital that the (lower-case) exception list lost
            form = form[:1].upper() + form[1:]
        return form


def invert_exceptions(exceptions: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """base -> plural from noun.exc (inflected -> bases), kept only where one inflected form
    maps to the base. Two cases are left to the rules: spelling variants that are merely the
    regular plural with a doubled 's' (bus -> busses; rules give buses), and SKIPPED_EXCEPTIONS."""
    inverse: dict[str, list[str]] = {}
    for inflected, bases in exceptions.items():
        if inflected in SKIPPED_EXCEPTIONS:
            continue
        for base in bases:
            inverse.setdefault(base, []).append(inflected)
    plurals = {}
    for base, forms in inverse.items():
        if len(forms) != 1:
            continue
        form = forms[0]
        if base.endswith('s') and form == base + 'ses':
            continue
        plurals[base] = display_form(form)
    return plurals


# -- file readers (wndb(5WN), cntlist(5WN)) ---------------------------------------------

def data_lines(path: Path) -> Iterator[str]:
    """Lines of a WordNet database file without the license header, whose lines all
    begin with two spaces."""
    with open(path, encoding='ascii', errors='replace') as f:
        for line in f:
            if not line.startswith(' '):
                yield line


def read_data(path: Path) -> tuple[dict[int, Synset], dict[int, tuple[int, ...]]]:
    """data.noun -> ({offset: Synset}, {offset: lex_id per lemma}); lex_ids are kept apart
    from Synset because only sense keys need them."""
    synsets: dict[int, Synset] = {}
    lex_ids: dict[int, tuple[int, ...]] = {}
    for line in data_lines(path):
        synset, ids = parse_data_line(line)
        synsets[synset.offset] = synset
        lex_ids[synset.offset] = ids
    return synsets, lex_ids


class NounData:
    """data.noun, read by offset. wndb(5WN): a synset's offset is the byte offset of its line, so
    a lookup reads that one line (memory-mapped) and keeps what it parsed. Safe to share between
    threads: a line parsed twice at once gives equal results."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, 'rb') as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._parsed: dict[int, tuple[Synset, tuple[int, ...]]] = {}
        self._everything: dict[int, tuple[Synset, tuple[int, ...]]] | None = None

    def __getitem__(self, offset: int) -> tuple[Synset, tuple[int, ...]]:
        """(synset, lex_id per lemma) at `offset`; KeyError where no synset line starts."""
        found = self._parsed.get(offset)
        if found is None:
            found = self._parse_at(offset)
            self._parsed[offset] = found
        return found

    def _parse_at(self, offset: int) -> tuple[Synset, tuple[int, ...]]:
        m = self._map
        if not 0 <= offset < len(m) or (offset and m[offset - 1] != ord('\n')) or m[offset] == ord(' '):
            raise KeyError(offset)                   # not the start of a line, or the license header
        end = m.find(b'\n', offset)
        line = m[offset:end if end >= 0 else len(m)].decode('ascii', errors='replace')
        try:
            parsed = parse_data_line(line)
        except (ValueError, IndexError):
            raise KeyError(offset) from None
        if parsed[0].offset != offset:
            raise KeyError(offset)
        return parsed

    def all(self) -> dict[int, tuple[Synset, tuple[int, ...]]]:
        """Every synset in file order (parsed once, in one pass)."""
        if self._everything is None:
            synsets, lex_ids = read_data(self.path)
            self._everything = {o: (synset, lex_ids[o]) for o, synset in synsets.items()}
            self._parsed = self._everything
        return self._everything


def parse_data_line(line: str) -> tuple[Synset, tuple[int, ...]]:
    """One data.noun line: offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt
    (symbol offset pos source/target)* | gloss."""
    head, _, gloss = line.partition(' | ')
    fields = head.split()
    offset = int(fields[0])
    lexname = LEXNAMES[int(fields[1])]
    w_cnt = int(fields[3], 16)
    words = fields[4:4 + 2 * w_cnt]
    lemmas = tuple(strip_marker(w).replace('_', ' ') for w in words[0::2])
    ids = tuple(int(x, 16) for x in words[1::2])
    at = 4 + 2 * w_cnt
    p_cnt = int(fields[at])
    hypernyms: list[int] = []
    hyponyms: list[int] = []
    instances: list[int] = []
    for i in range(at + 1, at + 1 + 4 * p_cnt, 4):
        symbol, target, pos = fields[i], fields[i + 1], fields[i + 2]
        if pos != 'n':
            continue
        if symbol in HYPERNYM_POINTERS:
            hypernyms.append(int(target))
            if symbol == INSTANCE_HYPERNYM:
                instances.append(int(target))
        elif symbol in HYPONYM_POINTERS:
            hyponyms.append(int(target))
    synset = Synset(offset, lexname, lemmas, tuple(hypernyms), tuple(hyponyms),
                    gloss.strip(), tuple(instances))
    return synset, ids


def read_index(path: Path) -> dict[str, tuple[int, ...]]:
    """index.noun -> {lemma: synset offsets in sense order}. The offsets are the last
    `synset_cnt` fields, which avoids counting the variable pointer-symbol list."""
    index: dict[str, tuple[int, ...]] = {}
    for line in data_lines(path):
        fields = line.split()
        synset_cnt = int(fields[2])
        index[fields[0]] = tuple(int(o) for o in fields[-synset_cnt:])
    return index


def read_cntlist(path: Path) -> dict[str, int]:
    """cntlist.rev (`sense_key sense_number tag_cnt`) -> {noun sense key: tag count}."""
    counts: dict[str, int] = {}
    for line in data_lines(path):
        fields = line.split()
        if len(fields) == 3 and '%1:' in fields[0]:
            counts[fields[0]] = int(fields[2])
    return counts


def read_exceptions(path: Path) -> dict[str, tuple[str, ...]]:
    """noun.exc (`inflected base [base...]`) -> {inflected: bases}."""
    exceptions: dict[str, tuple[str, ...]] = {}
    for line in data_lines(path):
        fields = line.split()
        if len(fields) >= 2:
            exceptions[fields[0]] = tuple(fields[1:])
    return exceptions
