"""novic-eval make-bag: a folder of images or a video file -> a ROS 2 bag of sensor_msgs/Image or
CompressedImage, or an H.264 / H.265 stream as a camera sends it (foxglove_msgs/CompressedVideo or
ffmpeg_image_transport_msgs/FFMPEGPacket: one packet per picture, no B-frames, a keyframe with its
parameter sets every `keyframe_interval` pictures), at a chosen rate and frame_id, so users and
tests have bags to play. When the
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
from ..frames.image_files import IMAGE_SUFFIXES, list_images, not_images, read_image
from ..frames.conversion import SUPPORTED_ENCODINGS, encode_compressed, rgb_to_raw
from .annotations import format_annotations
from ..frames.video import VideoEncoder, is_keyframe
from .bagio import COMPRESSED, COMPRESSED_VIDEO, FFMPEG_PACKET, IMAGE, STORAGES, BagError, new_bag, typestore

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v')
START_NS = 1_700_000_000 * 1_000_000_000      # fixed start stamp: the same input makes the same bag
TRANSPORTS = ('raw', 'compressed', 'h264', 'h265')
VIDEO_MESSAGES = {'foxglove': COMPRESSED_VIDEO, 'ffmpeg': FFMPEG_PACKET}
ENCODER_NAMES = {'h264': 'libx264', 'h265': 'libx265'}      # FFMPEGPacket.encoding, as ffmpeg_image_transport writes it


@dataclass(frozen=True)
class MakeBagResult:
    bag: Path
    frames: int
    annotations: Path | None
    warnings: tuple[str, ...] = ()      # files left out (not images) and images that could not be read (skipped)


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


def _folder_frames(folder: Path, skipped: list[str], bar: tqdm) -> Iterator[tuple[str, np.ndarray]]:
    """The folder's images, in name order; a file that cannot be read is noted in `skipped`. `bar`
    counts files read, skipped ones included, so it reaches its total."""
    for p in list_images(folder):
        try:
            rgb = read_image(p)
        except FrameError as e:
            skipped.append(f"skipped {e}")
            continue
        finally:
            bar.update(1)
        yield p.name, rgb


def _counted(frames: Iterator[tuple[str, np.ndarray]], bar: tqdm) -> Iterator[tuple[str, np.ndarray]]:
    for item in frames:
        bar.update(1)
        yield item


def _video_frames(path: Path) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """The video's frames and how many its stream header declares (None when it does not say)."""
    import av       # PyAV loads FFmpeg's libraries; only video input needs them
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise BagError(f"cannot open video {path}: {e}") from e
    declared = container.streams.video[0].frames if container.streams.video else 0
    return _decode(container), declared or None


def _decode(container) -> Iterator[tuple[str, np.ndarray]]:
    path = Path(container.name)
    with container:
        for i, frame in enumerate(container.decode(video=0)):
            yield f"{path.name}#{i}", frame.to_ndarray(format='rgb24')


def _check_source(source: Path) -> None:
    if source.is_dir():
        if not list_images(source):
            raise BagError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    elif not (source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES):
        raise BagError(f"{source} is neither a folder of images nor a video file ({', '.join(VIDEO_SUFFIXES)})")


