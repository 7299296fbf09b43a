"""The classifier end to end: labels, scores, modes, batching, and novic-classify."""
import dataclasses
import json
import re

import numpy as np
import pytest

from novic_ros.cli.classify import main as classify_main
from novic_ros.core.errors import FrameError, ModelLoadError
from novic_ros.pipeline import build_classifier
from novic_ros.params import ModelParams
from novic_ros.training import toy_world


@pytest.fixture(scope='module')
def renders():
    return toy_world.render_set(1, (180, 240), seed=21, classes=list(range(0, 162, 9)))


def test_toy_variant_names_what_it_sees(toy_classifier, renders):
    results = toy_classifier.classify([r.image for r in renders])
    top1 = np.mean([res.top.text == r.label for res, r in zip(results, renders)])
    assert top1 >= 0.5, f"toy variant top-1 {top1:.2f} on {len(renders)} renders"


def test_scores_are_sorted_probabilities(toy_classifier, renders):
    for res in toy_classifier.classify([r.image for r in renders]):
        scores = [l.score for l in res.labels]
        assert len(res.labels) == 3
        assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
        assert sum(scores) <= 1.0 + 1e-6                   # renormalised over the beam
        assert len({l.text for l in res.labels}) == len(res.labels)
        t = res.timings
        assert t.preprocess_ms > 0 and t.encode_ms > 0 and t.decode_ms > 0


def test_batch_equals_frames_one_by_one(toy_classifier, renders):
    frames = [r.image for r in renders[:6]] + [np.zeros((50, 400, 3), np.uint8)]
    batch = toy_classifier.classify(frames)
    for f, b in zip(frames, batch):
        one = toy_classifier.classify(f)[0]
        assert [l.text for l in one.labels] == [l.text for l in b.labels]
        assert np.allclose([l.score for l in one.labels], [l.score for l in b.labels], atol=1e-5)
    assert batch[0].batch_size == len(frames)


def test_greedy_scores_are_raw_sequence_probabilities(renders):
    clf = build_classifier(ModelParams(model='toy', backend='torch', device='cpu', beam_width=1, top_k=1))
    res = clf.classify(renders[0].image)[0]
    embeds = clf.backend.encode_images(clf.preprocess(renders[0].image))
    seqs = clf.generate(embeds)
    assert len(res.labels) == 1
    assert res.labels[0].score == pytest.approx(float(np.exp(seqs.log_probs[0, 0])), abs=1e-6)


def test_min_score_filters(toy_classifier, renders):
    """Exactly the labels scoring below min_score go: the rest stay, in order (not all dropped)."""
    frames = [r.image for r in renders]
    unfiltered = toy_classifier.classify(frames)
    filtered = toy_classifier.with_options(dataclasses.replace(toy_classifier.options, min_score=0.2)).classify(frames)
    kept = 0
    for u, f in zip(unfiltered, filtered):
        expected = [(l.text, round(l.score, 5)) for l in u.labels if l.score >= 0.2]
        assert [(l.text, round(l.score, 5)) for l in f.labels] == expected
        kept += len(expected)
    total = sum(len(u.labels) for u in unfiltered)
    assert 0 < kept < total, f"min_score 0.2 kept {kept} of {total} labels: the check needs both kinds"


@pytest.mark.parametrize('mode, beam_width', [('generate', 1), ('prompted', 5), ('hybrid', 5)])
def test_frames_and_object_windows_share_one_labelling_path(toy_classifier, renders, mode, beam_width):
    """The classifier's ranked labels and the object finder's one label per window come from the same
    EmbeddingLabeller: for the same embeddings the best frame label is the window's label."""
    labels = tuple(sorted({r.label for r in renders}))
    clf = toy_classifier.with_options(dataclasses.replace(toy_classifier.options, mode=mode, beam_width=beam_width,
                                                          top_k=1, labels=labels))
    embeds = clf.encode(clf.preprocess([r.image for r in renders]))
    frames = clf.labels_for_embeddings(embeds)
    windows, scores = clf.labeller.window_labels(embeds, max_batch=4)
    compared = 0
    for frame, window, score in zip(frames, windows, scores):
        if window and frame:
            assert frame[0].text == window
            if mode != 'hybrid':        # hybrid: the frame's score is CLIP's, the window's the decoder's
                assert frame[0].score == pytest.approx(score, abs=1e-5)
            compared += 1
    assert compared >= len(renders) // 2


