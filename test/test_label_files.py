"""The rules a labels file named by a peer must pass (core.label_files, the parameter table's bounds),
without a node: folders, file types, sizes, bad JSONL, and summaries that do not echo the file."""
from __future__ import annotations

import json
import os
import threading

import pytest

from novic_ros.core.label_files import (MAX_LABEL_CHARS, MAX_LABELS, MAX_LABELS_FILE_BYTES, read_labels_file,
                                        summary)
from novic_ros.params import NodeParams

SECRET = 'root:x:0:0:secret-line'


@pytest.fixture
def dirs(tmp_path):
    allowed, outside = tmp_path / 'allowed', tmp_path / 'outside'
    allowed.mkdir()
    outside.mkdir()
    return allowed, outside


def refused(path, allowed_dirs, match):
    with pytest.raises(ValueError, match=match) as e:
        read_labels_file(str(path), allowed_dirs)
    assert SECRET not in str(e.value)
    return str(e.value)


def test_only_regular_files_under_the_allowed_folders(dirs):
    allowed, outside = dirs
    (outside / 'secret.txt').write_text(SECRET + '\n')
    (allowed / 'ok.txt').write_text('dog\ncat\n')
    (allowed / 'link.txt').symlink_to(outside / 'secret.txt')       # a symlink out is resolved, then refused
    why = refused(outside / 'secret.txt', [str(allowed)], 'outside the allowed folders.*labels_dirs')
    assert 'labels_dirs naming its folder' in why                   # the fix
    refused(allowed / 'link.txt', [str(allowed)], 'outside the allowed folders')
    refused(allowed / '..' / 'outside' / 'secret.txt', [str(allowed)], 'outside the allowed folders')
    refused('/etc/passwd', [str(allowed)], 'outside the allowed folders')
    assert read_labels_file(str(allowed / 'ok.txt'), [str(allowed)]) == ('dog', 'cat')
    # A FIFO with nobody writing (a plain open would block for ever), and one a writer holds open
    # but never writes to (a read would block): refused at once by the file type.
    fifo = allowed / 'fifo.txt'
    os.mkfifo(fifo)
    done = threading.Event()
    t = threading.Thread(target=lambda: (refused(fifo, [str(allowed)], 'not a regular file'), done.set()), daemon=True)
    t.start()
    assert done.wait(5), "opening a FIFO blocked"
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        refused(fifo, [str(allowed)], 'not a regular file')
    finally:
        os.close(writer)
    refused('/dev/zero', ['/dev'], 'not a regular file')            # even with a device folder allowed
    refused(allowed, [str(allowed)], 'not a regular file')
    # A pseudo-file reports 0 bytes: nothing is read from it even if /proc is allowed.
    assert read_labels_file('/proc/self/environ', ['/proc']) == ()


def test_size_and_label_caps(dirs):
    allowed, _ = dirs
    sparse = allowed / 'huge.txt'
    with open(sparse, 'wb') as f:
        f.truncate(2 << 30)                 # 2 GB, no disk used
    why = refused(sparse, [str(allowed)], f'more than the {MAX_LABELS_FILE_BYTES} allowed')
    assert str(2 << 30) in why
    long_label = allowed / 'long.txt'
    long_label.write_text('dog\n' + 'x' * (MAX_LABEL_CHARS + 1) + '\n')
    refused(long_label, [str(allowed)], f'label 2 has {MAX_LABEL_CHARS + 1} characters')
    many = allowed / 'many.txt'
    many.write_text('a\n' * (MAX_LABELS + 1))
    refused(many, [str(allowed)], f'more than the {MAX_LABELS} allowed')


@pytest.mark.parametrize('content, line', [
    ('{"label": 5}\n', 1), ('{"label": "dog"}\nnot json\n', 2), ('["dog"]\n', 1), ('{"name": "dog"}\n', 1),
    ('{"label": null}\n', 1), ('[' * 100000 + '\n', 1)])
