"""Evaluation: annotation files (format, matching to bag frames) and scoring of noun
predictions (normalisation, WordNet synonyms, hierarchy credit, reports)."""
from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass

import pytest

from novic_ros.eval.annotations import (
    Annotation, AnnotationError, FrameKey, format_stamp, load_annotations, match_annotations,
    format_annotations, parse_frame,
)
from novic_ros.eval.scoring import (
    HYPERNYM_STEP, HYPONYM_STEP, NO_PREDICTION, ClassScore, Scorer, normalise,
)
from novic_ros.lexicon.wordnet import WordNet, resolve_root

WORDNET_DIR = resolve_root()
needs_wordnet = pytest.mark.skipif(
    not (WORDNET_DIR / 'data.noun').is_file(),
    reason=f"WordNet 3.0 not installed in {WORDNET_DIR} (apt-get install wordnet-base)")


@pytest.fixture(scope='module')
def wn() -> WordNet:
    return WordNet.load()


@pytest.fixture(scope='module')
def scorer(wn: WordNet) -> Scorer:
    return Scorer(wn)


def bfs_distance(wn: WordNet, lower: int, upper: int) -> int | None:
    """Shortest number of hypernym links from synset `lower` up to `upper`, written here
    independently of the scorer's own BFS."""
    seen = {lower}
    queue = deque([(lower, 0)])
    while queue:
        offset, depth = queue.popleft()
        if offset == upper:
            return depth
        for parent in wn.synset(offset).hypernyms:
            if parent not in seen:
                seen.add(parent)
                queue.append((parent, depth + 1))
    return None


def only_sense(wn: WordNet, lemma: str) -> int:
    senses = wn.synsets(lemma)
    assert len(senses) == 1, f"{lemma!r} is expected to be monosemous"
    return senses[0].offset


DOG = 2084071  # dog, domestic dog, Canis familiaris


# -- normalisation -------------------------------------------------------------------------

@needs_wordnet
@pytest.mark.parametrize('label, expected', [
    ('Golden_Retrievers', 'golden retriever'),
    ('mice', 'mouse'),
    ('glasses', 'glasses'),        # a lemma of its own (spectacles): not reduced to 'glass'
    ('  The   Dogs ', 'dog'),
    ('an apple', 'apple'),
    ('a', 'a'),                    # a lone article is the label, not an article
    ('T-Shirts', 't shirt'),       # singularised while WordNet still sees 'T-shirt'
    ('red bicycles', 'red bicycle'),  # unknown phrase: its last word alone
    ('Hot_Dogs', 'hot dog'),
    ('xyzzies', 'xyzzies'),        # unknown word: left alone
])
def test_normalise_with_wordnet(wn, label, expected):
    assert normalise(label, wn) == expected


def test_normalise_without_wordnet_does_not_singularise():
    assert normalise('The Golden_Retrievers') == 'golden retrievers'
    assert normalise('T-shirt') == 't shirt'


# -- matching ------------------------------------------------------------------------------

@needs_wordnet
def test_exact_synonym_and_none(scorer):
    assert scorer.match('Cars', ['car']) == 'exact'
    assert scorer.match('dog', ['golden retriever', 'dog']) == 'exact'
    assert scorer.match('car', ['automobile']) == 'synonym'
    assert scorer.match('auto', ['car']) == 'synonym'
    assert scorer.match('autos', ['motorcar']) == 'synonym'
    assert scorer.match('tee shirt', ['T-shirt']) == 'synonym'  # hyphenated lemma found
    assert scorer.match('retriever', ['golden retriever']) == 'none'  # related, but not the same
    assert scorer.match('bicycle', ['dog']) == 'none'
    assert scorer.match('', ['dog']) == 'none'


