"""CLIP's tokenizer without torch gives open_clip's ids and text, on the whole noun dictionary in
prompts, unicode, HTML entities, special-token look-alikes and text longer than the context."""
import numpy as np
import pytest
from open_clip.tokenizer import SimpleTokenizer

from novic_ros.core.clip_bpe import ClipBPE, open_clip_vocab_file
from novic_ros.core.label_tokens import LabelVocab
from novic_ros.lexicon.nouns import build_dictionary
from novic_ros.lexicon.wordnet import WordNet

ODD = [
    'Ünïcödé café naïve “quoted” ’tis ﬁne ＦＵＬＬ-width',
    '<start_of_text> hi <END_OF_TEXT>',
    '&amp;lt;b&gt; x &#233;',
    '  spaces\t\nand\ttabs ',
    '日本語のテキスト 😀🐶 emoji',
    'a ' * 200,
    '',
    "don't we'll I'M you'd",
    'x\u0000y\u200bz',
    'mojibake: cafÃ© Ã¼ber',
    'Straße ǅ ﬀ Ⅻ ½ ³',
    '12,345.67 km/h -- #hash @at',
    'العربية עברית ελληνικά кириллица',
]


@pytest.fixture(scope='module')
def nouns():
    try:
        return [e.label for e in build_dictionary(WordNet.load())]
    except FileNotFoundError as e:
        pytest.fail(f"the WordNet noun dictionary is needed ({e}); make setup installs wordnet-base")


def test_ids_equal_open_clips_on_every_dictionary_noun_in_prompts(nouns):
    ours, ref = ClipBPE(), SimpleTokenizer()
    texts = nouns + [f"a photo of a {n}." for n in nouns] + ODD
    assert len(nouns) > 27000
    assert np.array_equal(ours.tokenize(texts), ref(texts).numpy())
    for context in (8, 32):                                     # shorter contexts: cut, ending with end-of-text
        assert np.array_equal(ours.tokenize(ODD, context), ref(ODD, context_length=context).numpy())


def test_decoding_equals_open_clips(nouns):
    ours, ref = ClipBPE(), SimpleTokenizer()
    for text in nouns[::7] + ODD:
        ids = ref.encode(text)
        assert ours.encode(text) == ids and ours.decode(ids) == ref.decode(ids)


def test_label_vocab_decodes_without_reading_the_bpe_file(nouns, monkeypatch):
    vocab = LabelVocab.from_labels(nouns[:500])
    ref = SimpleTokenizer()
    expected = {label: (vocab.encode(label), ref.decode(ref.encode(label)).strip()) for label in nouns[:500]}
    stored = LabelVocab(vocab.clip_ids.tolist(), bpe_file='/nonexistent', token_texts=vocab.token_texts())
    monkeypatch.setattr(ClipBPE, '__init__', lambda *a, **k: pytest.fail('the BPE file was read'))
    for label, (ids, text) in expected.items():
        assert stored.decode(ids) == text


def test_a_damaged_vocabulary_file_is_named(tmp_path):
    bad = tmp_path / 'bpe.txt.gz'
    bad.write_bytes(b'not gzip')
    with pytest.raises(ValueError, match='bpe.txt.gz'):
        ClipBPE(bad)
    assert open_clip_vocab_file().is_file()
