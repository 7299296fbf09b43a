"""Scoring free-text noun predictions against annotated ground truth.

The classifier names things in open vocabulary, so string equality undercounts: 'automobile'
for a car is right, and 'retriever' for a golden retriever is nearly right. Three levels:

exact
    equal after `normalise` (case, '_'/'-', spaces, a leading article, plural -> singular).
synonym
    the two nouns share a WordNet noun synset, over all noun senses of both. Counting every
    sense is generous ('frank' shares the hot-dog sense of 'dog'), but a classifier that
    named a real object almost never hits the rare sense by accident, and picking one sense
    per label would need context we do not have.
hierarchy credit
    partial credit along hypernym links (through instance hypernyms too), from the shortest
    distance d between any sense of the prediction and any sense of a truth:
    ``1 - HYPERNYM_STEP * d`` when the prediction is more general ('retriever' for a golden
    retriever), ``1 - HYPONYM_STEP * d`` when it is more specific, floored at 0.
    A more general answer loses more per level than a more specific one: a more specific
    answer is usually still right about the object (the annotator simply stopped earlier),
    while a more general one tells the robot less with every level, down to 'object'.
    With these steps an answer four levels more general earns nothing (golden retriever ->
    retriever -> sporting dog -> hunting dog -> dog is d=4), one five levels more specific
    earns nothing.

Without WordNet a Scorer does exact matching only (normalisation then skips singularising).
"""
from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Sequence

from ..lexicon.label_senses import normalise_label
from ..lexicon.wordnet import WordNet, index_key

log = logging.getLogger(__name__)

# 'dog' for a golden retriever is 4 WordNet levels up and should still earn something (0.4).
HYPERNYM_STEP = 0.15  # credit lost per level when the prediction is more general than the truth
HYPONYM_STEP = 0.1  # credit lost per level when the prediction is more specific
ARTICLES = frozenset({'a', 'an', 'the'})
MAX_CONFUSIONS = 20
NO_PREDICTION = '<none>'  # the prediction side of a confusion for a frame with no labels

EXACT, SYNONYM, NONE = 'exact', 'synonym', 'none'


# -- normalisation ------------------------------------------------------------------------

def normalise(label: str, wn: WordNet | None = None) -> str:
    """Canonical form for comparing labels: lower case, '_' and '-' as spaces, single
    spaces, no leading article, and, given WordNet, the singular of the last word
    ('Golden_Retrievers' -> 'golden retriever', 'mice' -> 'mouse'). A word that WordNet
    lists as a noun itself is kept ('glasses' is not 'glass'), as is one it does not know."""
    words = label.lower().replace('_', ' ').split()
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    text = ' '.join(words)
    if wn is not None and text:
        text = _singular(wn, text)
    return ' '.join(text.replace('-', ' ').split())


def _singular(wn: WordNet, text: str) -> str:
    """Singularise before hyphens become spaces, because WordNet spells 'T-shirt' and
    'walkie-talkie' with them. The whole phrase first ('hot dogs' -> 'hot dog'), then its
    last word alone, for phrases WordNet does not list ('red bicycles' -> 'red bicycle')."""
    base = wn.morphy(text)
    if base is not None:
        return base
    head, sep, last = text.rpartition(' ')
    if sep:
        last_base = wn.morphy(last)
        if last_base is not None:
            return f'{head} {last_base}'
    return text


# -- reports --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassScore:
    """Frames whose first truth noun (normalised) is one class: count, top-1 accuracy
    (exact or synonym) and mean hierarchy credit."""
    n: int
    top1: float
    hierarchy: float