def test_prompted_mode_scores_the_given_labels(renders):
    labels = ['dog', 'bicycle', 'pineapple', 'guitar']
    clf = build_classifier(
        ModelParams(model='toy', backend='torch', device='cpu', mode='prompted', labels=labels, top_k=4)
    )
    frames = [
        toy_world.render(toy_world.NOUNS.index(n), (120, 160), np.random.default_rng(i)) for i, n in enumerate(labels)
    ]
    results = clf.classify(frames)
    for n, res in zip(labels, results):
        assert {l.text for l in res.labels} == set(labels)
        assert sum(l.score for l in res.labels) == pytest.approx(1.0, abs=1e-5)
    assert sum(res.top.text == n for n, res in zip(labels, results)) >= 3


def test_hybrid_reranks_decoder_candidates_by_clip(renders):
    beam = build_classifier(ModelParams(model='toy', backend='torch', device='cpu', top_k=5, beam_width=5))
    hybrid = build_classifier(ModelParams(model='toy', backend='torch', device='cpu', mode='hybrid', top_k=5))
    frames = [r.image for r in renders]
    embeds = hybrid.backend.encode_images(hybrid.preprocess(frames))
    text = hybrid.text_cache
    for e, g, h in zip(embeds, beam.classify(frames), hybrid.classify(frames)):
        assert {l.text for l in h.labels} == {l.text for l in g.labels}      # the decoder's candidates...
        sims = {l.text: float(text([l.text])[0] @ e) for l in h.labels}
        ranked = sorted(sims, key=lambda t: -sims[t])
        assert [l.text for l in h.labels] == ranked                          # ...ordered by CLIP similarity
        assert sum(l.score for l in h.labels) == pytest.approx(1.0, abs=1e-5)


def test_prompted_mode_needs_labels_and_top_k_needs_beam():
    with pytest.raises(ValueError, match='labels'):
        ModelParams(mode='prompted')
    with pytest.raises(ValueError, match='beam_width'):
        ModelParams(top_k=5, beam_width=2)


