"""novic-eval offline --overlay DIR: one MP4 per image topic holding every labelled frame drawn as
the node's overlay draws it (frames/overlay.draw_labels)."""
import json

import av
import numpy as np
from PIL import Image

from novic_ros.cli.eval import main as eval_main
from novic_ros.frames.overlay import draw_labels
from novic_ros.training import toy_world


def test_offline_overlay_writes_the_labelled_frames_as_the_node_draws_them(tmp_path, capsys):
    pics = tmp_path / 'pics'
    pics.mkdir()
    renders = toy_world.render_set(1, (120, 160), seed=3, classes=[0, 20, 40, 60, 80, 100])
    for i, r in enumerate(renders):
        Image.fromarray(r.image).save(pics / f'{i:02d}.png')
    (pics / 'empty.png').write_bytes(b'')                        # left out with a warning, not drawn
    assert eval_main(['make-bag', str(pics), str(tmp_path / 'bag'), '--no-progress', '--rate', '5']) == 0
    code = eval_main(['offline', str(tmp_path / 'bag'), '--out', str(tmp_path / 'out'), '--backend', 'torch',
                      '--no-progress', '--overlay', str(tmp_path / 'overlay')])
    out = capsys.readouterr().out
    assert code == 0
    video = tmp_path / 'overlay' / 'camera_image_raw.mp4'
    assert f"overlay: {video} (6 frames of /camera/image_raw)" in out
    labels = [json.loads(line)['labels'] for line in (tmp_path / 'out' / 'labels.jsonl').read_text().splitlines()]
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 5.0
        frames = [f.to_ndarray(format='rgb24') for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)
    for got, r, found in zip(frames, renders, labels):
        expected = draw_labels(r.image, [(x['label'], x['score']) for x in found]).astype(np.float32)
        # H.264 is lossy: the drawing is much nearer to the node's drawing than to the bare frame.
        to_drawn = np.abs(got - expected).mean()
        to_bare = np.abs(got - r.image.astype(np.float32)).mean()
        assert to_drawn < 12 and to_bare > 2 * to_drawn, (to_drawn, to_bare)   # measured: 8.5 and 26