@needs_wordnet
def test_more_general_prediction_gets_hypernym_credit(wn, scorer):
    golden = only_sense(wn, 'golden retriever')
    d = bfs_distance(wn, golden, DOG)
    path = wn.hypernym_path(golden)
    assert d is not None and path.index(DOG) == d  # the first-hypernym chain is the shortest here
    assert scorer.hierarchy_credit('dog', ['golden retriever']) == pytest.approx(max(0.0, 1 - HYPERNYM_STEP * d))
    # each level up the chain costs HYPERNYM_STEP (retriever, sporting dog, hunting dog, dog)
    for level, ancestor in enumerate(path[1:5], start=1):
        name = wn.synset(ancestor).lemmas[0]
        assert bfs_distance(wn, golden, ancestor) == level
        assert scorer.hierarchy_credit(name, ['golden retriever']) == pytest.approx(
            max(0.0, 1 - HYPERNYM_STEP * level)
        ), name
    assert scorer.hierarchy_credit('retriever', ['golden retriever']) == pytest.approx(0.85)


@needs_wordnet
def test_more_specific_prediction_gets_hyponym_credit(wn, scorer):
    d = bfs_distance(wn, only_sense(wn, 'golden retriever'), DOG)
    credit = scorer.hierarchy_credit('golden retriever', ['dog'])
    assert credit == pytest.approx(max(0.0, 1 - HYPONYM_STEP * d))
    assert credit > scorer.hierarchy_credit('dog', ['golden retriever'])  # specific beats general
    assert bfs_distance(wn, wn.synsets('puppy')[0].offset, DOG) == 1
    assert scorer.hierarchy_credit('puppy', ['dog']) == pytest.approx(1 - HYPONYM_STEP)


@needs_wordnet
def test_hierarchy_credit_edges(wn, scorer):
    assert scorer.hierarchy_credit('bicycle', ['dog']) == 0.0
    assert scorer.hierarchy_credit('automobile', ['car']) == 1.0
    assert scorer.hierarchy_credit('Dogs', ['dog']) == 1.0
    assert scorer.hierarchy_credit('', ['dog']) == 0.0
    # shortest path over all hypernyms: dog -> domestic animal -> animal, not the long chain
    d = bfs_distance(wn, DOG, wn.synsets('animal')[0].offset)
    assert d == 2
    assert scorer.hierarchy_credit('animal', ['dog']) == pytest.approx(1 - HYPERNYM_STEP * d)
    # best over truths
    assert scorer.hierarchy_credit('retriever', ['bicycle', 'golden retriever']) == pytest.approx(0.85)
    assert scorer.ancestors(DOG)[wn.synsets('animal')[0].offset] == 2


def test_scorer_without_wordnet_is_exact_only(caplog):
    with caplog.at_level(logging.WARNING):
        plain = Scorer(None)
    assert sum('without WordNet' in r.getMessage() for r in caplog.records) == 1
    assert plain.match('The Car', ['car']) == 'exact'
    assert plain.match('automobile', ['car']) == 'none'
    assert plain.match('cars', ['car']) == 'none'  # no morphology either
    assert plain.hierarchy_credit('car', ['car']) == 1.0
    assert plain.hierarchy_credit('dog', ['golden retriever']) == 0.0
    report = plain.score([['car'], ['automobile']], [['car'], ['car']], k=1)
    assert (report.top1, report.top1_exact, report.hierarchy) == (0.5, 0.5, 0.5)


# -- the hand-checked report ---------------------------------------------------------------

# k = 2. Facts used (each asserted in the tests above or below): 'automobile' is a synonym of
# 'car'; 'retriever' is 1 level above 'golden retriever' (credit 1 - 0.15 = 0.85); 'mug' is
# 1 level above 'coffee mug' (0.85); 'puppy' is 1 level below 'dog' (1 - 0.1 = 0.9);
# 'cup'/'coffee mug', 'bicycle'/'dog' and 'puppy'/'dog' are no match.
#
#  #  truths                   predictions                top1 top2 exact hier  confusion
#  1  golden retriever; dog    Dogs, cat                  1    1    1     1.0   -
#  2  car                      automobile                 1    1    0     1.0   -
#  3  golden retriever         retriever, golden retr.    0    1    0     0.85  (golden retriever, retriever)
#  4  coffee mug               mugs, cup                  0    0    0     0.85  (coffee mug, mug)
#  5  coffee mug               Mug                        0    0    0     0.85  (coffee mug, mug)
#  6  dog                      puppy, dog                 0    1    0     0.9   (dog, puppy)
#  7  dog                      bicycle, puppy             0    0    0     0.0   (dog, bicycle)
#  8  dog                      (nothing)                  0    0    0     0.0   (dog, <none>)
#
# top1 = 2/8 = 0.25; top2 = 4/8 = 0.5; top1_exact = 1/8 = 0.125;
# hierarchy = (1 + 1 + 0.85 + 0.85 + 0.85 + 0.9 + 0 + 0) / 8 = 5.45 / 8 = 0.68125.
# per class (first truth, normalised): golden retriever n=2 top1 1/2 hier (1 + 0.85)/2 = 0.925;
# car n=1 1.0 1.0; coffee mug n=2 0.0 0.85; dog n=3 0.0 0.9/3.
# confusions: (coffee mug, mug) x2 first, then the count-1 pairs alphabetically by truth then
# prediction ('<' sorts before letters).
HAND_TRUTHS = [['golden retriever', 'dog'], ['car'], ['golden retriever'], ['coffee mug'],
               ['coffee mug'], ['dog'], ['dog'], ['dog']]
