"""novic-eval end to end: bags made from labelled renders and real photos, in both storage formats,
raw and compressed, evaluated offline and live through the real node."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from novic_ros.cli.eval import main as eval_main
from novic_ros.cli.toy import main as toy_main
from novic_ros.eval.bagio import BagError, decode, open_bag
from novic_ros.eval.make_bag import make_bag

NOUNS = ['dog', 'cat', 'apple', 'bicycle', 'guitar', 'pizza', 'rocket', 'tree', 'banana', 'car']


@pytest.fixture(scope='module')
def renders(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('renders') / 'imgs'
    assert toy_main(['render', str(out), '--size', '240x320', '--seed', '4', '--nouns', *NOUNS]) == 0
    return out


@pytest.fixture(scope='module')
def bags(renders, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp('bags')
    return {
        'mcap-raw': make_bag(renders, d / 'mcap_raw', storage='mcap', rate_hz=5, progress=False).bag,
        'sqlite3-raw': make_bag(renders, d / 'sqlite_raw', storage='sqlite3', encoding='bgr8', progress=False).bag,
        'mcap-jpeg': make_bag(renders, d / 'mcap_jpeg', storage='mcap', transport='compressed', fmt='jpeg',
                              topic='/camera/image_raw/compressed', progress=False).bag,
        'sqlite3-png': make_bag(renders, d / 'sqlite_png', storage='sqlite3', transport='compressed', fmt='png',
                                topic='/camera/image_raw/compressed', progress=False).bag,
    }


def read_frames(path, topics=None):
    with open_bag(path, topics) as bag:
        return list(bag.frames()), list(bag.warnings)


def load_report(out: Path) -> dict:
    assert (out / 'report.md').is_file() and (out / 'labels.jsonl').is_file() and (out / 'labels.csv').is_file()
    return json.loads((out / 'summary.json').read_text())


@pytest.mark.parametrize('kind', ['mcap-raw', 'sqlite3-raw', 'mcap-jpeg', 'sqlite3-png'])
def test_made_bags_read_back(bags, renders, kind):
    from PIL import Image
    frames, warnings = read_frames(bags[kind])
    assert warnings == [] and len(frames) == len(NOUNS)
    files = sorted(p for p in renders.iterdir() if p.suffix == '.png')
    for f, path in zip(frames, files):
        original = np.asarray(Image.open(path).convert('RGB'))
        got = decode(f)
        if kind.endswith('jpeg'):
            # Lossy: equal to the original's own JPEG round trip at the same quality.
            buf = io.BytesIO()
            Image.fromarray(original).save(buf, format='JPEG', quality=90)
            assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert('RGB')))
        else:
            assert np.array_equal(got, original)
    assert len({f.stamp_ns for f in frames}) == len(frames) and all(f.frame_id == 'camera' for f in frames)
    ann = bags[kind].parent / f"{bags[kind].name}.annotations.csv"
    assert ann.read_text().splitlines()[1:3] == [f'{frames[0].topic},0,{NOUNS[0]}', f'{frames[0].topic},1,{NOUNS[1]}']


def test_video_to_bag(renders, tmp_path):
    from PIL import Image
    video = tmp_path / 'clip.mp4'
    with av.open(str(video), 'w') as out:
        stream = out.add_stream('mpeg4', rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, 'yuv420p'
        for p in sorted(renders.glob('*.png')):
            frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(p).convert('RGB')), format='rgb24')
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert eval_main(['make-bag', str(video), str(tmp_path / 'vbag'), '--rate', '10', '--frame-id', 'cam9']) == 0
    frames, _ = read_frames(tmp_path / 'vbag')
    assert len(frames) == len(NOUNS) and frames[0].frame_id == 'cam9'
    assert frames[1].stamp_ns - frames[0].stamp_ns == 100_000_000
    assert decode(frames[0]).shape == (240, 320, 3)


@pytest.mark.parametrize('kind', ['mcap-raw', 'sqlite3-png'])
def test_offline_labels_every_frame_like_the_core(bags, kind, tmp_path, toy_classifier):
    out = tmp_path / 'report'
    assert eval_main(['offline', str(bags[kind]), '--out', str(out), '--labels-bag', str(tmp_path / 'labelled'),
                      '--backend', 'torch', '--no-progress']) == 0
    summary = load_report(out)
    rows = [json.loads(l) for l in (out / 'labels.jsonl').read_text().splitlines()]
    frames, _ = read_frames(bags[kind])
    assert [r['index'] for r in rows] == list(range(len(frames)))       # every frame once, in order
    for row, f in zip(rows, frames):
        expected = toy_classifier.classify(decode(f))[0]
        assert [l['label'] for l in row['labels']] == [l.text for l in expected.labels]
        assert np.allclose([l['score'] for l in row['labels']], [l.score for l in expected.labels], atol=1e-5)
        assert row['stamp_ns'] == f.stamp_ns and row['latency_ms'] > 0
    # The score in the report is the hand count: frames whose first label is the rendered noun.
    correct = sum(r['labels'][0]['label'] == n for r, n in zip(rows, NOUNS))
    assert summary['score']['n'] == len(NOUNS)
    assert summary['score']['top1'] == pytest.approx(correct / len(NOUNS))
    assert summary['score']['top1'] >= 0.5
    # The labels bag: original topic plus /novic/labels, one Classification per frame with its header.
    labelled, _ = read_frames(tmp_path / 'labelled')
    assert len(labelled) == len(frames)
    from novic_ros.eval.bagio import message_cdr, typestore
    with open_bag(tmp_path / 'labelled') as b:
        msgs = [
            typestore().deserialize_cdr(message_cdr(rec), rec.topic.msgtype) for rec, _ in b.records({'/novic/labels'})
        ]
    assert [m.results[0].class_id for m in msgs] == [r['labels'][0]['label'] for r in rows]
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in msgs] == [f.stamp_ns for f in frames]
    for plot in ('latency_hist.png', 'accuracy_per_class.png'):
        assert (out / plot).stat().st_size > 1000
    if kind == 'mcap-raw':      # 10 frames at 5 Hz: 1.8 s of bag time, once a blank plot
        assert green_share(out / 'throughput.png') > 0.2


def green_share(png: Path) -> float:
    """Share of the image painted in the throughput plot's colour (#2a9d5c)."""
    from PIL import Image
    rgb = np.asarray(Image.open(png).convert('RGB')).astype(int)
    return float((np.abs(rgb - [0x2a, 0x9d, 0x5c]).sum(axis=2) < 30).mean())


