"""Decoder checkpoints round-trip exactly, and pairing mistakes fail with clear messages."""
import json

import numpy as np
import pytest
import torch

from conftest import TINY_CLIP_CFG, make_tiny_clip, make_tiny_decoder
from novic_ros.models.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, check_pairing, checkpoint_hash, clip_fingerprint,
                                       load_decoder, read_meta, save_decoder)
from novic_ros.models.clip_encoder import ClipEncoder, ClipSpec
from novic_ros.core.errors import CheckpointMismatchError, ModelLoadError
from novic_ros.pipeline import build_classifier
from novic_ros.params import ModelParams


def test_round_trip_is_exact(tiny_decoder_dir, tmp_path):
    dec, vocab, meta = load_decoder(tiny_decoder_dir)
    with torch.no_grad():
        dec.input_shift.normal_()           # buffers travel too
    save_decoder(tmp_path / 'copy', dec, vocab, meta)
    dec2, vocab2, meta2 = load_decoder(tmp_path / 'copy')
    sd, sd2 = dec.state_dict(), dec2.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert np.array_equal(vocab.clip_ids, vocab2.clip_ids)
    assert meta2 == meta
    assert json.loads((tmp_path / 'copy' / CONFIG_FILE).read_text())['decoder']['embed_dim'] == 32


def test_checkpoint_hash_tracks_content(tiny_decoder_dir, tmp_path):
    dec, vocab, meta = load_decoder(tiny_decoder_dir)
    save_decoder(tmp_path / 'a', dec, vocab, meta)
    assert checkpoint_hash(tmp_path / 'a') == checkpoint_hash(tiny_decoder_dir)
    with torch.no_grad():
        dec.ln_final.weight.add_(1e-3)
    save_decoder(tmp_path / 'b', dec, vocab, meta)
    assert checkpoint_hash(tmp_path / 'b') != checkpoint_hash(tiny_decoder_dir)


def test_wrong_embedding_width_names_both_widths(tiny_encoder, tmp_path):
    wide_cfg = json.loads(json.dumps(TINY_CLIP_CFG))
    wide_cfg['embed_dim'] = 48
    wide = ClipEncoder(ClipSpec('local-dir:' + str(make_tiny_clip(tmp_path / 'wide', cfg=wide_cfg))))
    meta = read_meta(make_tiny_decoder(tiny_encoder, tmp_path / 'dec'))
    with pytest.raises(CheckpointMismatchError, match=r'32-wide.*48-wide'):
        check_pairing(meta, wide.embed_dim, clip_fingerprint(wide.model), wide.spec.describe(), 'dec')


def test_other_weights_of_the_same_architecture_are_refused(tiny_encoder, tiny_decoder_dir, tmp_path):
    other = ClipEncoder(ClipSpec('local-dir:' + str(make_tiny_clip(tmp_path / 'other', seed=99))))
    meta = read_meta(tiny_decoder_dir)
    with pytest.raises(CheckpointMismatchError, match='fingerprint'):
        check_pairing(meta, other.embed_dim, clip_fingerprint(other.model), other.spec.describe(), 'dec')
    check_pairing(meta, other.embed_dim, clip_fingerprint(other.model), other.spec.describe(), 'dec', strict=False)
    check_pairing(meta, tiny_encoder.embed_dim, clip_fingerprint(tiny_encoder.model), 'tiny', 'dec')


def test_loader_refuses_a_mismatched_variant(tiny_clip_dir, tiny_encoder, tmp_path):
    other = make_tiny_clip(tmp_path / 'other', seed=5)
    dec = make_tiny_decoder(tiny_encoder, tmp_path / 'dec')
    models = tmp_path / 'models.yaml'
    models.write_text(f"bad:\n  clip_model: local-dir:{other}\n  decoder: {dec}\n")
    with pytest.raises(CheckpointMismatchError):
        build_classifier(ModelParams(model='bad', models_file=str(models), backend='torch', device='cpu'))


@pytest.mark.parametrize('damage, words', [
    (lambda d: (d / CONFIG_FILE).unlink(), 'not found'),
    (lambda d: (d / WEIGHTS_FILE).unlink(), 'weights not found'),
    (lambda d: (d / CONFIG_FILE).write_text('{not json'), 'not valid JSON'),
    (lambda d: (d / CONFIG_FILE).write_text('{"format": "something/else"}'), 'format'),
    (lambda d: (d / WEIGHTS_FILE).write_bytes(b'garbage' * 10), 'cannot read decoder weights'),
])
def test_broken_checkpoints_fail_clearly(tiny_encoder, tmp_path, damage, words):
    d = make_tiny_decoder(tiny_encoder, tmp_path / 'dec')
    damage(d)
    with pytest.raises(ModelLoadError, match=words):
        load_decoder(d)


def test_weights_that_do_not_fit_the_config(tiny_encoder, tmp_path):
    d = make_tiny_decoder(tiny_encoder, tmp_path / 'dec')
    cfg = json.loads((d / CONFIG_FILE).read_text())
    cfg['decoder']['width'] = 128
    (d / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match='does not fit'):
        load_decoder(d)


def test_random_weights_are_seeded_so_every_process_agrees(tmp_path):
    """`pretrained: random:SEED` builds the same weights whatever the process's RNG state (one fingerprint,
    one embedding cache, a decoder that pairs later); an architecture without weights is a clear error."""
    from novic_ros.core.variants import get_variant
    models = tmp_path / 'models.yaml'
    models.write_text("a:\n  clip_model: novic-toy-clip\n  pretrained: random:3\n  decoder: d\n"
                      "b:\n  clip_model: novic-toy-clip\n  pretrained: random:4\n  decoder: d\n")
    prints = []
    for name, rng_state in (('a', 1), ('a', 2), ('b', 1)):
        torch.manual_seed(rng_state)
        prints.append(clip_fingerprint(ClipEncoder(get_variant(name, models).clip).model))
    assert prints[0] == prints[1] != prints[2]
    unseeded = tmp_path / 'unseeded.yaml'
    unseeded.write_text("none:\n  clip_model: novic-toy-clip\n  pretrained: null\n  decoder: d\n")
    with pytest.raises(
        ModelLoadError, match=r"'none' names the architecture novic-toy-clip without weights.*random:SEED"
    ):
        get_variant('none', unseeded)
    bad = tmp_path / 'bad.yaml'
    bad.write_text("x:\n  clip_model: novic-toy-clip\n  pretrained: random:x\n  decoder: d\n")
    with pytest.raises(ModelLoadError, match='random:SEED with an integer SEED'):
        ClipEncoder(get_variant('x', bad).clip)
