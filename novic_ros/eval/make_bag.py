"""novic-eval make-bag: a folder of images or a video file -> a ROS 2 bag of sensor_msgs/Image or
CompressedImage at a chosen rate and frame_id, so users and tests have bags to play. When the
folder carries labels (labels.json: image file name -> a noun or a list of acceptable nouns, as
`novic-toy render` writes it), the matching annotations file is written beside the bag.

Everything that can be checked is checked before writing, and the bag appears only once complete:
a failure leaves nothing behind, so the same command can simply be run again."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..atomic_file import atomic_write_text
from ..core.errors import FrameError
from ..frames.image_files import IMAGE_SUFFIXES, list_images, read_image
from ..frames.conversion import SUPPORTED_ENCODINGS, encode_compressed, rgb_to_raw
from .annotations import format_annotations
from .bagio import COMPRESSED, IMAGE, STORAGES, BagError, new_bag, typestore

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')
START_NS = 1_700_000_000 * 1_000_000_000      # fixed start stamp: the same input makes the same bag


@dataclass(frozen=True)
class MakeBagResult:
    bag: Path
    frames: int
    annotations: Path | None
    warnings: tuple[str, ...] = ()      # images that could not be read (skipped)


def load_labels(folder: Path) -> dict[str, tuple[str, ...]]:
    """labels.json of an image folder: {file name: acceptable nouns}, each value a noun or a list of
    nouns ({"00.png": "red apple"} or {"00.png": ["red apple", "apple"]}). Empty without the file.
    BagError naming the entry for anything else, or for a name that is not an image of the folder."""
    path = folder / 'labels.json'
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BagError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise BagError(f"{path} must map image file names to nouns, e.g. {{\"00.png\": \"red apple\"}}; "
                       f"got a {type(raw).__name__}")
    labels = {}
    for name, value in raw.items():
        nouns = [value] if isinstance(value, str) else value
        if not isinstance(nouns, list) or not nouns or not all(isinstance(n, str) and n.strip() for n in nouns):
            raise BagError(f"{path}: {name!r} must be a noun or a list of nouns, got {value!r}")
        if any(';' in n for n in nouns):
            raise BagError(f"{path}: {name!r}: give several nouns as a list, not separated by ';' ({value!r})")
        labels[name] = tuple(' '.join(n.split()) for n in nouns)
    unknown = sorted(set(labels) - {p.name for p in list_images(folder)})
    if unknown:
        raise BagError(f"{path} names files that are not images of {folder}: {', '.join(unknown[:10])}"
                       f"{' ...' if len(unknown) > 10 else ''}")
    return labels


def _folder_frames(folder: Path, skipped: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    for p in list_images(folder):
        try:
            yield p.name, read_image(p)
        except FrameError as e:
            skipped.append(f"skipped {e}")


def _video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    import av       # PyAV loads FFmpeg's libraries; only video input needs them
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise BagError(f"cannot open video {path}: {e}") from e
    with container:
        for i, frame in enumerate(container.decode(video=0)):
            yield f"{path.name}#{i}", frame.to_ndarray(format='rgb24')


def _check_source(source: Path) -> None:
    if source.is_dir():
        if not list_images(source):
            raise BagError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    elif not (source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES):
        raise BagError(f"{source} is neither a folder of images nor a video file ({', '.join(VIDEO_SUFFIXES)})")


def _message(rgb: np.ndarray, stamp_ns: int, frame_id: str, transport: str, encoding: str, fmt: str):
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
    if transport == 'raw' and encoding.lower() not in {e.lower() for e in SUPPORTED_ENCODINGS}:
        raise BagError(f"unknown raw encoding {encoding!r}; use one of {', '.join(SUPPORTED_ENCODINGS)}")
    if transport == 'compressed' and fmt not in ('jpeg', 'png'):
        raise BagError(f"compressed format must be jpeg or png, got {fmt!r}")
    if storage not in STORAGES:
        raise BagError(f"unknown storage format {storage!r}; use one of {', '.join(STORAGES)}")
    if out.exists():
        raise BagError(f"{out} exists; choose a new output path (bags are folders and are never overwritten)")
    _check_source(source)
    labels = load_labels(source) if source.is_dir() else {}
    skipped: list[str] = []
    frames = _folder_frames(source, skipped) if source.is_dir() else _video_frames(source)
    period_ns = int(round(1e9 / rate_hz))
    store = typestore()
    rows, count = [], 0
    with new_bag(out, storage) as writer:
        conn = None
        for name, rgb in tqdm(frames, desc='make-bag', unit='frame', disable=not progress):
            stamp = START_NS + count * period_ns
            msgtype, msg = _message(rgb, stamp, frame_id, transport, encoding, fmt)
            if conn is None:
                conn = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(conn, stamp, store.serialize_cdr(msg, msgtype))
            if name in labels:
                rows.append((topic, count, labels[name]))
            count += 1
        if count == 0:
            raise BagError(f"no frames could be read from {source}: {'; '.join(skipped) or 'the video holds none'}")
        ann_text = format_annotations(rows) if rows else None     # checked before the bag is moved into place
    ann = None
    if ann_text is not None:
        ann = out.parent / f"{out.name}.annotations.csv"
        atomic_write_text(ann, ann_text)
    return MakeBagResult(out, count, ann, tuple(skipped))