def test_throughput_of_short_runs():
    from novic_ros.eval.report import throughput
    edges, rate = throughput(np.arange(10) * 0.2)           # 5 Hz for 1.8 s
    assert np.allclose(rate, 5.0) and edges[0] < 0 < 1.8 < edges[-1] and len(rate) == 5
    edges, rate = throughput(np.array([3.0]))
    assert list(rate) == [1.0] and edges[0] < 3.0 < edges[-1]


def test_offline_on_real_photographs(photos, tmp_path):
    from PIL import Image
    folder = tmp_path / 'photos'
    folder.mkdir()
    for i, (name, frame, _) in enumerate(photos):
        Image.fromarray(frame).save(folder / f"{i:02d}_{Path(name).stem}.png")
    make_bag(folder, tmp_path / 'pbag', progress=False)
    assert eval_main(['offline', str(tmp_path / 'pbag'), '--out', str(tmp_path / 'r'), '--backend', 'torch',
                      '--no-progress']) == 0
    summary = load_report(tmp_path / 'r')
    assert summary['frames'] == len(photos) == summary['labelled'] and summary['score'] is None


def test_live_through_the_real_node(bags, tmp_path, toy_classifier):
    out = tmp_path / 'live'
    assert eval_main(['live', str(bags['mcap-raw']), '--start-node', '--out', str(out), '--speed', '1',
                      '--node-param', 'backend:=torch', '--no-progress']) == 0
    summary = load_report(out)
    live = summary['live']
    assert live['sent'] == len(NOUNS) == live['answered'] and live['dropped'] == 0
    rows = [json.loads(l) for l in (out / 'labels.jsonl').read_text().splitlines()]
    frames, _ = read_frames(bags['mcap-raw'])
    for row, f in zip(rows, frames):
        assert row['answered'] and 0 < row['latency_ms'] < 5000
        assert [l['label'] for l in row['labels']] == [l.text for l in toy_classifier.classify(decode(f))[0].labels]
    # 5 Hz in, so about 5 Hz out, and p50 <= p95 <= max.
    assert 3.5 < live['output_rate_hz'] < 7.0
    assert 0 < live['latency_p50_ms'] <= live['latency_p95_ms'] <= live['latency_max_ms']
    assert summary['score']['n'] == len(NOUNS)