def test_unknown_variant_and_missing_weights_fail_clearly(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model variant 'nope'.*toy"):
        build_classifier(ModelParams(model='nope'))
    models = tmp_path / 'm.yaml'
    models.write_text(f"gone:\n  clip_model: local-dir:{tmp_path}/missing\n  decoder: {tmp_path}/dec\n")
    with pytest.raises(ModelLoadError, match='missing'):
        build_classifier(ModelParams(model='gone', models_file=str(models)))


@pytest.mark.parametrize('frame, problem, fix', [
    (np.zeros((10, 10, 4), np.uint8), r'\(10, 10, 4\)', 'RGBA images to RGB'),
    (np.zeros((10, 10), np.uint8), r'\(10, 10\)', 'HxWx3'),
    (np.zeros((10, 10, 3), np.float32), 'float32', 'astype'),
    (np.zeros((0, 10, 3), np.uint8), 'empty frame', r'\(0, 10, 3\)')])
def test_bad_frames_are_refused_by_the_classifier(toy_classifier, frame, problem, fix):
    """Each bad frame is a FrameError (the node counts it by reason and goes on) whose message names
    what is wrong and how to fix it."""
    with pytest.raises(FrameError, match=problem) as refused:
        toy_classifier.classify(frame)
    assert refused.value.reason and re.search(fix, str(refused.value))


def test_tiny_random_variant_runs_every_mode(tiny_models_file):
    """Each mode labels from its own source: the decoder's beam (generate, hybrid) or the list (prompted)."""
    frame = np.full((40, 30, 3), 128, np.uint8)
    gen = build_classifier(ModelParams(model='tiny', models_file=str(tiny_models_file), top_k=2, beam_width=5))
    seqs = gen.generate(gen.backend.encode_images(gen.preprocess(frame)))
    spelled = {gen.vocab.decode(t) for t in seqs.tokens[0]} - {''}
    assert spelled, "the tiny random decoder should spell at least one non-empty label"
    for clf in (gen, gen.with_options(dataclasses.replace(gen.options, mode="hybrid"))):
        (res,) = clf.classify(frame)
        assert 1 <= len(res.labels) == min(2, len(spelled)) and {l.text for l in res.labels} <= spelled
    prompted = gen.with_options(ModelParams(mode='prompted', labels=['a', 'b'], top_k=2).to_options())
    (res,) = prompted.classify(frame)
    assert {l.text for l in res.labels} == {'a', 'b'} and sum(l.score for l in res.labels) == pytest.approx(1.0)


def test_cli_prints_json_and_survives_an_unreadable_file(tmp_path, capsys, renders):
    from PIL import Image
    paths = []
    for i, r in enumerate(renders[:2]):
        p = tmp_path / f'{i}.png'
        Image.fromarray(r.image).save(p)
        paths.append(str(p))
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg')
    code = classify_main([paths[0], str(bad), paths[1], '--json', '--top-k', '2', '--backend', 'torch'])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 1
    assert [o['image'] for o in out] == [paths[0], str(bad), paths[1]]
    assert out[1]['labels'] == [] and 'broken.jpg' in captured.err and 'cannot read' in captured.err
    for o, r in zip((out[0], out[2]), renders[:2]):
        assert len(o['labels']) == 2 and {'label', 'score'} <= set(o['labels'][0])
        assert 0 <= o['labels'][1]['score'] <= o['labels'][0]['score'] <= 1


def test_cli_text_output(tmp_path, capsys, renders):
    from PIL import Image
    p = tmp_path / 'x.png'
    Image.fromarray(renders[3].image).save(p)
    assert classify_main([str(p), '--backend', 'torch']) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{p}: ") and line.count('(') == 3


def test_prompted_labels_from_a_file(tmp_path):
    txt = tmp_path / 'labels.txt'
    txt.write_text('# household\ndog\n\npineapple\nguitar\n')
    jsonl = tmp_path / 'nouns.jsonl'
    jsonl.write_text('{"label": "bicycle", "synset": 1}\n{"label": "rocket", "synset": 2}\n')
    for path, labels in ((txt, {'dog', 'pineapple', 'guitar'}), (jsonl, {'bicycle', 'rocket', 'cat'})):
        extra = ['cat'] if path == jsonl else []
        clf = build_classifier(ModelParams(model='toy', backend='torch', mode='prompted', labels=extra,
                                           labels_file=str(path), top_k=3))
        assert set(clf.prompt_labels) == labels
        assert {l.text for l in clf.classify(np.zeros((32, 32, 3), np.uint8))[0].labels} <= labels
    with pytest.raises(ValueError, match="labels_file.*none.txt does not exist"):
        ModelParams(model='toy', mode='prompted', labels_file=str(tmp_path / 'none.txt'))
    broken = tmp_path / 'broken.jsonl'
    broken.write_text('{"label": "cat"}\nnot json\n')
    with pytest.raises(ValueError, match="labels_file.*broken.jsonl, line 2: not a JSON object"):
        ModelParams(model='toy', mode='prompted', labels_file=str(broken)).to_options()   # read when built


def test_open_clip_name_plus_local_checkpoint_file_loads_the_same_model(toy_classifier):
    """The way users name weights: an open_clip model name and a checkpoint file path."""
    from conftest import TOY_CLIP
    from novic_ros.models.clip_encoder import ClipEncoder, ClipSpec
    by_file = ClipEncoder(ClipSpec('novic-toy-clip', str(TOY_CLIP / 'open_clip_model.safetensors')))
    frame = toy_world.render(0, (64, 64), np.random.default_rng(0))
    pixels = toy_classifier.preprocess(frame)
    assert torch_allclose(by_file.encode_images(pixels), toy_classifier.backend.encoder.encode_images(pixels))


def torch_allclose(a, b):
    import torch
    return torch.allclose(a, b, atol=1e-6)


def test_cli_bounds_each_image_like_the_node(tmp_path, capsys):
    """A 1x40000 PNG is labelled (cropped before it is resized); a 12000x12000 PNG is refused from its
    header as too large, naming --max-pixels; the flag moves the bound."""
    from PIL import Image
    wide, bomb = tmp_path / 'wide.png', tmp_path / 'bomb.png'
    Image.new('RGB', (40000, 1), (200, 40, 40)).save(wide)
    Image.new('L', (12000, 12000)).save(bomb)
    assert classify_main([str(wide), str(bomb), '--json', '--backend', 'torch']) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert len(out[0]['labels']) == 3 and out[1]['labels'] == []
    assert 'bomb.png: image of 12000x12000 pixels' in out[1]['error'] and 'max_pixels' in out[1]['error']
    assert classify_main([str(wide), "--json", "--backend", "torch", "--max-pixels", "39999"]) == 1   # as README says
    assert 'larger than max_pixels (39,999)' in json.loads(capsys.readouterr().out)[0]['error']
