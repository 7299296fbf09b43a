"""The command-line tools' edges as a new user meets them: help on every flag, folders and patterns
as inputs, bad files named once on stderr (empty, a float TIFF, not an image), nothing loaded when no
input can be read, and make-bag's honest account of the files it leaves out, with a progress total."""
import argparse
import importlib

import numpy as np
import pytest
from PIL import Image

from novic_ros.cli.classify import main as classify_main
from novic_ros.cli.eval import main as eval_main
from novic_ros.training import toy_world

CLIS = ['classify', 'nouns', 'toy', 'train', 'export', 'build_engines', 'eval', 'bench', 'fetch', 'demo']


def _actions(p: argparse.ArgumentParser, path: str):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(a, argparse._HelpAction):
            yield path, a


def test_every_flag_of_every_tool_has_help():
    seen, missing = 0, []
    for name in CLIS:
        mod = importlib.import_module(f'novic_ros.cli.{name}')
        build = getattr(mod, 'parser', None) or getattr(mod, 'build_parser')
        for path, action in _actions(build(), name):
            seen += 1
            if not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert seen > 100 and not missing, f"flags without help: {missing}"


def _picture(path, index: int, seed: int = 0):
    Image.fromarray(toy_world.render(index, (96, 96), np.random.default_rng(seed))).save(path)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """Two PNGs, a GIF, an empty PNG, a float TIFF of values 0..1 (black under an 8-bit conversion),
    a float TIFF of values 0..255 (converts as Pillow documents) and a text file."""
    d = tmp_path_factory.mktemp('inputs')
    _picture(d / 'a.png', 3)
    _picture(d / 'b.png', 40)
    _picture(d / 'c.gif', 80)
    (d / 'empty.png').write_bytes(b'')
    rng = np.random.default_rng(1)
    Image.fromarray(rng.random((64, 64)).astype(np.float32), mode='F').save(d / 'unit.tif')
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.float32), mode='F').save(d / 'grey.tif')
    (d / 'notes.txt').write_text('not an image\n')
    return d


def test_classify_a_folder_and_a_pattern_naming_each_bad_file_once(folder, capsys):
    code = classify_main([str(folder), str(folder / 'a*.png'), '--backend', 'torch'])
    out, err = capsys.readouterr()
    assert code == 1                           # as the README says: some input could not be labelled
    labelled = [line.split(':')[0] for line in out.splitlines()]
    assert labelled == [str(folder / n) for n in ('a.png', 'b.png', 'c.gif', 'grey.tif', 'a.png')]
    assert 'ERROR' not in out and 'error' not in out            # errors go to stderr only, once each
    errors = err.splitlines()
    assert errors == [f"error: {folder / 'empty.png'}: empty file (0 bytes)",
                      next(e for e in errors if 'unit.tif' in e)]
    assert 'a 32-bit float image (values 9.6e-05..1)' in errors[1] and 'scale it to 0..255' in errors[1]


def test_classify_checks_every_input_before_the_model_loads(folder, tmp_path, capsys, monkeypatch):
    import novic_ros.cli.classify as classify
    monkeypatch.setattr(classify, 'build_classifier', lambda *_: pytest.fail("the model loaded for no input"))
    (tmp_path / 'none').mkdir()
    code = classify_main([str(tmp_path / 'missing.png'), str(tmp_path / 'none'), str(tmp_path / '*.jpg'),
                          str(folder / 'empty.png'), str(folder / 'notes.txt'), '--json'])
    out, err = capsys.readouterr()
    assert code == 1
    assert [r['labels'] for r in __import__('json').loads(out)] == [[]] * 5
    assert err.splitlines() == [
        f"error: {tmp_path / 'missing.png'}: no such file",
        f"error: {tmp_path / 'none'}: a folder with no images "
        "(.png, .jpg, .jpeg, .bmp, .gif, .webp, .ppm, .tif, .tiff)",
        f"error: {tmp_path / '*.jpg'}: no file matches this pattern",
        f"error: {folder / 'empty.png'}: empty file (0 bytes)",
        next(e for e in err.splitlines() if 'notes.txt' in e),
        "error: no image to classify; the model was not loaded",
    ]
    assert 'cannot read as an image' in err.splitlines()[4]


def test_make_bag_takes_gifs_says_what_it_left_out_and_counts_down(folder, tmp_path, capsys):
    code = eval_main(['make-bag', str(folder), str(tmp_path / 'bag')])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith('4 frames -> ')                        # a, b, c.gif, grey.tif
    warnings = [line for line in err.splitlines() if line.startswith('warning:')]
    assert warnings[0] == 'warning: left out 1 files that are not images (.png, .jpg, .jpeg, .bmp, .gif, .webp, ' \
                          '.ppm, .tif, .tiff): notes.txt'
    assert any('empty.png: empty file' in w for w in warnings) and any(
        'unit.tif: a 32-bit float' in w for w in warnings
    )
    assert '6/6 [' in err and '<00:00' in err      # tqdm with its total and an ETA: six image files read
