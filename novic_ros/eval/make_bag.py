"""novic-eval make-bag: a folder of images or a video file -> a ROS 2 bag of sensor_msgs/Image or
CompressedImage at a chosen rate and frame_id, so users and tests have bags to play. When the
folder carries labels (labels.json, as written by `novic-toy render`), the matching annotations
file is written beside the bag."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..core.errors import FrameError
from ..image_files import IMAGE_SUFFIXES, list_images, read_image
from .annotations import write_annotations
from .bagio import COMPRESSED, IMAGE, BagError, create_writer, typestore

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')
START_NS = 1_700_000_000 * 1_000_000_000      # fixed start stamp: the same input makes the same bag


@dataclass(frozen=True)
class MakeBagResult:
    bag: Path
    frames: int
    annotations: Path | None


def _folder_frames(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    files = list_images(folder)
    if not files:
        raise BagError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for p in files:
        try:
            yield p.name, read_image(p)
        except FrameError as e:
            log.warning("skipping %s", e)


def _video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    import av
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise BagError(f"cannot open video {path}: {e}") from e
    with container:
        for i, frame in enumerate(container.decode(video=0)):
            yield f"{path.name}#{i}", frame.to_ndarray(format='rgb24')


def source_frames(source: Path) -> Iterator[tuple[str, np.ndarray]]:
    if source.is_dir():
        return _folder_frames(source)
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        return _video_frames(source)
    raise BagError(f"{source} is neither a folder of images nor a video file ({', '.join(VIDEO_SUFFIXES)})")


def _message(rgb: np.ndarray, stamp_ns: int, frame_id: str, transport: str, encoding: str, fmt: str):
    from ..ros.image_conversion import encode_compressed, rgb_to_raw
    store = typestore()
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)
    if transport == 'compressed':
        data = np.frombuffer(encode_compressed(rgb, fmt), np.uint8)
        return COMPRESSED, store.types[COMPRESSED](header=header, format=f'rgb8; {fmt} compressed bgr8', data=data)
    raw, step = rgb_to_raw(rgb, encoding)
    h, w = rgb.shape[:2]
    return IMAGE, store.types[IMAGE](header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
                                     data=np.frombuffer(raw, np.uint8))


def make_bag(source: str | Path, out: str | Path, *, topic: str = '/camera/image_raw', rate_hz: float = 10.0,
             frame_id: str = 'camera', storage: str = 'mcap', transport: str = 'raw', encoding: str = 'rgb8',
             fmt: str = 'jpeg', progress: bool = True) -> MakeBagResult:
    source, out = Path(source), Path(out)
    if rate_hz <= 0:
        raise BagError(f"rate must be positive, got {rate_hz}")
    if transport not in ('raw', 'compressed'):
        raise BagError(f"transport must be raw or compressed, got {transport!r}")
    labels = {}
    if source.is_dir() and (source / 'labels.json').is_file():
        labels = json.loads((source / 'labels.json').read_text())
    frames = source_frames(source)
    writer = create_writer(out, storage)
    period_ns = int(round(1e9 / rate_hz))
    store = typestore()
    conn, rows, count = None, [], 0
    try:
        for name, rgb in tqdm(frames, desc='make-bag', unit='frame', disable=not progress):
            stamp = START_NS + count * period_ns
            msgtype, msg = _message(rgb, stamp, frame_id, transport, encoding, fmt)
            if conn is None:
                conn = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
            if name in labels:
                rows.append((topic, count, labels[name]))
            count += 1
    finally:
        writer.close()
    if count == 0:
        raise BagError(f"no frames could be read from {source}")
    ann = None
    if rows:
        ann = out.parent / f"{out.name}.annotations.csv"
        write_annotations(ann, rows)
    return MakeBagResult(out, count, ann)
