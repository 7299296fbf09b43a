"""Coarse categories over WordNet (lexicon/categories.py) and the senses of free-text labels
(lexicon/label_senses.py), against Debian's wordnet-base files."""
from __future__ import annotations

import pytest

from novic_ros.lexicon.categories import (
    DEFAULT_CATEGORIES, OTHER, CategoryMap, check_specs, parse_spec, resolve_categories, resolve_spec,
)
from novic_ros.lexicon.label_senses import LabelSenses, normalise_label, synset_name
from novic_ros.lexicon.wordnet import WordNet
from conftest import needs_wordnet

pytestmark = needs_wordnet


@pytest.fixture(scope='module')
def wn(wordnet) -> WordNet:
    return wordnet


@pytest.fixture(scope='module')
def cats(wn) -> CategoryMap:
    return CategoryMap(wn)


@pytest.mark.parametrize('label, category', [
    ('dog', 'animal'), ('tractor', 'vehicle'), ('pizza', 'food'),          # the pairs
    ('golden retriever', 'animal'), ('bus', 'vehicle'), ('apple', 'food'), ('sofa', 'furniture'),
    ('boot', 'clothing'), ('bottle', 'container'), ('screwdriver', 'tool'), ('laptop', 'device'),
    ('refrigerator', 'device'), ('woman', 'person'), ('sunflower', 'plant'),
])
def test_known_wordnet_pairs(cats, label, category):
    assert cats.category_of(label) == category


@pytest.mark.parametrize('label', ['blorptangle', 'firetruck', 'smartphone', ''])
def test_a_label_outside_the_dictionary_is_other(cats, label):
    result = cats.categorise(label)
    assert result.category == OTHER and result.sense == '' and result.hypernyms == ()


def test_a_noun_under_no_listed_category_is_other(cats):
    result = cats.categorise('happiness')
    assert result.category == OTHER and result.sense == 'happiness.n.01'
    assert result.hypernyms[-1] == 'entity'


@pytest.mark.parametrize('label, category, matched', [
    ('red bicycle', 'vehicle', 'bicycle'),          # not in WordNet: its head noun is
    ('big red fire truck', 'vehicle', 'fire truck'),
    ('hot dogs', 'food', 'hot dog'),                # a WordNet compound, plural
    ('coffee mugs', 'container', 'coffee mug'),
    ('Golden_Retrievers', 'animal', 'golden retriever'),
    ('a dog', 'animal', 'dog'),
    ('mice', 'animal', 'mouse'),
    ('T-shirt', 'clothing', 't-shirt'),
])
def test_plural_multi_word_and_spelled_labels(cats, label, category, matched):
    result = cats.categorise(label)
    assert (result.category, result.matched) == (category, matched)


def test_several_senses_evidence_first_then_the_list(wn, cats):
    # WordNet's tag counts decide where they can: 'mouse' the animal (14 tags) over the device (0)
    assert cats.categorise('mouse').sense == 'mouse.n.01' and cats.category_of('mouse') == 'animal'
    # ... and 'glass' the material (22) over the drinking glass (12), though that one is a container
    assert cats.categorise('glass').sense == 'glass.n.01' and cats.category_of('glass') == OTHER
    # 'mug': no sense was ever tagged; WordNet lists a face first, the list picks the container
    assert LabelSenses(wn).lookup('mug').synset == wn.synsets('mug')[2].offset     # countenance
    assert cats.categorise('mug').sense == 'mug.n.04' and cats.category_of('mug') == 'container'
    # ...and in the list's order of priority: put body parts first and the face wins
    assert CategoryMap(wn, ['body part', 'container']).category_of('mug') == 'body part'
    assert CategoryMap(wn, ['container', 'body part']).category_of('mug') == 'container'
    # 'turtle' (a turtleneck or the animal, never tagged): animal is listed before clothing
    assert cats.categorise('turtle').sense == 'turtle.n.02' and cats.category_of('turtle') == 'animal'
    # 'hammer' (a gun's striker or the hand tool, tagged twice each): tool is listed before device
    assert cats.category_of('hammer') == 'tool' and cats.categorise('hammer').sense == 'hammer.n.02'
    assert CategoryMap(wn, ['device', 'tool=implement.n.01']).category_of('hammer') == 'device'


def test_nearest_listed_ancestor_wins_and_ties_go_to_the_first_listed(wn):
    fine = CategoryMap(wn, ['animal', 'dog'])
    assert fine.category_of('golden retriever') == 'dog' and fine.category_of('cat') == 'animal'
    assert fine.category_of('dog') == 'dog'                     # a listed noun is its own category
    # a car is a wheeled vehicle, which WordNet puts under both vehicle and container, one link up
    assert CategoryMap(wn, ['container', 'vehicle']).category_of('car') == 'container'
    assert CategoryMap(wn, ['vehicle', 'container']).category_of('car') == 'vehicle'


