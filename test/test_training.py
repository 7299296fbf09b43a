"""Text-only decoder training: the pieces, and the zero-shot transfer it exists for."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from conftest import TINY_LABELS, TOY_CLIP
from novic_ros.models.checkpoint import load_decoder, read_meta
from novic_ros.models.clip_encoder import ClipEncoder, ClipSpec, encode_tokens_trimmed, supports_trimmed_text
from novic_ros.core.generation import greedy
from novic_ros.models.torch_runners import TorchCachedRunner
from novic_ros.core.preprocess import Preprocessor
from novic_ros.lexicon.nouns import NounEntry, save_dictionary
from novic_ros.training import toy_world
from novic_ros.training.batches import BatchPlan
from novic_ros.training.distributed import SINGLE
from novic_ros.training.prompt_rows import PromptRows
from novic_ros.training.prompts import PromptGenerator, default_plural
from novic_ros.training.text_embeddings import DONE_DIR, SHARD, TextEmbeddingStore
from novic_ros.training.train_config import DecoderHParams, TrainConfig
from novic_ros.training.train_data import training_centroid
from novic_ros.training.train_log import LOG_FILE
from novic_ros.training.train_state import read_state
from novic_ros.training.trainer import TrainingStopped, evaluate, prepare_data, train_decoder

pytestmark = pytest.mark.usefixtures('one_torch_thread')


class TextRows:
    """A fixed list of texts as the embedding store's rows (prompt_rows.Rows)."""

    def __init__(self, texts):
        self._texts = list(texts)
        self.fingerprint = hashlib.sha256('\0'.join(self._texts).encode() + b'\0').hexdigest()[:16]

    def __len__(self) -> int:
        return len(self._texts)

    def texts(self, start: int, stop: int) -> list[str]:
        return self._texts[start:stop]

FAST = dict(prompts_per_noun=100, steps=600, eval_every=600, checkpoint_every=300, log_every=100,
            decoder=DecoderHParams(width=128, layers=2, heads=4, prefix_len=4, max_tokens=6))


@pytest.fixture(scope='module')
def toy_encoder():
    return ClipEncoder(ClipSpec.local_dir(TOY_CLIP))


@pytest.fixture(scope='module')
def toy_cfg():
    return TrainConfig.from_yaml(TOY_CLIP.parent.parent.parent / 'config' / 'train' / 'toy.yaml').with_overrides(**FAST)


# --- text tower at its real length ---------------------------------------------------------

TEXTS = ['dog', 'a photo of a golden retriever on the grass.', 'a fire truck next to a red bicycle in the rain, '
         'seen from far away on a foggy morning', '']


@pytest.mark.parametrize('which', ['tiny', 'toy', 'ViT-B-32'])
def test_trimmed_text_encoding_equals_full_context(which, tiny_encoder, toy_encoder):
    if which == 'ViT-B-32':     # the real architecture, random weights: equality does not need training
        enc = ClipEncoder(ClipSpec('ViT-B-32'), load_weights=False)
    else:
        enc = tiny_encoder if which == 'tiny' else toy_encoder
    assert supports_trimmed_text(enc.model)
    tokens = enc.tokenize(TEXTS)
    with torch.inference_mode():
        full = enc.model.encode_text(tokens)
        trimmed = encode_tokens_trimmed(enc.model, tokens)
    assert torch.allclose(full, trimmed, atol=1e-5, rtol=1e-4)
    # encode_texts sorts by length and batches; order and values are preserved.
    assert torch.allclose(enc.encode_texts(TEXTS, batch_size=2), enc.encode_texts(TEXTS, trim=False), atol=1e-5)


# --- prompts and embedding cache ------------------------------------------------------------

def test_every_prompt_names_its_target():
    nouns = ['dog', 'hot dog', 'bus', 'apple']
    gen = PromptGenerator(nouns, [['canine'], ['sausage'], ['vehicle'], ['fruit']], seed=3)
    prompts = gen.prompts(200)
    assert len(prompts) == 800 and len({p.text for p in prompts}) > 300
    for p in prompts:
        noun = nouns[p.target]
        assert noun in p.text or default_plural(noun) in p.text
    # Multi-noun prompts: the designated target is the first noun named, the other a distractor.
    distinct = ['dog', 'bus', 'apple', 'cat']
    for p in PromptGenerator(distinct, weights=(0, 0, 1, 0), seed=1).prompts(20):
        named = sorted((p.text.find(n), n) for n in distinct if n in p.text)
        assert len(named) == 2 and named[0][1] == distinct[p.target], p
    assert any('an apple' in p.text for p in prompts)