HAND_PREDICTIONS = [['Dogs', 'cat'], ['automobile'], ['retriever', 'golden retriever'],
                    ['mugs', 'cup'], ['Mug'], ['puppy', 'dog'], ['bicycle', 'puppy'], []]


@needs_wordnet
def test_hand_checked_report(scorer):
    assert scorer.match('cup', ['coffee mug']) == 'none'
    assert scorer.hierarchy_credit('mug', ['coffee mug']) == pytest.approx(0.85)
    report = scorer.score(HAND_PREDICTIONS, HAND_TRUTHS, k=2)
    assert report.n == 8 and report.k == 2
    assert report.top1 == pytest.approx(0.25)
    assert report.topk == pytest.approx(0.5)
    assert report.top1_exact == pytest.approx(0.125)
    assert report.hierarchy == pytest.approx(0.68125)
    assert report.per_class == {
        'car': ClassScore(1, 1.0, 1.0),
        'coffee mug': ClassScore(2, 0.0, pytest.approx(0.85)),
        'dog': ClassScore(3, 0.0, pytest.approx(0.9 / 3)),
        'golden retriever': ClassScore(2, 0.5, pytest.approx(0.925)),
    }
    assert report.confusions == [
        ('coffee mug', 'mug', 2),
        ('dog', NO_PREDICTION, 1),
        ('dog', 'bicycle', 1),
        ('dog', 'puppy', 1),
        ('golden retriever', 'retriever', 1),
    ]
    as_dict = report.to_dict()
    assert as_dict['per_class']['dog']['n'] == 3
    assert as_dict['confusions'][0] == {'truth': 'coffee mug', 'prediction': 'mug', 'count': 2}
    # k = 1 makes topk equal to top1
    assert scorer.score(HAND_PREDICTIONS, HAND_TRUTHS, k=1).topk == pytest.approx(0.25)


@needs_wordnet
def test_classes_are_shown_as_written_not_as_wordnet_lemmas(scorer):
    """WordNet's lemma of 'jeans' is 'jean' and of 'headphones' 'headphone': grouped by it, the
    report shows the word people wrote; 'mug' where someone wrote it, beside 'mugs' and 'Mug'."""
    truths = [['jeans'], ['Jeans'], ['headphones'], ['mug'], ['mugs'], ['Mug']]
    preds = [['headphones'], ['jeans'], ['jeans'], ['cup'], ['cups'], ['cup']]
    report = scorer.score(preds, truths, k=1)
    assert set(report.per_class) == {'jeans', 'headphones', 'mug'}
    assert report.per_class['jeans'].n == 2 and report.per_class['mug'].n == 3
    assert report.confusions == [('mug', 'cup', 3), ('headphones', 'jeans', 1), ('jeans', 'headphones', 1)]
    from novic_ros.eval.object_scoring import score_objects
    sets = score_objects(scorer, [['jeans', 'headphones'], ['trousers']], [['jeans'], ['Jeans', 'headphones']])
    assert set(sets.per_class) == {'jeans', 'headphones', 'trousers'} and sets.wrong == {'headphones': 1, 'trousers': 1}