def test_bad_jsonl_names_the_line_never_crashes(dirs, content, line):
    allowed, _ = dirs
    path = allowed / 'bad.jsonl'
    path.write_text(content)
    refused(path, [str(allowed)], f'line {line}: not a JSON object with a text .label.')


def test_non_utf8_is_refused(dirs):
    allowed, _ = dirs
    (allowed / 'bin.txt').write_bytes(b'dog\n\xff\xfe\n')
    refused(allowed / 'bin.txt', [str(allowed)], 'not UTF-8 text')


def test_summary_shows_a_count_a_hash_and_a_few_labels_cut_short():
    labels = [SECRET * 3] + [f'label{i}' for i in range(50)]
    text = summary(labels)
    assert text.startswith('51 labels (sha256 ')
    assert SECRET * 3 not in text and 'label2' not in text and text.endswith(', …]')
    assert summary(labels) == text and summary(labels[1:]) != text


def test_node_parameters_check_the_path_rules_quickly_and_read_only_in_prompted_mode(dirs):
    allowed, outside = dirs
    (outside / 'x.txt').write_text(SECRET + '\n')
    (allowed / 'bad.jsonl').write_text('{"label": 5}\n')
    params = NodeParams.from_mapping({'labels_dirs': [str(allowed)]})
    with pytest.raises(ValueError, match="parameter 'labels_file': .*outside the allowed folders"):
        params.updated(labels_file=str(outside / 'x.txt'))
    # Validation does not read the file; the build does, in prompted mode only.
    bad = params.updated(labels_file=str(allowed / 'bad.jsonl'))
    assert bad.model.to_options().labels == ()
    with pytest.raises(ValueError, match='line 1'):
        bad.updated(mode='prompted', labels=['dog']).model.to_options()
    # Generate mode keeps no label list (a long one costs nothing there).
    assert params.updated(labels=['dog'] * 1000).model.to_options().labels == ()
    assert params.updated(labels=[f'l{i}' for i in range(3)], mode='prompted').model.to_options().labels == \
        ('l0', 'l1', 'l2')


@pytest.mark.parametrize('name, value, match', [
    ('rate_hz', 1e-300, 'at least 0.01 Hz'), ('rate_hz', 1e-6, 'at least 0.01 Hz'), ('rate_hz', float('nan'), 'NaN'),
    ('rate_hz', 1e9, 'outside'), ('labels', ['x'] * (MAX_LABELS + 1), 'entries, more than'),
    ('labels', ['x' * 10**6], 'characters, more than'), ('prompt_template', '{}' + 'x' * 10**6, 'characters'),
    ('categories', ['animal'] * 1000, 'entries, more than'), ('labels_file', '/' + 'a' * 10**5, 'characters')])
def test_bounds_on_live_values(name, value, match):
    with pytest.raises(ValueError, match=match) as e:
        NodeParams().updated(**{name: value})
    assert len(str(e.value)) < 400          # the reason does not echo a megabyte back


def test_a_legal_slow_rate_is_accepted():
    assert NodeParams().updated(rate_hz=0.01).rate_hz == 0.01
    assert NodeParams().updated(rate_hz=0.0).rate_hz == 0.0


def test_a_paced_thread_gives_way_while_it_reads_a_long_jsonl(tmp_path):
    from novic_ros.core.label_files import LINES_PER_STEP
    from novic_ros.core.pacing import paced
    f = tmp_path / 'nouns.jsonl'
    f.write_text(''.join(json.dumps({'label': f'noun {i}'}) + '\n' for i in range(3 * LINES_PER_STEP + 10)))
    pauses = []
    with paced(pauses.append):
        labels = read_labels_file(str(f), [str(tmp_path)])
    assert len(pauses) == 3 and all(p >= 0 for p in pauses)
    assert labels == read_labels_file(str(f), [str(tmp_path)])      # unpaced: the same labels, no pause
    assert len(pauses) == 3 and len(labels) == 3 * LINES_PER_STEP + 10