def test_prompt_rows_are_rebuilt_alone_in_any_order():
    gen = PromptGenerator(['dog', 'hot dog', 'bus', 'apple', 'cat'], [['canine'], [], [], ['fruit'], []], seed=5)
    rows = PromptRows(gen, per_noun=7)
    whole = rows.texts(0, len(rows))
    assert len(whole) == 35 and len(set(whole)) > 15
    assert rows.texts(10, 24) == whole[10:24] and rows.texts(34, 35) == whole[34:]     # any range, alone
    assert rows.targets(np.arange(35)).tolist() == [i // 7 for i in range(35)]
    assert all(gen.nouns[t] in text or default_plural(gen.nouns[t]) in text
               for t, text in zip(rows.targets(np.arange(35)), whole))
    assert PromptRows(PromptGenerator(gen.nouns, gen.hypernyms, seed=5), 7).fingerprint == rows.fingerprint
    assert PromptRows(PromptGenerator(gen.nouns, gen.hypernyms, seed=6), 7).fingerprint != rows.fingerprint
    assert PromptRows(gen, 8).fingerprint != rows.fingerprint


def test_embedding_store_resumes_after_an_interruption(tiny_encoder, tmp_path, monkeypatch):
    texts = TextRows([f'a photo of item {i}' for i in range(SHARD + 100)])
    store = TextEmbeddingStore(tmp_path, 'tiny', texts, tiny_encoder.embed_dim)
    assert store.num_shards == 2 and store.missing() == [0, 1]
    store.compute(tiny_encoder, 256, progress=False)
    full = np.array(store.open())
    assert full.shape == (len(texts), tiny_encoder.embed_dim) and full.dtype == np.float16
    direct = tiny_encoder.encode_texts(texts.texts(SHARD - 3, SHARD + 3)).numpy()
    assert np.allclose(full[SHARD - 3:SHARD + 3], direct, atol=2e-3)          # rows land where they belong
    (store.dir / DONE_DIR / '00001').unlink()            # as if Ctrl-C hit during the second shard
    calls = []
    real = tiny_encoder.encode_tokens
    monkeypatch.setattr(tiny_encoder, 'encode_tokens', lambda t, *a, **k: calls.append(len(t)) or real(t, *a, **k))
    store2 = TextEmbeddingStore(tmp_path, 'tiny', texts, tiny_encoder.embed_dim)
    assert store2.missing() == [1]
    store2.compute(tiny_encoder, 256, progress=False)
    assert sum(calls) == 100                             # only the missing shard was encoded
    assert np.array_equal(store2.open(), full)
    assert TextEmbeddingStore(tmp_path, 'tiny', TextRows(texts.texts(0, 5)), 32).dir != store.dir   # keyed by the data


def test_statistics_stream_over_the_shards(tiny_encoder, tmp_path):
    """The centroid for the mean shift streams over the file; it equals the in-memory mean of the training rows."""
    cfg = TrainConfig(nouns='toy', max_nouns=40, prompts_per_noun=250, val_fraction=0.1, batch_size=64,
                      decoder=DecoderHParams(width=32, layers=1, heads=2, max_tokens=6))
    data = prepare_data(tiny_encoder, cfg, progress=False, cache_root=tmp_path)
    assert data.store.num_shards == 2
    train = np.setdiff1d(np.arange(data.num_prompts), data.split.val_rows)
    expected = np.asarray(data.embeds[train], np.float64).mean(0)
    assert np.allclose(training_centroid(data.store, data.split).numpy(), expected, atol=1e-6)
    assert torch.equal(data.centroid, training_centroid(data.store, data.split))


# --- the transfer --------------------------------------------------------------------------

def test_text_only_decoder_transfers_to_images_zero_shot(toy_encoder, toy_cfg, tmp_path, monkeypatch):
    """Train on the toy CLIP's text encoder only (images are unreachable during training), then
    name freshly rendered pictures with no label list."""
    def no_images(*a, **k):
        raise AssertionError('the decoder must never see an image in training')
    monkeypatch.setattr(toy_encoder, 'encode_images', no_images)
    train_decoder(toy_encoder, toy_cfg, tmp_path / 'dec', progress=False, cache_root=tmp_path / 'cache')
    monkeypatch.undo()

    items = toy_world.render_set(2, (160, 200), seed=4242)
    pre = Preprocessor(toy_encoder.preprocess_cfg)
    img = torch.cat(
        [toy_encoder.encode_images(pre([x.image for x in items[i : i + 64]])) for i in range(0, len(items), 64)]
    )
    dec, vocab, meta = load_decoder(tmp_path / 'dec')
    seqs = greedy(TorchCachedRunner(dec, vocab.eot), img)
    decoded = [vocab.decode(t[0]) for t in seqs.tokens]
    decoder_top1 = np.mean([d == x.label for d, x in zip(decoded, items)])
    text = toy_encoder.encode_texts([f'a photo of a {n}.' for n in toy_world.NOUNS])
    prompted_top1 = np.mean([toy_world.NOUNS[i] == x.label for i, x in zip((img @ text.T).argmax(1).tolist(), items)])
    chance = 1 / len(toy_world.NOUNS)
    print(f"\nzero-shot top-1 on {len(items)} renders: decoder (no label list) {decoder_top1:.3f}, "
          f"toy CLIP prompted with all {len(toy_world.NOUNS)} nouns {prompted_top1:.3f}, chance {chance:.3f}")
    assert decoder_top1 > 50 * chance                       # > 0.30
    assert decoder_top1 > prompted_top1 - 0.25
    assert sum(d not in toy_world.NOUNS for d in decoded) < len(decoded) * 0.1   # it outputs nouns, not junk
    assert meta.training['text_only'] is True and meta.training['num_nouns'] == len(toy_world.NOUNS)


def test_text_inversion_on_held_out_prompts(toy_encoder, toy_cfg, tmp_path):
    cfg = toy_cfg.with_overrides(noise=0.0, steps=400, eval_every=400)
    data = prepare_data(toy_encoder, cfg, progress=False, cache_root=tmp_path)
    held_out = set(data.split.val_rows.tolist())
    assert len(held_out) == round(data.num_prompts * cfg.val_fraction)
    plan = BatchPlan(data.split, cfg.prompts_per_noun, data.labels.label_lengths, cfg.batch_size, cfg.seed, SINGLE)
    drawn = np.concatenate([plan.draw(step).rows for step in range(cfg.steps)])
    assert not held_out & set(drawn.tolist())                   # training never draws a held-out prompt
    assert len(np.unique(drawn)) > 0.8 * data.split.num_train   # and draws nearly all the others
    train_decoder(toy_encoder, cfg, tmp_path / 'dec', progress=False, data=data)
    dec, _, meta = load_decoder(tmp_path / 'dec')
    metrics = evaluate(dec, data, 'cpu')
    assert metrics['val_inversion_acc'] == meta.training['val_inversion_acc']
    assert metrics['val_inversion_acc'] > 0.7, metrics


TINY = TrainConfig(
    nouns='toy',
    max_nouns=20,
    prompts_per_noun=10,
    steps=30,
    eval_every=30,
    checkpoint_every=1000,
    log_every=1,
    batch_size=16,
    noise=0.5,
    decoder=DecoderHParams(width=32, layers=1, heads=2, max_tokens=6),
)


def log_rows(run) -> list[dict]:
    lines = (run / LOG_FILE).read_text().splitlines()
    header = lines[0].split(',')
    return [dict(zip(header, line.split(','))) for line in lines[1:]]


def test_a_stop_signal_checkpoints_and_resume_continues_the_same_run(tiny_encoder, tmp_path, monkeypatch):
    """SIGINT (and SIGTERM, the same handler) mid-step: the step finishes, a checkpoint is written,
    TrainingStopped is raised; resuming gives exactly the run that was never interrupted."""
    import signal
    import novic_ros.training.trainer as trainer
    cache = tmp_path / 'c'
    train_decoder(tiny_encoder, TINY, tmp_path / 'whole', progress=False, cache_root=cache)
    real, calls = trainer.batch_loss, []

    def signal_during_step_13(*a, **k):
        calls.append(1)
        if len(calls) == 13:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)
    monkeypatch.setattr(trainer, 'batch_loss', signal_during_step_13)
    # Ctrl-C as in a terminal: once in the full suite an earlier test left SIGINT swallowed in this process.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingStopped) as stopped:
            train_decoder(tiny_encoder, TINY, tmp_path / 'run', progress=False, cache_root=cache)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler        # handlers restored
    finally:
        signal.signal(signal.SIGINT, before)
    assert stopped.value.step == 13 and stopped.value.signum == signal.SIGINT
    assert read_meta(tmp_path / 'run').training['step'] == 13 and read_state(tmp_path / 'run').step == 13
    monkeypatch.setattr(trainer, 'batch_loss', real)
    train_decoder(tiny_encoder, TINY, tmp_path / 'run', resume=True, progress=False, cache_root=cache)
    resumed, whole = log_rows(tmp_path / 'run'), log_rows(tmp_path / 'whole')
    assert [r['step'] for r in resumed] == [str(i) for i in range(1, 31)]
    assert [r['loss'] for r in resumed] == [r['loss'] for r in whole]
    assert read_meta(tmp_path / 'run').training['val_loss'] == read_meta(tmp_path / 'whole').training['val_loss']
    seconds = [float(r['seconds']) for r in resumed]
    assert seconds == sorted(seconds)                                           # the clock continued