def test_score_rejects_bad_input():
    plain = Scorer(None)
    with pytest.raises(ValueError, match='1 predictions for 2 truths'):
        plain.score([['a']], [['a'], ['b']], k=1)
    with pytest.raises(ValueError, match='k must be >= 1, got 0'):
        plain.score([['a']], [['a']], k=0)
    with pytest.raises(ValueError, match='at least one truth noun'):
        plain.score([['a']], [[]], k=1)
    empty = plain.score([], [], k=5)
    assert (empty.n, empty.top1, empty.confusions) == (0, 0.0, [])


def test_confusions_are_capped_at_20():
    plain = Scorer(None)
    truths = [[f'class{i:02d}'] for i in range(30)]
    report = plain.score([['wrong']] * 30, truths, k=1)
    assert len(report.confusions) == 20
    assert report.confusions[0] == ('class00', 'wrong', 1)


@needs_wordnet
def test_scoring_10k_frames_is_fast(wn):
    """Fresh scorer, 10k frames over 400 object labels, 5 ranked predictions each."""
    rng = random.Random(0)
    labels = sorted({s.lemmas[0] for s in wn.all_synsets()
                     if s.lexname in ('noun.animal', 'noun.artifact', 'noun.food')})
    vocab = rng.sample(labels, 400)
    truths = [[rng.choice(vocab)] for _ in range(10_000)]
    predictions = [[t[0] if rng.random() < 0.3 else rng.choice(vocab) for _ in range(5)] for t in truths]
    start = time.perf_counter()
    report = Scorer(wn).score(predictions, truths, k=5)
    assert time.perf_counter() - start < 5.0
    assert report.n == 10_000 and 0.25 < report.top1 < 0.4 and report.topk > report.top1


# -- annotation files ------------------------------------------------------------------------

ANNOTATION_TEXT = """\
# ground truth for a test bag
topic,frame,nouns

,0,golden retriever;dog
/cam,1700000000.000000042, coffee mug ; mug ;
  # indented comment
"/cam,left",3,bicycle
"""


def test_load_annotations_with_index_stamp_comments(tmp_path):
    path = tmp_path / 'truth.csv'
    path.write_text(ANNOTATION_TEXT)
    rows = load_annotations(path)
    assert rows == [
        Annotation(FrameKey('', 0, None), ('golden retriever', 'dog'), 4),
        Annotation(FrameKey('/cam', None, 1700000000_000000042), ('coffee mug', 'mug'), 5),
        Annotation(FrameKey('/cam,left', 3, None), ('bicycle',), 7),
    ]


@pytest.mark.parametrize('row, message', [
    (',1,dog,cat', 'expected 3 columns'),
    (',1', 'expected 3 columns'),
    (',1.5,dog', 'bad frame'),
    (',1700000000.42,dog', 'bad frame'),   # not 9 digits after the dot
    (',-1,dog', 'bad frame'),
    (',x,dog', 'bad frame'),
    (',1, ; ;', 'no nouns'),
    (',1,', 'no nouns'),
])
def test_malformed_rows_name_the_line(tmp_path, row, message):
    path = tmp_path / 'bad.csv'
    path.write_text(f"topic,frame,nouns\n# fine so far\n,0,dog\n{row}\n")
    with pytest.raises(AnnotationError, match=message) as info:
        load_annotations(path)
    assert f'{path}:4:' in str(info.value)


def test_missing_header_is_an_error(tmp_path):
    path = tmp_path / 'noheader.csv'
    path.write_text("# comment\n,0,dog\n")
    with pytest.raises(AnnotationError, match=r':2: expected the header'):
        load_annotations(path)


def test_frame_values():
    assert parse_frame('12') == (12, None)
    assert parse_frame('1700000000.000000042') == (None, 1_700_000_000_000_000_042)
    assert format_stamp(1_700_000_000_000_000_042) == '1700000000.000000042'
    with pytest.raises(ValueError, match='exactly one of index and stamp_ns'):
        FrameKey('', None, None)


@dataclass
class Frame:
    topic: str
    index: int
    stamp_ns: int


