"""WordNet reader, noun dictionary and novic-nouns CLI, against Debian's wordnet-base files."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from novic_ros.cli.nouns import main as nouns_main
from novic_ros.lexicon.nouns import (
    OBJECT_LEXNAMES, NounEntry, build_dictionary, dictionary_summary, load_dictionary,
    lookup_entry, physical_object_filter, save_dictionary,
)
from novic_ros.lexicon.wordnet import LEXNAMES, ROOT_ENV, NounData, WordNet, read_data, resolve_root

WORDNET_DIR = resolve_root()
pytestmark = pytest.mark.skipif(
    not (WORDNET_DIR / 'data.noun').is_file(),
    reason=f"WordNet 3.0 not installed in {WORDNET_DIR} (apt-get install wordnet-base)")

DOG = 2084071  # dog, domestic dog, Canis familiaris


@pytest.fixture(scope='module')
def wn() -> WordNet:
    start = time.perf_counter()
    wordnet = WordNet.load()
    # loading is on the path of every CLI call and test run; keep it well under 10 s
    assert time.perf_counter() - start < 10
    return wordnet


@pytest.fixture(scope='module')
def dictionary(wn: WordNet) -> list[NounEntry]:
    return build_dictionary(wn)


@pytest.fixture(scope='module')
def labels(dictionary: list[NounEntry]) -> dict[str, NounEntry]:
    return {e.label: e for e in dictionary}


def first_offset(wn: WordNet, lemma: str) -> int:
    return wn.synsets(lemma)[0].offset


# -- WordNet reader ------------------------------------------------------------------------

def test_lexnames_match_the_man_page():
    assert len(LEXNAMES) == 45 and len(set(LEXNAMES)) == 45
    assert LEXNAMES[0] == 'adj.all'
    assert LEXNAMES[3] == 'noun.Tops'
    assert LEXNAMES[5] == 'noun.animal'
    assert LEXNAMES[6] == 'noun.artifact'
    assert LEXNAMES[18] == 'noun.person'
    assert LEXNAMES[27] == 'noun.substance'
    assert LEXNAMES[28] == 'noun.time'
    assert LEXNAMES[44] == 'adj.ppl'


def test_missing_files_name_the_package(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match='apt-get install wordnet-base'):
        WordNet.load(tmp_path)


def test_env_var_overrides_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        WordNet.load()


def test_all_noun_synsets_load_with_consistent_pointers(wn: WordNet):
    synsets = list(wn.all_synsets())
    assert len(synsets) == 82115  # WordNet 3.0 nouns
    for s in synsets[::97]:
        for h in s.hypernyms:
            assert s.offset in wn.synset(h).hyponyms


def test_first_sense_of_dog_is_the_domestic_dog(wn: WordNet):
    dog = wn.synsets('dog')[0]
    assert dog.offset == DOG and dog.name == 'dog'
    assert dog.lexname == 'noun.animal'
    assert dog.lemmas == ('dog', 'domestic dog', 'Canis familiaris')
    assert 'domesticated' in dog.gloss
    assert 'canine' in [wn.synset(h).name for h in dog.hypernyms]
    closure = wn.hypernym_closure(DOG)
    assert first_offset(wn, 'animal') in closure
    assert first_offset(wn, 'organism') in closure
    assert DOG not in closure


def test_synsets_accepts_spaces_underscores_and_case(wn: WordNet):
    senses = wn.synsets('hot dog')
    assert len(senses) == 3
    assert wn.synsets('Hot_Dog') == senses
    assert wn.synsets('no such noun') == []


def test_instance_synsets_are_marked(wn: WordNet):
    paris = wn.synsets('Paris')[0]
    assert paris.is_instance and paris.name == 'Paris'
    assert not wn.synset(DOG).is_instance


def test_tag_counts_come_from_cntlist(wn: WordNet):
    assert wn.tag_count(DOG, 'dog') == 42  # dog%1:05:00:: 1 42
    assert wn.tag_count(DOG, 'domestic dog') == 0
    assert wn.synset_tag_count(DOG) == 42
    with pytest.raises(ValueError):
        wn.tag_count(DOG, 'cat')


def test_is_a(wn: WordNet):
    assert wn.is_a(DOG, first_offset(wn, 'animal'))
    assert not wn.is_a(DOG, first_offset(wn, 'vehicle'))
    assert wn.is_a(first_offset(wn, 'bicycle'), first_offset(wn, 'vehicle'))


@pytest.mark.parametrize('word, base', [
    ('dogs', 'dog'), ('mice', 'mouse'), ('geese', 'goose'), ('buses', 'bus'), ('cities', 'city'),
    ('boxes', 'box'), ('firemen', 'fireman'), ('hot dogs', 'hot dog'), ('Dogs', 'dog'),
    ('glasses', 'glasses'), ('dog', 'dog'),
])
def test_morphy(wn: WordNet, word: str, base: str):
    assert wn.morphy(word) == base


def test_morphy_unknown_word(wn: WordNet):
    assert wn.morphy('xyzzies') is None
    assert wn.morphy_candidates('glasses') == ['glasses', 'glass']


@pytest.mark.parametrize('noun, plural', [
    ('mouse', 'mice'), ('bus', 'buses'), ('hot dog', 'hot dogs'), ('city', 'cities'),
    ('child', 'children'), ('box', 'boxes'), ('knife', 'knives'), ('goose', 'geese'),
    ('fireman', 'firemen'), ('sheep', 'sheep'), ('boy', 'boys'), ('glasses', 'glasses'),
    ('potato', 'potatoes'), ('brother', 'brothers'), ('gas', 'gases'), ('mother-in-law', 'mothers-in-law'),
])
def test_plural(wn: WordNet, noun: str, plural: str):
    assert wn.plural(noun) == plural


def test_hypernym_path_reaches_entity(wn: WordNet):
    names = [wn.synset(o).name for o in wn.hypernym_path(DOG)]
    assert names[:3] == ['dog', 'canine', 'carnivore']
    assert names[-1] == 'entity'


# -- noun dictionary -----------------------------------------------------------------------

def test_default_dictionary_size_and_uniqueness(dictionary: list[NounEntry]):
    assert 20_000 <= len(dictionary) <= 60_000
    keys = [e.label.lower() for e in dictionary]
    assert len(set(keys)) == len(keys)
    assert [e.label for e in dictionary] == sorted((e.label for e in dictionary), key=str.lower)


def test_dictionary_keeps_common_objects(labels: dict[str, NounEntry]):
    for label in ('dog', 'bicycle', 'pineapple', 'golden retriever', 'car', 'banana', 'water', 'person', 'wasp'):
        assert label in labels, label
    assert labels['dog'].synset == DOG
    assert labels['dog'].hypernyms == ('canine', 'domestic animal')
    assert labels['dog'].synonyms == ('domestic dog',)  # 'Canis familiaris' is capitalised
    assert labels['bicycle'].lexname == 'noun.artifact'


def test_dictionary_drops_abstract_and_proper_nouns(wn: WordNet, labels: dict[str, NounEntry]):
    for label in ('happiness', 'justice', 'paris', 'Paris', 'einstein', 'idea', 'dicot family'):
        assert label not in labels, label
    assert not any(c.isupper() for label in labels for c in label)
    assert all(e.lexname in OBJECT_LEXNAMES for e in labels.values())
    assert not any(wn.synset(e.synset).is_instance for e in labels.values())


def test_dictionary_lemma_rules(labels: dict[str, NounEntry]):
    for label, entry in labels.items():
        assert len(label.split()) <= 3
        assert not any(c.isdigit() or c in './,()' for c in label), label
        assert label.lower() not in (s.lower() for s in entry.synonyms)


def test_shared_lemmas_go_to_the_preferred_sense(labels: dict[str, NounEntry]):
    assert labels['mouse'].lexname == 'noun.animal'
    assert labels['computer mouse'].lexname == 'noun.artifact'
    assert 'mouse' in labels['computer mouse'].synonyms
    # 'hotdog' the show-off is listed first in WordNet, but a thing beats a person
    assert labels['hotdog'].lexname == 'noun.food'


def test_dictionary_options(wn: WordNet, dictionary: list[NounEntry]):
    single = build_dictionary(wn, max_words=1)
    assert single and all(' ' not in e.label for e in single)
    tagged = build_dictionary(wn, min_freq=2, first_senses=False)
    assert 1_000 < len(tagged) < len(dictionary)
    assert all(e.freq > 2 for e in tagged)


def test_physical_object_filter(wn: WordNet):
    assert physical_object_filter(wn, wn.synset(DOG))
    assert not physical_object_filter(wn, wn.synsets('happiness')[0])
    assert not physical_object_filter(wn, wn.synsets('Paris')[0])  # instance
    assert not physical_object_filter(wn, wn.synsets('genus Canis')[0])  # taxon, a group
    assert physical_object_filter(wn, wn.synsets('person')[0])  # noun.Tops, but concrete
    assert not physical_object_filter(wn, wn.synsets('location')[0], lexnames=['noun.animal'])


def test_save_load_round_trip(dictionary: list[NounEntry], tmp_path: Path):
    path = tmp_path / 'sub' / 'nouns.jsonl'
    save_dictionary(dictionary, path)
    assert sum(1 for _ in open(path)) == len(dictionary)
    assert load_dictionary(path) == dictionary


def test_load_rejects_bad_lines(tmp_path: Path):
    path = tmp_path / 'bad.jsonl'
    path.write_text('{"label": "dog", "synset": 1}\nnot json\n')
    with pytest.raises(ValueError, match=':2:'):
        load_dictionary(path)


def test_summary(dictionary: list[NounEntry]):
    summary = dictionary_summary(dictionary)
    assert summary['count'] == len(dictionary)
    assert sum(summary['lexnames'].values()) == len(dictionary)
    assert summary['lexnames']['noun.artifact'] > summary['lexnames']['noun.substance'] > 0
    assert 0.2 < summary['multi_word_share'] < 0.7


def test_lookup_entry(wn: WordNet):
    ladybug = lookup_entry(wn, 'ladybug')
    assert ladybug is not None and ladybug.label == 'ladybug'
    assert ladybug.lexname == 'noun.animal'
    assert 'ladybird' in ladybug.synonyms and ladybug.hypernyms == ('beetle',)

    hot_dog = lookup_entry(wn, 'hot dog')
    assert hot_dog is not None and hot_dog.label == 'hot dog'
    assert hot_dog.lexname == 'noun.food'
    assert 'hot dog' not in hot_dog.synonyms and 'hotdog' in hot_dog.synonyms

    dogs = lookup_entry(wn, 'dogs')
    assert dogs is not None and dogs.synset == DOG and 'dog' in dogs.synonyms
    assert lookup_entry(wn, 'xyzzy') is None


# -- CLI -----------------------------------------------------------------------------------

def test_cli_build_writes_a_loadable_dictionary(tmp_path: Path, dictionary: list[NounEntry],
                                                capsys: pytest.CaptureFixture):
    out = tmp_path / 'nouns.jsonl'
    assert nouns_main(['build', '--out', str(out)]) == 0
    assert load_dictionary(out) == dictionary
    assert f'wrote {len(dictionary)} labels' in capsys.readouterr().out


def test_cli_show(capsys: pytest.CaptureFixture):
    assert nouns_main(['show', 'hot dogs']) == 0
    out = capsys.readouterr().out
    assert 'noun.food' in out and out.rstrip().endswith('on a bun')
    # The category's sense among the tied ones (the sausage, not the sandwich), and its chain:
    # the same as novic-classify --json gives (test_one_hypernym_chain_everywhere).
    assert 'category:  food (default categories; sense frank.n.02)' in out
    assert 'hypernyms: sausage > meat > food > solid > matter > physical entity > entity' in out


@pytest.mark.parametrize('argv', [
    ['show', 'xyzzy'],
    ['build'],
    ['build', '--out', 'x.jsonl', '--max-words', '0'],
    ['frobnicate'],
])
def test_cli_errors_are_one_line_and_exit_1(argv: list[str], capsys: pytest.CaptureFixture):
    assert nouns_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith('novic-nouns: error: ') and err.count('\n') == 1


def test_cli_missing_wordnet(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert nouns_main(['show', 'dog', '--wordnet', str(tmp_path)]) == 1
    assert 'wordnet-base' in capsys.readouterr().err


def test_synsets_read_by_offset_equal_the_whole_file_parsed():
    """NounData reads one line per lookup (the offset is the line's byte offset); every synset and
    its lex_ids equal what the one-pass parse of data.noun gives, and an offset where no synset
    line starts (inside a line, the license header, past the end) is a KeyError."""
    path = WORDNET_DIR / 'data.noun'
    synsets, lex_ids = read_data(path)
    lazy = NounData(path)
    for offset, synset in synsets.items():
        assert lazy[offset] == (synset, lex_ids[offset])
    for bad in (0, 5, DOG + 1, path.stat().st_size, path.stat().st_size + 10, -1):
        with pytest.raises(KeyError):
            lazy[bad]
    fresh = NounData(path)
    assert fresh[DOG][0].name == 'dog' and list(fresh.all()) == list(synsets)   # file order after lookups