def test_hypernym_chain_runs_through_the_category(cats):
    result = cats.categorise('golden retriever')
    assert result.sense == 'golden_retriever.n.01'
    chain = list(result.hypernyms)
    assert chain[0] == 'retriever' and chain[-1] == 'entity'
    assert chain.index('dog') < chain.index('animal')
    # a bicycle's first hypernym path would not mention its category's synset; this chain does
    assert 'vehicle' in cats.categorise('bicycle').hypernyms
    assert cats.categorise('dog').to_json() == {'category': 'animal', 'sense': 'dog.n.01',
                                                'hypernyms': list(cats.categorise('dog').hypernyms)}


def test_one_hypernym_chain_everywhere(wn, cats, capsys):
    """'dog' has two hypernyms (canine, domestic animal): the category's chain, which --json and
    the node give, novic-nouns show and the README's example are one and the same chain."""
    import json
    import re
    from pathlib import Path
    from novic_ros.cli.nouns import main as nouns_main
    chain = list(cats.categorise('dog').hypernyms)
    first_hypernyms = [wn.synset(o).name for o in wn.hypernym_path(wn.synsets('dog')[0].offset)[1:]]
    assert chain == first_hypernyms and chain[:2] == ['canine', 'carnivore'] and 'domestic animal' not in chain
    assert nouns_main(['show', 'dog']) == 0
    assert f"hypernyms: {' > '.join(chain)}\n" in capsys.readouterr().out
    readme = (Path(__file__).resolve().parent.parent / 'README.md').read_text()
    example = re.search(r'"label": "dog".*?"hypernyms": (\[[^\]]*\])', readme, re.S)
    assert example is not None and json.loads(example.group(1)) == chain


def test_a_chain_through_a_category_follows_the_first_hypernyms_that_reach_it(wn):
    dog = wn.synsets('dog')[0].offset
    domestic = next(h for h in wn.synset(dog).hypernyms if wn.synset(h).name == 'domestic animal')
    # through 'domestic animal', only its branch leads there; the chain then goes on by first hypernyms
    path = [wn.synset(o).name for o in wn.hypernym_path(dog, through=[domestic])]
    assert path[:3] == ['dog', 'domestic animal', 'animal'] and path[-1] == 'entity'
    with pytest.raises(ValueError, match='hypernym'):
        wn.hypernym_path(dog, through=[wn.synsets('tractor')[0].offset])


def test_category_scores_sum_the_probabilities_of_labels_under_each(cats):
    scores = cats.scores([('dog', 0.4), ('wolf', 0.2), ('tractor', 0.25), ('blorptangle', 0.1), ('cat', 0.05)])
    assert [name for name, _ in scores] == ['animal', 'vehicle', OTHER]
    assert dict(scores) == pytest.approx({'animal': 0.65, 'vehicle': 0.25, OTHER: 0.1})
    assert cats.scores([]) == []


def test_classify_json_gives_each_label_its_category_and_chain(tmp_path, capsys, cats):
    import json
    from PIL import Image
    from novic_ros.cli.classify import main as classify_main
    from novic_ros.training import toy_world
    image = tmp_path / 'dog.png'
    Image.fromarray(toy_world.render_set(1, (64, 64), seed=0, classes=[0])[0].image).save(image)
    labels = ['dog', 'wolf', 'tractor', 'pizza', 'blorptangle']
    assert classify_main([str(image), '--json', '--backend', 'torch', '--mode', 'prompted', '--labels', *labels,
                          '--top-k', '5']) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert {l['label'] for l in out['labels']} == set(labels)
    for l in out['labels']:
        expected = cats.categorise(l['label'])
        assert (l['category'], l['sense'], l['hypernyms']) == (
            expected.category,
            expected.sense,
            list(expected.hypernyms),
        )
    by_label = {l['label']: l for l in out['labels']}
    assert by_label['tractor']['category'] == 'vehicle' and 'vehicle' in by_label['tractor']['hypernyms']
    assert by_label['blorptangle'] == {**by_label['blorptangle'], 'category': 'other', 'sense': '', 'hypernyms': []}
    scores = {c['category']: c['score'] for c in out['categories']}
    assert scores['animal'] == pytest.approx(by_label['dog']['score'] + by_label['wolf']['score'], abs=2e-6)
    assert [c['score'] for c in out['categories']] == sorted(scores.values(), reverse=True)
    # a category WordNet does not have stops the tool before the model loads, naming it
    assert classify_main([str(image), '--json', '--categories', 'animal', 'vehicel']) == 1
    assert "WordNet has no noun 'vehicel'" in capsys.readouterr().err


# -- the category list ----------------------------------------------------------------------