def bag(*topics: tuple[str, int]) -> list[Frame]:
    """Frames of several topics, interleaved in bag order, stamps 1 s apart per topic."""
    frames = []
    for i in range(max(n for _, n in topics)):
        for topic, n in topics:
            if i < n:
                frames.append(Frame(topic, i, (1_700_000_000 + i) * 1_000_000_000))
    return frames


def ann(topic: str, index: int | None, stamp: int | None, line: int, *nouns: str) -> Annotation:
    return Annotation(FrameKey(topic, index, stamp), nouns or ('dog',), line)


def test_match_single_topic_by_index_and_stamp():
    frames = bag(('/cam', 4))
    rows = [ann('', 1, None, 2), ann('/cam', None, 1_700_000_003_000_000_000, 3, 'cat'),
            ann('', 9, None, 4), ann('/cam', None, 5, 5)]
    matched, warnings = match_annotations(rows, frames)
    assert matched == {1: rows[0], 3: rows[1]}
    assert len(warnings) == 1       # the rows naming frames the bag does not hold: one line per topic
    assert '2 rows (lines 4..5)' in warnings[0] and "'/cam'" in warnings[0] and '4 frames were' in warnings[0]
    one, [warning] = match_annotations(rows[:3], frames)      # a single such row keeps its own detail
    assert one == {1: rows[0], 3: rows[1]}
    assert 'line 4' in warning and 'frame 9' in warning and '4 frames' in warning
    _, [warning] = match_annotations([rows[3]], frames)
    assert 'line 5' in warning and '0.000000005' in warning and '4 frames' in warning


def test_a_truncated_bag_gives_one_summary_line():
    """85 annotations of frames a truncated bag lost: one warning naming the count, lines and span."""
    frames = bag(('/cam', 15))
    rows = [ann('/cam', i, None, i + 2) for i in range(100)]
    matched, warnings = match_annotations(rows, frames)
    assert sorted(matched) == list(range(15))
    assert warnings == ["85 rows (lines 17..101) name frames of topic '/cam' that were not read from the bag "
                        "(15 frames were, indices 0..14): a truncated bag, or annotations of another recording; "
                        "those rows are not scored"]


def test_match_several_topics():
    frames = bag(('/left', 3), ('/right', 2))  # positions: L0 R0 L1 R1 L2
    rows = [ann('', 0, None, 2), ann('/right', 1, None, 3), ann('/left', 2, None, 4),
            ann('/right', 2, None, 5), ann('/nope', 0, None, 6), ann('/left', 2, None, 7)]
    matched, warnings = match_annotations(rows, frames)
    assert matched == {3: rows[1], 4: rows[2]}
    assert len(warnings) == 4
    assert 'line 2' in warnings[0] and 'empty' in warnings[0] and '/left' in warnings[0]
    assert 'line 6' in warnings[1] and '/nope' in warnings[1]
    assert 'line 7' in warnings[2] and 'line 4' in warnings[2]  # duplicate: first row wins
    assert 'line 5' in warnings[3] and 'frame 2' in warnings[3] and '2 frames' in warnings[3]   # frames not read, last


def test_format_load_round_trip(tmp_path):
    """What format_annotations writes (make-bag's annotation file) loads back row for row; rows the
    loader would refuse are refused when written."""
    path = tmp_path / 'out.csv'
    rows = [('', 0, ['golden retriever', 'dog']), ('/cam', '1700000000.000000042', ['mug']),
            ('/cam,left', '7', ('bicycle',))]
    path.write_text(format_annotations(rows), encoding='utf-8')
    loaded = load_annotations(path)
    assert [a.key for a in loaded] == [FrameKey('', 0, None), FrameKey('/cam', None, 1700000000_000000042),
                                       FrameKey('/cam,left', 7, None)]
    assert [a.nouns for a in loaded] == [('golden retriever', 'dog'), ('mug',), ('bicycle',)]
    with pytest.raises(ValueError, match="without ';', got \\['a;b'\\]"):
        format_annotations([('', 0, ['a;b'])])
    with pytest.raises(ValueError, match='one or more non-empty nouns'):
        format_annotations([('', 0, [])])
    with pytest.raises(ValueError, match="bad frame '1.5'.*9 digits"):
        format_annotations([('', '1.5', ['dog'])])
