"""Category-level accuracy, beside the fine one (scoring.py): was the frame's coarse category right?

A robot that acts on categories ("stop for any animal") needs the category right, not the breed.
A frame's predicted category is what novic_node publishes on `categories`: the category whose
labels' probabilities sum highest (lexicon.categories.CategoryMap.scores), so three animal
labels at 0.3 beat one vehicle at 0.4. It is right when it is the category of one of the frame's
ground-truth nouns (acceptable nouns are alternatives, as in the fine score). 'other' is a
category like the rest: a frame of a thing under no listed category is right when the labels
say 'other' too. Frames without labels count as wrong.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

from ..lexicon.categories import CategoryMap

NO_PREDICTION = '<none>'
MAX_CONFUSIONS = 20


@dataclass(frozen=True)
class CategoryClassScore:
    n: int
    accuracy: float


@dataclass(frozen=True)
class CategoryScore:
    """Over `n` annotated frames; per_category is keyed by the category of the first truth noun,
    confusions are the most common (truth category, predicted category, frames) among misses."""
    n: int
    accuracy: float
    per_category: dict[str, CategoryClassScore]
    confusions: list[tuple[str, str, int]]
    categories: tuple[str, ...]

    def to_dict(self) -> dict:
        out = asdict(self)
        out['confusions'] = [{'truth': t, 'prediction': p, 'count': c} for t, p, c in self.confusions]
        return out

    def markdown(self) -> list[str]:
        """The report's section, as lines."""
        lines = ['', '## Category accuracy', '',
                 f"{self.n} annotated frames. A frame's category is the one whose labels' probabilities sum "
                 f"highest (as on the node's categories topic), right when it is a ground-truth noun's category. "
                 f"Categories: {', '.join(self.categories)}.", '',
                 '| measure | value |', '|---|---|', f"| category accuracy | {self.accuracy:.1%} |", '',
                 '| category | frames | accuracy |', '|---|---|---|']
        lines += [f"| {c} | {v.n} | {v.accuracy:.0%} |" for c, v in self.per_category.items()]
        if self.confusions:
            lines += ['', '| truth category | predicted | frames |', '|---|---|---|']
            lines += [f"| {t} | {p} | {n} |" for t, p, n in self.confusions]
        return lines


def predicted_category(cats: CategoryMap, labels: Sequence[tuple[str, float]]) -> str:
    scores = cats.scores(labels)
    return scores[0][0] if scores else NO_PREDICTION


def score_categories(cats: CategoryMap, predictions: Sequence[Sequence[tuple[str, float]]],
                     truths: Sequence[Sequence[str]]) -> CategoryScore:
    """Category accuracy of ranked (label, probability) predictions per frame against the
    acceptable truth nouns per frame (module docstring)."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} truths")
    per: dict[str, list[int]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    hits = 0
    for labels, truth in zip(predictions, truths):
        if not truth:
            raise ValueError("every frame needs at least one truth noun")
        truth_categories = [cats.category_of(t) for t in truth]
        predicted = predicted_category(cats, labels)
        hit = predicted in truth_categories
        hits += hit
        counts = per.setdefault(truth_categories[0], [0, 0])
        counts[0] += 1
        counts[1] += hit
        if not hit:
            confusions[(truth_categories[0], predicted)] += 1
    order = {name: i for i, name in enumerate(cats.names)}
    per_category = {c: CategoryClassScore(n, h / n) for c, (n, h) in sorted(per.items(), key=lambda kv: order[kv[0]])}
    worst = sorted(((t, p, n) for (t, p), n in confusions.items()), key=lambda r: (-r[2], r[0], r[1]))
    n = len(truths)
    return CategoryScore(n, hits / n if n else 0.0, per_category, worst[:MAX_CONFUSIONS], cats.names)