class _VideoStream:
    """Frames -> one video packet message each (the size of the first frame, cut to even sides)."""

    def __init__(self, codec: str, message: str, keyframe_interval: int, rate_hz: float):
        self.codec, self.msgtype = codec, VIDEO_MESSAGES[message]
        self.keyframe_interval, self.rate_hz = keyframe_interval, rate_hz
        self.encoder: VideoEncoder | None = None
        self.size: tuple[int, int] | None = None
        self.count = 0

    def message(self, name: str, rgb: np.ndarray, header):
        if self.encoder is None:
            h, w = rgb.shape[:2]
            self.size = (h - h % 2, w - w % 2)
            if min(self.size) < 2:
                raise BagError(f"{name}: {w}x{h} is too small for a video stream")
            if self.size != (h, w):
                log.info("video frames cut to %dx%d (4:2:0 needs even sides)", self.size[1], self.size[0])
            self.encoder = VideoEncoder(self.codec, self.size[1], self.size[0], self.rate_hz, self.keyframe_interval)
        h, w = self.size
        if rgb.shape[0] < h or rgb.shape[1] < w or rgb.shape[0] > h + 1 or rgb.shape[1] > w + 1:
            raise BagError(f"{name} is {rgb.shape[1]}x{rgb.shape[0]}, the stream {w}x{h}: a video stream holds "
                           "pictures of one size (make one bag per size, or resize the images)")
        packets = self.encoder.encode(rgb[:h, :w])
        if len(packets) != 1:
            raise BagError(f"the {self.codec} encoder gave {len(packets)} packets for one picture")
        data = np.frombuffer(packets[0], np.uint8)
        store = typestore()
        self.count += 1
        if self.msgtype == COMPRESSED_VIDEO:
            return self.msgtype, store.types[COMPRESSED_VIDEO](timestamp=header.stamp, frame_id=header.frame_id,
                                                                data=data, format=self.codec)
        return self.msgtype, store.types[FFMPEG_PACKET](
            header=header, width=w, height=h, encoding=ENCODER_NAMES[self.codec], pts=self.count - 1,
            flags=1 if is_keyframe(self.codec, packets[0]) else 0, is_bigendian=False, data=data)


def _message(rgb: np.ndarray, stamp_ns: int, frame_id: str, transport: str, encoding: str, fmt: str,
             video: _VideoStream | None = None, name: str = ''):
    store = typestore()
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)
    if video is not None:
        return video.message(name, rgb, header)
    if transport == 'compressed':
        data = np.frombuffer(encode_compressed(rgb, fmt), np.uint8)
        return COMPRESSED, store.types[COMPRESSED](header=header, format=f'rgb8; {fmt} compressed bgr8', data=data)
    raw, step = rgb_to_raw(rgb, encoding)
    h, w = rgb.shape[:2]
    return IMAGE, store.types[IMAGE](header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
                                     data=np.frombuffer(raw, np.uint8))


def make_bag(source: str | Path, out: str | Path, *, topic: str = '/camera/image_raw', rate_hz: float = 10.0,
             frame_id: str = 'camera', storage: str = 'mcap', transport: str = 'raw', encoding: str = 'rgb8',
             fmt: str = 'jpeg', progress: bool = True, video_message: str = 'foxglove',
             keyframe_interval: int = 10) -> MakeBagResult:
    """`transport` raw, compressed (`fmt`), or h264 / h265: `video_message` foxglove
    (foxglove_msgs/CompressedVideo) or ffmpeg (ffmpeg_image_transport_msgs/FFMPEGPacket)."""
    source, out = Path(source), Path(out)
    if rate_hz <= 0:
        raise BagError(f"rate must be positive, got {rate_hz}")
    if transport not in TRANSPORTS:
        raise BagError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
    if video_message not in VIDEO_MESSAGES:
        raise BagError(f"video message must be one of {', '.join(VIDEO_MESSAGES)}, got {video_message!r}")
    if not 1 <= keyframe_interval <= 1000:
        raise BagError(f"keyframe interval must be in [1, 1000] pictures, got {keyframe_interval}")
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
    left_out: list[str] = []
    if source.is_dir():
        bar = tqdm(desc='make-bag', unit='file', total=len(list_images(source)), disable=not progress)
        frames = _folder_frames(source, skipped, bar)
        # Files that are not images are left out, and said so: a user may expect them in the bag.
        others = [p.name for p in not_images(source) if p.name != 'labels.json']
        if others:
            left_out.append(f"left out {len(others)} files that are not images ({', '.join(IMAGE_SUFFIXES)}): "
                           f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}")
    else:
        frames, total = _video_frames(source)
        bar = tqdm(desc='make-bag', unit='frame', total=total, disable=not progress)
        frames = _counted(frames, bar)
    period_ns = int(round(1e9 / rate_hz))
    store = typestore()
    video = (
        _VideoStream(transport, video_message, keyframe_interval, rate_hz) if transport in ('h264', 'h265') else None
    )
    rows, count = [], 0
    with bar, new_bag(out, storage) as writer:
        conn = None
        for name, rgb in frames:
            stamp = START_NS + count * period_ns
            msgtype, msg = _message(rgb, stamp, frame_id, transport, encoding, fmt, video, name)
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
    return MakeBagResult(out, count, ann, tuple(left_out + skipped))
