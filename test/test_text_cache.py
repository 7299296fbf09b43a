"""Label embeddings on disk: keyed by CLIP weights, template and label text, reused across runs and
processes, written atomically, and never a reason to fail."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from novic_ros.backends.torch_backend import TorchTextEncoder
from novic_ros.core.pacing import paced, pacing
from novic_ros.core.text_cache import PACED_STEP, PERSIST_MIN_LABELS, DiskTextEmbeddings, TextEmbeddingCache
from novic_ros.params import ModelParams
from novic_ros.pipeline import build_classifier

LABELS = [f"thing {i}" for i in range(PERSIST_MIN_LABELS + 8)]
TEMPLATE = 'a photo of a {}.'


def cache(encoder, root, template=TEMPLATE, key='fp-fp32'):
    return TextEmbeddingCache(TorchTextEncoder(encoder), template, disk=DiskTextEmbeddings(root, key))


def reference(encoder, labels, template=TEMPLATE):
    return encoder.encode_texts([template.format(l) for l in labels]).numpy()


def test_a_second_cache_reads_what_the_first_wrote(tiny_encoder, tmp_path):
    first = cache(tiny_encoder, tmp_path)
    embs = first(LABELS)
    assert first.computed == len(LABELS)
    assert np.allclose(embs, reference(tiny_encoder, LABELS), atol=1e-6)
    second = cache(tiny_encoder, tmp_path)            # a new run: nothing in memory
    again = second(list(reversed(LABELS)))
    assert second.computed == 0
    assert np.array_equal(again, embs[::-1])           # the stored float32 rows, exactly


def test_a_paced_thread_embeds_in_steps_with_the_same_result(tiny_encoder, tmp_path):
    import threading
    import torch
    labels = [f"paced {i}" for i in range(3 * PACED_STEP + 5)]
    threads_seen, pauses = [], []

    class Watching:                 # the CLIP encoder, telling how many threads each call ran with
        def __getattr__(self, name):
            return getattr(tiny_encoder, name)

        def encode_texts(self, texts):
            threads_seen.append(torch.get_num_threads())
            return tiny_encoder.encode_texts(texts)
    c = TextEmbeddingCache(TorchTextEncoder(Watching()), TEMPLATE, disk=DiskTextEmbeddings(tmp_path, 'fp-fp32'))
    others = []
    before = torch.get_num_threads()
    with paced(pauses.append):
        assert pacing()
        # Another thread is not paced: it embeds in one call, with its own thread count.
        t = threading.Thread(target=lambda: others.append((pacing(), torch.get_num_threads())))
        t.start()
        t.join()
        embs = c(labels)
    assert not pacing() and others == [(False, before)]
    assert np.allclose(embs, reference(tiny_encoder, labels), atol=1e-6)
    # 3 pauses between the 4 embedding steps, and one after each look-up or copy of the (one) PACED_LOOKUP
    # chunk: in memory, on disk, into the memory cache, into the result.
    assert threads_seen == [1] * 4 and len(pauses) == 3 + 4 and all(p >= 0 for p in pauses)
    assert torch.get_num_threads() == before                    # one thread inside each step only
    c2 = TextEmbeddingCache(TorchTextEncoder(Watching()), TEMPLATE)
    threads_seen.clear()
    c2(labels)                                                  # not paced: one call, torch's own count
    assert threads_seen == [before]
    assert len(list((tmp_path / 'fp-fp32').rglob('*.npy'))) == 1     # one chunk on disk, not one per step


def test_only_new_labels_are_embedded(tiny_encoder, tmp_path):
    cache(tiny_encoder, tmp_path)(LABELS)
    more = LABELS + [f"other {i}" for i in range(PERSIST_MIN_LABELS)]
    c = cache(tiny_encoder, tmp_path)
    embs = c(more)
    assert c.computed == PERSIST_MIN_LABELS
    assert np.allclose(embs, reference(tiny_encoder, more), atol=1e-6)
    third = cache(tiny_encoder, tmp_path)
    third(more)
    assert third.computed == 0


def test_keyed_by_weights_and_template(tiny_encoder, tmp_path):
    cache(tiny_encoder, tmp_path)(LABELS)
    other_weights = cache(tiny_encoder, tmp_path, key='other-fp32')
    other_weights(LABELS)
    assert other_weights.computed == len(LABELS)
    template = 'a picture of the {}'
    other_template = cache(tiny_encoder, tmp_path).for_template(template)
    embs = other_template(LABELS)
    assert other_template.computed == len(LABELS)
    assert np.allclose(embs, reference(tiny_encoder, LABELS, template), atol=1e-6)


def test_small_lists_stay_in_memory(tiny_encoder, tmp_path):
    """Hybrid mode meets a few new candidates per frame: no file per frame."""
    c = cache(tiny_encoder, tmp_path)
    c(['dog', 'cat'])
    assert not list(tmp_path.rglob('*.npy'))
    c(['dog', 'cat'])
    assert c.computed == 2


def test_damaged_chunks_are_ignored_and_recomputed(tiny_encoder, tmp_path, caplog):
    cache(tiny_encoder, tmp_path)(LABELS)
    (meta,) = [p for p in tmp_path.rglob('*.json') if p.name != 'template.json']
    np.save(meta.with_suffix('.npy'), np.zeros((3, 5), np.float32))      # wrong shape for these labels
    c = cache(tiny_encoder, tmp_path)
    embs = c(LABELS)
    assert c.computed == len(LABELS)
    assert np.allclose(embs, reference(tiny_encoder, LABELS), atol=1e-6)
    meta.write_text('{not json')
    c = cache(tiny_encoder, tmp_path)
    assert np.allclose(c(LABELS), embs, atol=1e-6)
    assert 'ignoring text-embedding cache chunk' in caplog.text


def test_an_unwritable_folder_costs_a_warning_not_a_failure(tiny_encoder, tmp_path, caplog):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    c = cache(tiny_encoder, blocker / 'cache')
    assert np.allclose(c(LABELS), reference(tiny_encoder, LABELS), atol=1e-6)
    assert 'cannot write the label-embedding cache' in caplog.text and 'text_cache_dir' in caplog.text


def test_reused_by_another_process(tiny_clip_dir, tiny_encoder, tmp_path):
    code = (
        "import sys, json\n"
        "from novic_ros.models.clip_encoder import ClipEncoder, ClipSpec\n"
        "from novic_ros.backends.torch_backend import TorchTextEncoder\n"
        "from novic_ros.core.text_cache import DiskTextEmbeddings, TextEmbeddingCache\n"
        f"enc = ClipEncoder(ClipSpec('local-dir:{tiny_clip_dir}'))\n"
        f"c = TextEmbeddingCache(TorchTextEncoder(enc), {TEMPLATE!r}, "
        f"disk=DiskTextEmbeddings({str(tmp_path)!r}, 'fp-fp32'))\n"
        f"c({LABELS!r})\n"
        "print(json.dumps(c.computed))\n"
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == len(LABELS)
    here = cache(tiny_encoder, tmp_path)
    assert np.allclose(here(LABELS), reference(tiny_encoder, LABELS), atol=1e-6)
    assert here.computed == 0
    # What a crash mid-write could leave (a temp file) is never read as a chunk.
    assert all(not p.name.endswith('.tmp') for p in tmp_path.rglob('*'))


def test_prompted_classifier_starts_from_the_cache(tiny_models_file, tmp_path):
    params = ModelParams(model='tiny', models_file=str(tiny_models_file), backend='torch', mode='prompted',
                         labels=LABELS, text_cache_dir=str(tmp_path))
    first = build_classifier(params)
    assert first.text_cache.computed == len(LABELS)
    second = build_classifier(params)
    assert second.text_cache.computed == 0
    frame = np.full((40, 40, 3), 90, np.uint8)
    a, b = first.classify(frame)[0], second.classify(frame)[0]
    assert [l.text for l in a.labels] == [l.text for l in b.labels]
    assert np.allclose([l.score for l in a.labels], [l.score for l in b.labels], atol=1e-6)
    # Keyed by the CLIP weights: the folder is named by their fingerprint.
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_node_style_prompted_start_keeps_the_decoder_for_a_live_switch(tiny_models_file, tmp_path):
    params = ModelParams(model='tiny', models_file=str(tiny_models_file), backend='torch', mode='prompted',
                         labels=['dog', 'cat'], text_cache_dir=str(tmp_path))
    assert build_classifier(params).vocab is None                 # the CLIs: prompted needs no decoder
    clf = build_classifier(params, decoder_for_all_modes=True)
    generate = clf.with_options(dataclasses.replace(params, mode='generate').to_options())
    assert generate.vocab is not None and generate.classify(np.zeros((32, 32, 3), np.uint8))


def test_without_a_decoder_prompted_mode_works_and_other_modes_say_why(tiny_clip_dir, tmp_path):
    models = tmp_path / 'models.yaml'
    models.write_text(f"clip_only:\n  clip_model: local-dir:{tiny_clip_dir}\n  decoder: {tmp_path}/no_decoder\n")
    params = ModelParams(model='clip_only', models_file=str(models), backend='torch', mode='prompted',
                         labels=['dog', 'cat'], text_cache_dir=str(tmp_path / 'cache'))
    clf = build_classifier(params, decoder_for_all_modes=True)
    assert clf.classify(np.zeros((32, 32, 3), np.uint8))[0].top.text in ('dog', 'cat')
    with pytest.raises(ValueError, match="needs the decoder; variant 'clip_only' has no usable decoder") as e:
        clf.with_options(dataclasses.replace(params, mode='generate').to_options())
    assert 'no_decoder' in str(e.value)


def test_a_paced_lookup_of_a_long_list_pauses_per_chunk_with_the_same_result():
    """27k labels already in memory: a paced thread looks them up PACED_LOOKUP at a time, pausing
    between (the worker gets the interpreter back), and gets the same rows as an unpaced call."""
    from novic_ros.core.text_cache import PACED_LOOKUP

    class Counting:
        embed_dim, cache_key = 4, 'counting'
        calls = 0

        def encode_texts(self, prompts):
            Counting.calls += 1
            return np.array([[len(p), i % 7, 1.0, 2.0] for i, p in enumerate(prompts)], np.float32)
    labels = [f"noun {i}" for i in range(2 * PACED_LOOKUP + 10)]
    c = TextEmbeddingCache(Counting(), TEMPLATE, capacity=len(labels))
    whole = c(labels)
    pauses = []
    with paced(pauses.append):
        again = c(labels)
    assert Counting.calls == 1                      # the second call found every label in memory
    assert np.array_equal(whole, again) and again.dtype == np.float32
    assert len(pauses) == 3 * 3                     # 3 chunks: looked up, put back in order, copied out
