"""novic-eval offline --overlay DIR: the bag's frames drawn with their labels, one H.264 MP4 per image
topic (PyAV), with the drawing of the node's overlay topic (frames/overlay.draw_labels)."""
from __future__ import annotations

import fractions
import re
from pathlib import Path

import numpy as np

from ..frames.overlay import draw_labels
from .bagio import FrameDecoder, open_bag
from .run_results import FrameResult


def topic_file(topic: str) -> str:
    """'/camera/image_raw' -> 'camera_image_raw.mp4'."""
    return (re.sub(r'[^A-Za-z0-9_.-]+', '_', topic).strip('_') or 'topic') + '.mp4'


def _rate(results: list[FrameResult]) -> fractions.Fraction:
    """Frames per second of the video: the median interval of the frames' bag times (10 when unknown)."""
    times = np.array(sorted(r.timestamp_ns for r in results), np.float64)
    step = np.median(np.diff(times)) / 1e9 if len(times) > 1 else 0.0
    return fractions.Fraction(1 / step if step > 0 else 10.0).limit_denominator(1000)


class _Writer:
    def __init__(self, path: Path, rgb: np.ndarray, rate: fractions.Fraction):
        import av
        self._av = av
        self.container = av.open(str(path), 'w')
        self.stream = self.container.add_stream('libx264', rate=rate)
        h, w = rgb.shape[:2]
        self.size = (h - h % 2, w - w % 2)      # 4:2:0 needs even sides
        self.stream.height, self.stream.width = self.size
        self.stream.pix_fmt = 'yuv420p'
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = self.size
        if rgb.shape[0] < h or rgb.shape[1] < w:      # a frame of another size: padded, then cut to the first one's
            rgb = np.pad(rgb, ((0, max(0, h - rgb.shape[0])), (0, max(0, w - rgb.shape[1])), (0, 0)))
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format='rgb24')
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def write_overlays(bag_path: str | Path, topics, max_pixels: int, results: list[FrameResult],
                   out_dir: str | Path) -> dict[str, tuple[Path, int]]:
    """Every labelled frame of the bag, read again and drawn with its labels, into OUT_DIR/<topic>.mp4
    (frames that could not be labelled are left out). Returns {topic: (file, frames written)}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {(r.topic, r.index): r.labels for r in results if r.labels and r.index is not None}
    rates = {t: _rate([r for r in results if r.topic == t]) for t in {r.topic for r in results}}
    writers: dict[str, _Writer] = {}
    decoder = FrameDecoder(max_pixels)
    try:
        with open_bag(Path(bag_path), topics, max_pixels) as bag:
            for f in bag.frames():
                try:
                    rgb = decoder(f)        # video packets: every one, in order (pictures need their references)
                except Exception:   # noqa: BLE001 -- the run already counted why this frame has no labels
                    continue
                found = labels.get((f.topic, f.index))
                if found is None:
                    continue
                drawn = draw_labels(rgb, found)
                if f.topic not in writers:
                    writers[f.topic] = _Writer(out_dir / topic_file(f.topic), drawn, rates[f.topic])
                writers[f.topic].write(drawn)
    finally:
        for w in writers.values():
            w.close()
    return {t: (out_dir / topic_file(t), w.frames) for t, w in writers.items()}