@dataclass(frozen=True)
class ScoreReport:
    """Fractions over `n` frames; per_class is keyed by the first truth noun, and confusions are
    the most common (truth, first prediction, count) among top-1 misses. Labels are grouped by
    their normalised form ('mugs' and 'Mug' are one class) and shown by `shown_name`: the word
    as the annotator or the classifier wrote it ('jeans', 'headphones'), not WordNet's
    singular lemma ('jean')."""
    n: int
    top1: float
    topk: float
    top1_exact: float
    hierarchy: float
    per_class: dict[str, ClassScore]
    confusions: list[tuple[str, str, int]]
    k: int = 1

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; confusions become {truth, prediction, count} objects."""
        out = asdict(self)
        out['confusions'] = [{'truth': t, 'prediction': p, 'count': c} for t, p, c in self.confusions]
        return out


# -- scorer ---------------------------------------------------------------------------------

class Scorer:
    """Matches predictions to truths with WordNet synonyms and hierarchy (see the module
    docstring). Results are memoised per label and label pair, because evaluation sets
    repeat a few hundred labels over thousands of frames."""

    def __init__(self, wn: WordNet | None = None):
        self.wn = wn
        if wn is None:
            log.warning("scoring without WordNet: exact matches only, no synonyms or hierarchy credit")
        self._norm: dict[str, str] = {}
        self._senses: dict[str, frozenset[int]] = {}
        self._ancestors: dict[int, dict[int, int]] = {}
        self._credit: dict[tuple[str, str], float] = {}
        self._hyphen_aliases: dict[str, tuple[str, ...]] | None = None

    # -- labels ---------------------------------------------------------------------------

    def normalise(self, label: str) -> str:
        """`normalise` with this scorer's WordNet, memoised."""
        cached = self._norm.get(label)
        if cached is None:
            cached = self._norm[label] = normalise(label, self.wn)
        return cached

    def senses(self, label: str) -> frozenset[int]:
        """Offsets of every noun synset of a label (empty without WordNet or for an unknown
        noun), looked up by its normalised form, hyphenated spellings included."""
        norm = self.normalise(label)
        cached = self._senses.get(norm)
        if cached is None:
            cached = self._senses[norm] = self._lookup_senses(norm)
        return cached

    def _lookup_senses(self, norm: str) -> frozenset[int]:
        if self.wn is None or not norm:
            return frozenset()
        keys = (index_key(norm), *self._aliases().get(index_key(norm), ()))
        return frozenset(s.offset for key in keys for s in self.wn.synsets(key))

    def _aliases(self) -> dict[str, tuple[str, ...]]:
        """Index keys of hyphenated lemmas by their spaced form ('t_shirt' -> 't-shirt'),
        since normalise turns hyphens into spaces and index.noun keeps them. Built once."""
        if self._hyphen_aliases is None:
            aliases: dict[str, set[str]] = {}
            for synset in self.wn.all_synsets():
                for lemma in synset.lemmas:
                    if '-' in lemma:
                        aliases.setdefault(index_key(lemma.replace('-', ' ')), set()).add(index_key(lemma))
            self._hyphen_aliases = {k: tuple(sorted(v)) for k, v in aliases.items()}
        return self._hyphen_aliases

    # -- hierarchy --------------------------------------------------------------------------

    def ancestors(self, offset: int) -> dict[int, int]:
        """{ancestor offset: shortest number of hypernym links up to it} for one synset,
        itself excluded; BFS over '@' and '@i' links, memoised per synset."""
        cached = self._ancestors.get(offset)
        if cached is not None:
            return cached
        distances: dict[int, int] = {}
        queue = deque([(offset, 0)])
        while queue:
            current, depth = queue.popleft()
            for parent in self.wn.synset(current).hypernyms:
                if parent not in distances and parent != offset:
                    distances[parent] = depth + 1
                    queue.append((parent, depth + 1))
        self._ancestors[offset] = distances
        return distances

    def _pair_credit(self, pred: str, truth: str) -> float:
        """Hierarchy credit of one normalised prediction for one normalised truth."""
        if pred == truth:
            return 1.0
        key = (pred, truth)
        cached = self._credit.get(key)
        if cached is None:
            cached = self._credit[key] = self._sense_credit(self.senses(pred), self.senses(truth))
        return cached

    def _sense_credit(self, pred_senses: frozenset[int], truth_senses: frozenset[int]) -> float:
        if not pred_senses or not truth_senses:
            return 0.0
        if pred_senses & truth_senses:
            return 1.0
        best = 0.0
        for t in truth_senses:  # prediction more general: a sense of it is above the truth
            up = self.ancestors(t)
            for p in pred_senses:
                if p in up:
                    best = max(best, 1.0 - HYPERNYM_STEP * up[p])
        for p in pred_senses:  # prediction more specific: a truth sense is above it
            up = self.ancestors(p)
            for t in truth_senses:
                if t in up:
                    best = max(best, 1.0 - HYPONYM_STEP * up[t])
        return max(0.0, best)

    # -- public matching -----------------------------------------------------------------------

    def match(self, pred: str, truths: Sequence[str]) -> str:
        """'exact', 'synonym' (a shared noun synset, any senses) or 'none'."""
        norm = self.normalise(pred)
        norms = [self.normalise(t) for t in truths]
        if norm and norm in norms:
            return EXACT
        pred_senses = self.senses(pred)
        if pred_senses and any(pred_senses & self.senses(t) for t in truths):
            return SYNONYM
        return NONE

    def hierarchy_credit(self, pred: str, truths: Sequence[str]) -> float:
        """Credit in [0, 1]: 1 for exact or synonym, partial along hypernym links (module
        docstring), the best over all truths and senses; 0 for unrelated labels."""
        norm = self.normalise(pred)
        if not norm:
            return 0.0
        return max((self._pair_credit(norm, self.normalise(t)) for t in truths), default=0.0)

    def score(self, predictions: Sequence[Sequence[str]], truths: Sequence[Sequence[str]], k: int) -> ScoreReport:
        """Score ranked predictions per frame (possibly empty) against acceptable truths per
        frame; see ScoreReport. top1/topk count exact and synonym matches."""
        if len(predictions) != len(truths):
            raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        tally = _Tally()
        for preds, truth in zip(predictions, truths):
            if not truth:
                raise ValueError("every frame needs at least one truth noun")
            tally.add(*self._frame(list(preds), truth, k))
        return tally.report(k)

    def _frame(self, preds: list[str], truth: Sequence[str], k: int) -> tuple[tuple[str, str], tuple[str, str],
                                                                              bool, bool, bool, float]:
        """((class, as written), (first prediction, as written), top1, topk, top1 exact, hierarchy)
        of one frame."""
        cls = (self.normalise(truth[0]), truth[0])
        if not preds:
            return cls, (NO_PREDICTION, NO_PREDICTION), False, False, False, 0.0
        first = self.match(preds[0], truth)
        hit_k = first != NONE or any(self.match(p, truth) != NONE for p in preds[1:k])
        return (cls, (self.normalise(preds[0]), preds[0]), first != NONE, hit_k, first == EXACT,
                self.hierarchy_credit(preds[0], truth))