def test_resume_checks_come_before_any_heavy_work(tiny_encoder, tmp_path, monkeypatch):
    import novic_ros.training.trainer as trainer
    nouns = tmp_path / 'nouns.jsonl'
    save_dictionary([NounEntry(n, i, hypernyms=('thing',)) for i, n in enumerate(TINY_LABELS)], nouns)
    cfg, cache = TINY.with_overrides(steps=6, nouns=str(nouns), max_nouns=0), tmp_path / 'c'
    with pytest.raises(FileNotFoundError, match='no run .* to continue'):
        train_decoder(tiny_encoder, cfg, tmp_path / 'run', resume=True, progress=False, cache_root=cache)
    train_decoder(tiny_encoder, cfg, tmp_path / 'run', progress=False, cache_root=cache)
    monkeypatch.setattr(
        trainer, 'prepare_data', lambda *a, **k: pytest.fail('prepared data for a resume that cannot work')
    )
    with pytest.raises(ValueError, match=r"differs in decoder\.width \(32 in the run, 64 now\), lr"):
        train_decoder(tiny_encoder, cfg.with_overrides(lr=1e-2, decoder=DecoderHParams(width=64, layers=1, heads=2,
                                                                                      max_tokens=6)),
                      tmp_path / 'run', resume=True, progress=False, cache_root=cache)
    with pytest.raises(ValueError, match='give --steps 6 or more'):
        train_decoder(tiny_encoder, cfg.with_overrides(steps=4), tmp_path / 'run', resume=True, progress=False)
    save_dictionary([NounEntry(n, i, hypernyms=('object',)) for i, n in enumerate(TINY_LABELS)], nouns)
    with pytest.raises(ValueError, match='prompts differ'):
        train_decoder(tiny_encoder, cfg.with_overrides(steps=9), tmp_path / 'run', resume=True, progress=False)
    save_dictionary([NounEntry(n, i, hypernyms=('thing',)) for i, n in enumerate(TINY_LABELS)], nouns)
    monkeypatch.undo()
    # --steps may be raised on resume; run-only fields (log_every, ...) may change too.
    train_decoder(tiny_encoder, cfg.with_overrides(steps=10, log_every=2), tmp_path / 'run', resume=True,
                  progress=False, cache_root=cache)
    assert read_state(tmp_path / 'run').step == 10 and read_meta(tmp_path / 'run').training['steps'] == 10
    assert [r['step'] for r in log_rows(tmp_path / 'run')] == ['1', '2', '3', '4', '5', '6', '8', '10']


