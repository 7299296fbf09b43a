"""Set-level scoring of multi-object predictions: per frame, the set of labels predicted against the
set of objects present.

An annotation row of a multi-object evaluation lists every object of its frame: its nouns are
that set (`dog;cat;kite` = a dog, a cat and a kite). Alternative names for one object are joined
with `|` (`golden retriever|dog;cat`). A predicted label is right when it matches an object not
yet matched in that frame (a label predicted twice counts once, and so does an object written
twice: `dog;dog` is the class dog present); matching is the Scorer's
(normalisation, WordNet synonyms) when one is given, else equality after lower-casing.

    precision = right labels / predicted labels      (over all frames)
    recall    = objects named / objects present
    F1        = 2 P R / (P + R)

Per class (the first name of an object; grouped by its normalised form, shown as written): how often it was
present, how often named
(recall), how often predicted, how often right when predicted (precision).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

from .scoring import NONE, Scorer, Spellings

ALTERNATIVES = '|'


@dataclass(frozen=True)
class ClassSetScore:
    present: int = 0          # frames where the object is
    named: int = 0            # of those, frames where a label matched it
    predicted: int = 0        # frames where a label was predicted as this class
    right: int = 0            # of those, frames where it was there

    @property
    def recall(self) -> float:
        return self.named / self.present if self.present else 0.0

    @property
    def precision(self) -> float:
        return self.right / self.predicted if self.predicted else 0.0


@dataclass(frozen=True)
class SetScores:
    frames: int
    predicted: int            # distinct labels predicted, over all frames
    right: int                # of those, matching an object of their frame
    present: int              # objects present, over all frames
    named: int                # of those, matched by a label
    per_class: dict[str, ClassSetScore] = field(default_factory=dict)
    wrong: dict[str, int] = field(default_factory=dict)      # labels predicted where nothing matched, count

    @property
    def precision(self) -> float:
        return self.right / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.named / self.present if self.present else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(precision=self.precision, recall=self.recall, f1=self.f1)
        out['per_class'] = {k: {**asdict(v), 'precision': v.precision, 'recall': v.recall}
                            for k, v in self.per_class.items()}
        return out


def objects_of(nouns: Sequence[str]) -> list[tuple[str, ...]]:
    """An annotation row's nouns -> its objects, each a tuple of acceptable names."""
    out = []
    for noun in nouns:
        names = tuple(n.strip() for n in noun.split(ALTERNATIVES) if n.strip())
        if names:
            out.append(names)
    return out


def _exact(pred: str, names: Sequence[str]) -> bool:
    return pred.strip().lower() in {n.strip().lower() for n in names}


def _match_frame(preds: Iterable[str], truth: Sequence[str], matches: Callable[[str, Sequence[str]], bool],
                 class_name: Callable[[str], str]) -> tuple[list[tuple[str, ...]], list[str], list[int | None]]:
    """One frame's objects, its labels and, per label, the object it names (None: nothing present),
    each object named at most once, labels taken best first."""
    # A set: an object written twice (two dogs) is one class present, as a label predicted twice is one.
    objects = list({tuple(class_name(n) for n in names): names for names in objects_of(truth)}.values())
    labels = list(dict.fromkeys(p for p in preds if p))
    unmatched, hits = list(range(len(objects))), []
    for label in labels:
        hit = next((i for i in unmatched if matches(label, objects[i])), None)
        if hit is not None:
            unmatched.remove(hit)
        hits.append(hit)
    return objects, labels, hits


def frame_errors(scorer: Scorer, predictions: Iterable[Iterable[str]], truths: Iterable[Sequence[str]]) -> list[int]:
    """Per frame, with score_objects' matching: labels that name nothing present plus objects left
    unnamed (0: the frame's set is right)."""
    out = []
    for preds, truth in zip(predictions, truths):
        objects, labels, hits = _match_frame(preds, truth, lambda label, names: scorer.match(label, names) != NONE,
                                             scorer.normalise)
        out.append(sum(h is None for h in hits) + len(objects) - sum(h is not None for h in hits))
    return out


def set_scores(predictions: Iterable[Iterable[str]], truths: Iterable[Sequence[str]],
               matches: Callable[[str, Sequence[str]], bool] | None = None,
               class_name: Callable[[str], str] | None = None) -> SetScores:
    """Score predicted label sets against annotated object sets, frame by frame (see the module
    docstring). `matches(label, names)` decides whether a label names an object (default: equal
    ignoring case); `class_name` normalises class keys (default: lower case)."""
    matches = matches or _exact
    class_name = class_name or (lambda s: s.strip().lower())
    n = predicted_total = right_total = present_total = named_total = 0
    per: dict[str, list[int]] = {}
    wrong: dict[str, int] = {}
    written = Spellings()          # keys are normalised; reports show the words as written
    for preds, truth in zip(predictions, truths):
        n += 1
        objects, labels, hits = _match_frame(preds, truth, matches, class_name)
        unmatched = list(range(len(objects)))
        for label, hit in zip(labels, hits):
            key = (written.add(class_name(objects[hit][0]), objects[hit][0]) if hit is not None
                   else written.add(class_name(label), label))
            per.setdefault(key, [0, 0, 0, 0])[2] += 1
            if hit is None:
                wrong[key] = wrong.get(key, 0) + 1
                continue
            unmatched.remove(hit)
            per[key][3] += 1
            right_total += 1
        for i, obj in enumerate(objects):
            key = written.add(class_name(obj[0]), obj[0])
            per.setdefault(key, [0, 0, 0, 0])[0] += 1
            if i not in unmatched:
                per[key][1] += 1
                named_total += 1
        predicted_total += len(labels)
        present_total += len(objects)
    shown = written.shown
    return SetScores(n, predicted_total, right_total, present_total, named_total,
                     dict(sorted((shown(k), ClassSetScore(*v)) for k, v in per.items())),
                     dict(sorted(((shown(k), c) for k, c in wrong.items()), key=lambda kv: (-kv[1], kv[0]))))


def score_objects(scorer: Scorer, predictions: Iterable[Iterable[str]], truths: Iterable[Sequence[str]]) -> SetScores:
    """set_scores with the Scorer's matching: a label names an object when it equals one of its names
    after normalisation (case, articles, plurals) or shares a WordNet synset with one."""
    return set_scores(predictions, truths, lambda label, names: scorer.match(label, names) != NONE, scorer.normalise)


def report_lines(scores: SetScores) -> list[str]:
    """The markdown section of novic-eval's report for multi-object scoring."""
    lines = [
        '',
        '## Objects (set-level)',
        '',
        f"{scores.frames} annotated frames, {scores.present} objects present, {scores.predicted} labels "
        "predicted. A label is right when it names an object of its frame (exact after normalisation, or a "
        "WordNet synonym); a label predicted twice in a frame counts once.",
        '',
        '| measure | value |',
        '|---|---|',
        f"| precision | {scores.precision:.3f} |",
        f"| recall | {scores.recall:.3f} |",
        f"| F1 | {scores.f1:.3f} |",
        '',
        '### Per class',
        '',
        '| class | present | named (recall) | predicted | right (precision) |',
        '|---|---|---|---|---|',
    ]
    lines += [f"| {c} | {v.present} | {v.named} ({v.recall:.0%}) | {v.predicted} | {v.right} ({v.precision:.0%}) |"
              for c, v in scores.per_class.items()]
    if scores.wrong:
        lines += ['', '### Labels that named nothing present', '', '| label | frames |', '|---|---|']
        lines += [f"| {label} | {n} |" for label, n in list(scores.wrong.items())[:40]]
    return lines
