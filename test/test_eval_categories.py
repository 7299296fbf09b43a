"""novic-eval scores category accuracy beside the fine one (eval/category_scoring.py through cli/eval.py)."""
from __future__ import annotations

import json

import pytest

from novic_ros.cli.eval import main as eval_main
from novic_ros.cli.toy import main as toy_main
from novic_ros.eval.make_bag import make_bag
from novic_ros.lexicon.categories import CategoryMap
from conftest import needs_wordnet

pytestmark = needs_wordnet
NOUNS = ['dog', 'wolf', 'pizza', 'apple', 'tractor', 'bus', 'chair', 'tree', 'hammer', 'trophy']


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    d = tmp_path_factory.mktemp('cat_eval')
    assert toy_main(['render', str(d / 'imgs'), '--size', '120x160', '--seed', '5', '--nouns', *NOUNS]) == 0
    return make_bag(d / 'imgs', d / 'bag', progress=False).bag


def test_offline_reports_category_accuracy_as_counted_by_hand(bag, tmp_path, wordnet):
    out = tmp_path / 'report'
    assert eval_main(['offline', str(bag), '--out', str(out), '--backend', 'torch', '--no-progress']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    rows = [json.loads(line) for line in (out / 'labels.jsonl').read_text().splitlines()]
    cats = CategoryMap(wordnet)
    # by hand: the category whose labels' probabilities sum highest, against the rendered noun's
    right = 0
    for row, noun in zip(rows, NOUNS):
        scores = cats.scores((l['label'], l['score']) for l in row['labels'])
        right += scores[0][0] == cats.category_of(noun)
    category = summary['category_score']
    assert category['n'] == len(NOUNS) and category['accuracy'] == pytest.approx(right / len(NOUNS))
    assert category['per_category']['animal']['n'] == 2 and category['per_category']['other']['n'] == 1  # trophy
    # coarse is easier than fine: the toy decoder confuses neighbours within a category
    assert category['accuracy'] >= summary['score']['top1']
    report = (out / 'report.md').read_text()
    assert '## Category accuracy' in report and f"| category accuracy | {category['accuracy']:.1%} |" in report


def test_a_custom_list_and_a_bad_category(bag, tmp_path, capsys):
    out = tmp_path / 'r'
    assert eval_main(['offline', str(bag), '--out', str(out), '--backend', 'torch', '--no-progress',
                      '--categories', 'animal', 'vehicle']) == 0
    category = json.loads((out / 'summary.json').read_text())['category_score']
    assert category['categories'] == ['animal', 'vehicle', 'other']
    assert set(category['per_category']) == {'animal', 'vehicle', 'other'}
    assert category['per_category']['other']['n'] == 7     # bus too: WordNet files it under public transport
    # a category WordNet does not have fails before the model loads, naming it
    assert (
        eval_main(['offline', str(bag), '--out', str(tmp_path / 'x'), '--no-progress', '--categories', 'vehicel']) == 1
    )
    assert "WordNet has no noun 'vehicel'" in capsys.readouterr().err and not (tmp_path / 'x').exists()