def test_a_new_run_does_not_overwrite_an_unfinished_one(tiny_encoder, tmp_path, monkeypatch):
    import novic_ros.training.trainer as trainer
    real = trainer.batch_loss
    monkeypatch.setattr(trainer, 'batch_loss', lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt)
                        if len(log_rows(tmp_path / 'run')) == 3 else real(*a, **k))
    with pytest.raises(KeyboardInterrupt):
        train_decoder(tiny_encoder, TINY, tmp_path / 'run', progress=False, cache_root=tmp_path / 'c')
    assert read_state(tmp_path / 'run').step == 3
    monkeypatch.setattr(trainer, 'batch_loss', real)
    with pytest.raises(ValueError, match='stopped at step 3 of 30: continue it with --resume'):
        train_decoder(tiny_encoder, TINY, tmp_path / 'run', progress=False, cache_root=tmp_path / 'c')


def test_train_config_validation(tmp_path):
    with pytest.raises(ValueError, match='unknown keys'):
        TrainConfig.from_dict({'stepz': 3})
    with pytest.raises(ValueError, match='unknown decoder keys'):
        TrainConfig.from_dict({'decoder': {'depth': 3}})
    with pytest.raises(ValueError, match='steps'):
        TrainConfig(steps=0)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        TrainConfig.from_yaml(tmp_path / 'nope.yaml')


