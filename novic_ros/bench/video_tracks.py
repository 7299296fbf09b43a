"""make bench sections `video` and `tracks`: what H.264/H.265 input and object tracking cost per
640x480 frame, beside what the node spends on a frame anyway.

video: each packet of a 30-picture stream (keyframe every 10) decoded in order, in software, and the
newest picture turned into RGB; beside it the raw rgb8 message conversion (frames.conversion) and a
JPEG CompressedImage decode of the same pictures. Two kinds of picture: a smooth camera-like one
(stock_camera's pattern, moving) and toy scenes with sensor noise (noise costs bits: the heavier case).

tracks: ObjectTracker.update on the toy sequence's detections (2-4 objects a frame, found by the toy
finder once, before timing), beside the toy finder's own time per frame; and what each setting buys,
scored against the sequence's identities (eval/tracking.py: coverage, id switches, label flips)."""
from __future__ import annotations

import time

import numpy as np

from ..core.tracks import ObjectTracker, TrackOptions
from ..eval.tracking import ids_unique_across_objects, score_tracks
from ..frames.video import VideoDecoder, VideoEncoder, picture_to_rgb
from ..params import ModelParams, NodeParams
from ..pipeline import build_classifier, build_object_finder
from ..frames.conversion import compressed_to_rgb, encode_compressed, raw_to_rgb, rgb_to_raw
from ..ros.stock_camera import smooth_pattern
from ..training.toy_sequences import render_sequence
from .sections import _table
from .timing import interleaved


def _moving_pattern(n: int) -> list[np.ndarray]:
    base = smooth_pattern(480, 640 + 4 * n)
    return [np.ascontiguousarray(base[:, 4 * i:4 * i + 640]) for i in range(n)]


def _decode_stream(codec: str, packets: list[bytes]) -> None:
    decoder = VideoDecoder(codec, 'software')
    last = None
    for p in packets:
        pictures = decoder.decode(p)
        last = pictures[-1] if pictures else last
    picture_to_rgb(last)


def video(repeat: int) -> str:
    rows = []
    for name, frames in (('smooth camera picture', _moving_pattern(30)),
                         ('toy scene + sensor noise', [f.image for f in render_sequence(frames=30)])):
        streams = {}
        for codec in ('h264', 'h265'):
            enc = VideoEncoder(codec, 640, 480, keyframe_interval=10)
            streams[codec] = [p for f in frames for p in enc.encode(f)]
        raws = [rgb_to_raw(f, 'rgb8') for f in frames]
        jpegs = [encode_compressed(f, 'jpeg') for f in frames]
        fns = {codec: (lambda c=codec: _decode_stream(c, streams[c])) for codec in streams}
        fns['raw'] = lambda: [raw_to_rgb('rgb8', 480, 640, step, data) for data, step in raws]
        fns['jpeg'] = lambda: [compressed_to_rgb('jpeg', j) for j in jpegs]
        t = interleaved(fns, max(3, repeat // 2), warmup=1)
        per = {k: v / len(frames) for k, v in t.items()}
        kb = {c: sum(map(len, s)) / len(s) / 1024 for c, s in streams.items()}
        rows.append([name, per['raw'], per['jpeg'], sum(map(len, jpegs)) / len(jpegs) / 1024,
                     per['h264'], kb['h264'], per['h265'], kb['h265']])
    return _table(['pictures (640x480)', 'raw rgb8 ms', 'JPEG ms', 'JPEG KB', 'H.264 ms', 'H.264 KB/packet',
                   'H.265 ms', 'H.265 KB/packet'], rows)


def tracks(repeat: int) -> str:
    clf = build_classifier(ModelParams(model='toy', backend='onnxruntime', device='cpu'))
    finder = build_object_finder(clf, ModelParams(model='toy', backend='onnxruntime', device='cpu'))
    sequence = render_sequence()
    t0 = time.perf_counter()
    found = finder.classify([f.image for f in sequence])
    finder_ms = (time.perf_counter() - t0) * 1e3 / len(sequence)
    stability = NodeParams().stability_options()

    def run(weight: float) -> list:
        tracker = ObjectTracker(TrackOptions(appearance_weight=weight), stability)
        return [tracker.update('camera', f.stamp, r.objects, f.stamp) for f, r in zip(sequence, found)]

    t = interleaved({'tracks': lambda: run(0.5), 'boxes only': lambda: run(0.0)}, repeat)
    objects = sum(len(r.objects) for r in found) / len(found)
    per = {k: v / len(sequence) for k, v in t.items()}
    cost = _table(['frames', 'objects / frame', 'toy finder ms / frame', 'tracking ms / frame',
                   'tracking, boxes only ms / frame', 'tracking / finder'],
                  [[len(sequence), round(objects, 2), finder_ms, per['tracks'], per['boxes only'],
                    f"{per['tracks'] / finder_ms * 100:.1f}%"]])
    quality = []
    for name, weight in (('tracks', 0.5), ('boxes only', 0.0)):
        s = score_tracks(sequence, run(weight), TrackOptions().timeout_s)
        quality.append([name, f"{s.coverage * 100:.1f}%", s.id_switches, s.reentries, s.kept_after_timeout,
                        s.frame_label_flips, s.track_label_flips, 'yes' if ids_unique_across_objects(s) else 'NO'])
    return cost + '\n\n' + _table(['scored (CLEAR MOT)', 'objects covered', 'id switches', 'new ids after a timeout',
                                     'old ids after a timeout', 'label flips, frame', 'label flips, track',
                                     'ids unique'], quality)