class _Tally:
    """Running sums for ScoreReport."""

    def __init__(self) -> None:
        self.n = 0
        self.top1 = self.topk = self.exact = 0
        self.hierarchy = 0.0
        self.classes: dict[str, list[float]] = {}  # class -> [n, top1 hits, hierarchy sum]
        self.confusions: Counter[tuple[str, str]] = Counter()
        self.written = Spellings()

    def add(self, cls_written: tuple[str, str], pred_written: tuple[str, str], top1: bool, topk: bool, exact: bool,
            credit: float) -> None:
        cls, pred = self.written.add(*cls_written), self.written.add(*pred_written)
        self.n += 1
        self.top1 += top1
        self.topk += topk
        self.exact += exact
        self.hierarchy += credit
        sums = self.classes.setdefault(cls, [0, 0, 0.0])
        sums[0] += 1
        sums[1] += top1
        sums[2] += credit
        if not top1:
            self.confusions[(cls, pred)] += 1

    def report(self, k: int) -> ScoreReport:
        shown = self.written.shown
        per_class = dict(sorted((shown(cls), ClassScore(int(n), hits / n, credit / n))
                                for cls, (n, hits, credit) in self.classes.items()))
        confusions = sorted(((shown(t), shown(p), c) for (t, p), c in self.confusions.items()),
                            key=lambda row: (-row[2], row[0], row[1]))[:MAX_CONFUSIONS]
        return ScoreReport(self.n, _frac(self.top1, self.n), _frac(self.topk, self.n),
                           _frac(self.exact, self.n), _frac(self.hierarchy, self.n),
                           per_class, confusions, k)


class Spellings:
    """How the labels of each normalised form were written, to show them as people wrote them."""

    def __init__(self) -> None:
        self._seen: dict[str, Counter[str]] = {}

    def add(self, key: str, written: str) -> str:
        self._seen.setdefault(key, Counter())[normalise_label(written) or key] += 1
        return key

    def shown(self, key: str) -> str:
        return shown_name(key, self._seen.get(key, Counter()))


def shown_name(key: str, written: Counter[str]) -> str:
    """The name a report shows for a normalised label `key`: the key itself when someone wrote it
    so ('mug' for 'mugs' and 'Mug'), else the spelling written most often, the first on a tie
    ('jeans', whose WordNet lemma is 'jean'; 'headphones')."""
    if not written or key in written:
        return key
    return max(written, key=written.__getitem__)      # max keeps the first of equals: insertion order


def _frac(value: float, n: int) -> float:
    return value / n if n else 0.0