def test_cli_trains_a_decoder_the_core_loads(tiny_models_file, tmp_path, monkeypatch, capsys):
    from novic_ros.cli.train import main
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text('nouns: toy\nmax_nouns: 10\nprompts_per_noun: 5\nsteps: 5\nbatch_size: 8\neval_every: 5\n'
                   'decoder: {width: 32, layers: 1, heads: 2, max_tokens: 6}\n')
    out = tmp_path / 'dec'
    threads = []
    monkeypatch.setattr(torch, 'set_num_threads', threads.append)     # --threads is the shared model flag
    assert main(['--model', 'tiny', '--models-file', str(tiny_models_file), '--config', str(cfg), '--out', str(out),
                 '--no-progress', '--cache-dir', str(tmp_path / 'c'), '--threads', '3']) == 0
    assert threads == [3]
    dec, vocab, meta = load_decoder(out)
    assert meta.training['steps'] == 5 and meta.clip.embed_dim == 32 and len(vocab) == dec.cfg.vocab_size
    assert main(['--model', 'tiny', '--models-file', str(tiny_models_file), '--config', str(cfg), '--out', str(out),
                 '--threads', '-1']) == 1
    assert "parameter 'threads': -1 is outside [0, 256]" in capsys.readouterr().err
    assert main(['--model', 'tiny', '--models-file', str(tiny_models_file), '--config', str(tmp_path / 'x.yaml')]) == 1
    capsys.readouterr()
    # A second run into the finished folder is refused before the CLIP model loads, saying the fix.
    weights = (out / 'model.safetensors').read_bytes()
    monkeypatch.setattr('novic_ros.cli.train.ClipEncoder', lambda *a, **k: pytest.fail('loaded CLIP for a refused run'))
    assert main(['--model', 'tiny', '--models-file', str(tiny_models_file), '--config', str(cfg), '--out', str(out),
                 '--no-progress', '--cache-dir', str(tmp_path / 'c')]) == 1
    err = capsys.readouterr().err
    assert f"{out} holds a finished training run (5 steps)" in err and '--resume --steps N (N > 5)' in err
    assert (out / 'model.safetensors').read_bytes() == weights
    # A folder with a decoder and no training state (a committed variant's) is refused too.
    (out / 'train_state.pt').unlink()
    with pytest.raises(ValueError, match='holds a trained decoder; a new run would overwrite it'):
        train_decoder(None, TINY, out, progress=False)