@pytest.mark.parametrize('spec, gloss_words', [
    ('person', 'human being'), ('animal', 'living organism'), ('plant.n.02', 'botany'),
    ('food.n.01', 'metabolized'), ('food.n.02', 'solid substance'), ('vehicle', 'conveyance'),
    ('vehicle=public_transport.n.01', 'passengers'), ('furniture', 'furnishings'),
    ('clothing', 'worn'), ('clothing=footwear.n.02', 'feet'), ('container', 'hold things'),
    ('tool=implement.n.01', 'instrumentation'), ('device', 'invented for a particular purpose'),
    ('device=electronic_equipment.n.01', 'electrons'), ('device=home_appliance.n.01', 'in the home'),
])
def test_each_default_category_is_the_sense_meant(wn, spec, gloss_words):
    assert spec in DEFAULT_CATEGORIES
    name, offset = resolve_spec(wn, spec)
    assert gloss_words in wn.synset(offset).gloss
    assert name == spec.split('=')[0].split('.')[0]


def test_default_list_covers_every_entry_and_merges_names(wn, cats):
    assert len(DEFAULT_CATEGORIES) == sum(len(c.synsets) for c in cats.categories)
    assert cats.names == ('person', 'animal', 'plant', 'food', 'vehicle', 'furniture', 'clothing',
                          'container', 'tool', 'device', OTHER)
    assert 'plant.n.02 ((botany) a living organism' in cats.describe()


def test_spec_forms_resolve_to_the_same_synset(wn):
    plant = wn.synsets('plant')[1].offset
    assert resolve_spec(wn, 'plant.n.02') == ('plant', plant)
    assert resolve_spec(wn, f'n{plant:08d}') == ('plant', plant)
    assert resolve_spec(wn, f'flora=n{plant:08d}') == ('flora', plant)
    assert resolve_spec(wn, ' Golden_Retriever ') == ('golden retriever', wn.synsets('golden retriever')[0].offset)
    assert resolve_spec(wn, 'automobile.n.01')[1] == wn.synsets('car')[0].offset
    assert synset_name(wn, plant) == 'plant.n.02'


@pytest.mark.parametrize('spec, message', [
    ('vehicel', "WordNet has no noun 'vehicel'"),
    ('vehicles', "did you mean 'vehicle'"),
    ('plant.n.09', r"'plant' has 4 noun senses: plant.n.01: buildings for carrying on industrial labor"),
    ('n99999999', 'no noun synset at offset 99999999'),
    ('dog.v.01', 'not understood'),
    ('=dog', 'not understood'),
    ('other=dog', 'reserved'),
])
def test_bad_categories_say_what_is_wrong(wn, spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_categories(wn, [spec])


def test_syntax_check_needs_no_wordnet():
    check_specs(DEFAULT_CATEGORIES)
    assert parse_spec('vehicle=public_transport.n.01') == ('vehicle', 'public_transport', 1, None)
    with pytest.raises(ValueError, match='noun.n.NN'):
        check_specs(['animal', 'dog.n.x'])


# -- label senses -----------------------------------------------------------------------------

def test_merge_key_joins_synonyms_only(wn):
    senses = LabelSenses(wn)
    assert senses.merge_key('car') == senses.merge_key('automobiles') == senses.merge_key('Auto')
    assert senses.merge_key('mug') != senses.merge_key('cup')
    assert senses.merge_key('toy car') != senses.merge_key('car')          # a head match is not a synonym
    assert senses.merge_key('Blorp  Tangle') == senses.merge_key('blorp_tangle') == 'blorp tangle'


def test_normalise_label():
    assert normalise_label('  The_Golden  Retriever ') == 'golden retriever'
    assert normalise_label('a') == 'a'


# -- category accuracy (novic-eval) -------------------------------------------------------------

def test_category_accuracy_counts_the_summed_category_against_the_truths(cats):
    from novic_ros.eval.category_scoring import NO_PREDICTION, score_categories
    predictions = [
        [('golden retriever', 0.5), ('tractor', 0.3)],             # animal: right
        [('tractor', 0.4), ('wolf', 0.3), ('fox', 0.25)],          # animals sum to 0.55: animal, wrong
        [('pizza', 0.9)],                                          # truth 'bread' or 'car': food matches
        [],                                                        # no labels: wrong
        [('blorptangle', 0.6), ('happiness', 0.3)],                # other, truth other: right
    ]
    truths = [['dog'], ['tractor'], ['bread', 'car'], ['cat'], ['sky']]
    score = score_categories(cats, predictions, truths)
    assert score.n == 5 and score.accuracy == pytest.approx(3 / 5)
    assert score.per_category['animal'].n == 2 and score.per_category['animal'].accuracy == 0.5
    assert score.per_category['vehicle'].accuracy == 0.0 and score.per_category['other'].accuracy == 1.0
    assert list(score.per_category) == ['animal', 'food', 'vehicle', 'other']     # in the list's order
    assert sorted(score.confusions) == [('animal', NO_PREDICTION, 1), ('vehicle', 'animal', 1)]
    assert score.to_dict()['confusions'][0]['count'] == 1
    assert '| category accuracy | 60.0% |' in score.markdown()
    with pytest.raises(ValueError, match='truth'):
        score_categories(cats, [[('dog', 1.0)]], [[]])