def test_live_compressed_bag(bags, tmp_path):
    out = tmp_path / 'live_c'
    # Recorded timing (10 Hz): at a faster playback a loaded machine drops frames for newer ones, as it should.
    assert eval_main(['live', str(bags['sqlite3-png']), '--start-node', '--out', str(out), '--speed', '1',
                      '--node-param', 'transport:=compressed', '--node-param', 'backend:=torch', '--no-progress']) == 0
    live = load_report(out)['live']
    assert live['sent'] == len(NOUNS) == live['answered'] and live['dropped'] == 0


def test_unknown_storage_is_named(tmp_path, capsys, bags):
    fake = tmp_path / 'weird'
    shutil.copytree(bags['mcap-raw'], fake)
    meta = (fake / 'metadata.yaml').read_text().replace('storage_identifier: mcap', 'storage_identifier: parquet')
    (fake / 'metadata.yaml').write_text(meta)
    assert eval_main(['offline', str(fake)]) == 1
    assert "storage 'parquet'" in capsys.readouterr().err
    with pytest.raises(BagError, match='unknown storage format'):
        make_bag(tmp_path, tmp_path / 'x', storage='parquet')


def test_truncated_bag_evaluates_what_it_can(bags, tmp_path, capsys):
    cut = tmp_path / 'cut'
    shutil.copytree(bags['mcap-raw'], cut)
    mcap = next(cut.glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:len(data) // 2])
    assert eval_main(['offline', str(cut), '--out', str(tmp_path / 'r'), '--backend', 'torch', '--no-progress']) == 0
    summary = load_report(tmp_path / 'r')
    assert 0 < summary['frames'] < len(NOUNS)
    assert any('cut short' in w for w in summary['warnings']) and 'warning:' in capsys.readouterr().err


def test_a_bag_without_metadata_is_read_from_its_storage_file(bags, tmp_path):
    for kind in ('sqlite3-raw', 'mcap-jpeg'):           # a recorder that crashed before writing metadata.yaml
        crashed = tmp_path / kind
        shutil.copytree(bags[kind], crashed)
        (crashed / 'metadata.yaml').unlink()
        frames, warnings = read_frames(crashed)
        assert len(frames) == len(NOUNS) and 'metadata.yaml' in warnings[0]
        original, _ = read_frames(bags[kind])
        assert [f.rawdata for f in frames] == [f.rawdata for f in original]


def test_annotations_that_name_missing_frames_warn_and_the_rest_is_scored(bags, tmp_path):
    ann = tmp_path / 'ann.csv'
    ann.write_text('topic,frame,nouns\n,0,dog\n,1,cat;kitten\n,99,horse\n/other/topic,0,tree\n')
    out = tmp_path / 'r'
    assert eval_main(['offline', str(bags['mcap-raw']), '--annotations', str(ann), '--out', str(out),
                      '--backend', 'torch', '--no-progress']) == 0
    summary = load_report(out)
    assert summary['score']['n'] == 2
    joined = ' '.join(summary['warnings'])
    assert '99' in joined and '/other/topic' in joined
    assert '## Warnings' in (out / 'report.md').read_text()