def test_default_out_is_a_run_folder_not_the_variants_decoder(tiny_models_file, tiny_decoder_dir, tmp_path,
                                                              monkeypatch, capsys):
    from novic_ros.cli.train import main
    cfg = tmp_path / 'mini.yaml'
    cfg.write_text('nouns: toy\nmax_nouns: 10\nprompts_per_noun: 5\nsteps: 2\nbatch_size: 8\neval_every: 2\n'
                   'decoder: {width: 32, layers: 1, heads: 2, max_tokens: 6}\n')
    before = (tiny_decoder_dir / 'model.safetensors').read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(['--model', 'tiny', '--models-file', str(tiny_models_file), '--config', str(cfg), '--no-progress',
                 '--cache-dir', str(tmp_path / 'c')]) == 0
    assert (tmp_path / 'runs' / 'tiny-mini' / 'model.safetensors').is_file()
    assert (tiny_decoder_dir / 'model.safetensors').read_bytes() == before
    assert f"move it to {tiny_decoder_dir}" in capsys.readouterr().err


def test_packaged_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    from novic_ros.cli.train import main
    from novic_ros.paths import share_dir
    from novic_ros.training.train_config import find_config
    packaged = share_dir() / 'config' / 'train'
    monkeypatch.chdir(tmp_path)
    assert find_config('toy') == find_config('toy.yaml') == packaged / 'toy.yaml'
    assert find_config(str(packaged / 'gpu.yaml')) == packaged / 'gpu.yaml'     # a full path still works
    assert TrainConfig.from_yaml('toy').steps == TrainConfig.from_yaml(packaged / 'toy.yaml').steps
    (tmp_path / 'toy').mkdir()                 # a folder of that name is not a config: the packaged one is used
    assert find_config('toy') == packaged / 'toy.yaml'
    with pytest.raises(FileNotFoundError) as e:
        find_config('config/train/toy.yaml')   # the checkout's relative path, outside the checkout
    assert f"in {packaged}" in str(e.value) and '--config cpu' in str(e.value) and 'toy' in str(e.value)
    assert main(['--model', 'toy', '--config', 'tyo']) == 1
    assert f"training config tyo does not exist; the package's configs are cpu, gpu, toy in {packaged}" \
        in capsys.readouterr().err


def test_mean_shift_is_stored_and_applied(toy_encoder, tmp_path):
    from novic_ros.training.modality_gap import apply_mean_shift
    from novic_ros.models.checkpoint import save_decoder
    src, vocab, meta = load_decoder(TOY_CLIP.parent / 'decoder')
    save_decoder(tmp_path / 'd', src, vocab, meta)
    frames = [x.image for x in toy_world.render_set(1, (64, 64), seed=8)][:30]
    norm = apply_mean_shift(toy_encoder, tmp_path / 'd', frames, 'renders')
    dec, _, meta2 = load_decoder(tmp_path / 'd')
    assert norm > 0 and float(dec.input_shift.norm()) == pytest.approx(norm, rel=1e-5)
    assert meta2.training['mean_shift']['images'] == 30
    expected = torch.tensor(meta.training['text_centroid'])
    pre = Preprocessor(toy_encoder.preprocess_cfg)
    assert torch.allclose(dec.input_shift, expected - toy_encoder.encode_images(pre(frames)).mean(0), atol=1e-5)


def test_toy_clip_build_is_cached(tmp_path, monkeypatch):
    """An up-to-date toy CLIP folder is returned as it is; a changed setting retrains."""
    import shutil
    from novic_ros.training import toy_clip
    shutil.copytree(TOY_CLIP, tmp_path / 'clip')
    monkeypatch.setattr(toy_clip, 'train', lambda *a, **k: pytest.fail('retrained an up-to-date toy CLIP'))
    assert toy_clip.build(tmp_path / 'clip', progress=False) == tmp_path / 'clip'
    calls = []
    monkeypatch.setattr(toy_clip, 'train', lambda cfg, progress: calls.append(cfg) or (toy_clip.create_model(), {}))
    toy_clip.build(tmp_path / 'clip', toy_clip.ToyClipTrainConfig(steps=3), progress=False)
    assert calls and calls[0].steps == 3
    meta = json.loads((tmp_path / 'clip' / 'open_clip_config.json').read_text())['novic_toy']
    assert meta['key'] == toy_clip.cache_key(toy_clip.ToyClipTrainConfig(steps=3))
