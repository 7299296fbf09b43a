"""Bags in and out with rosbags and mcap (no rosbag2 needed). `open_bag` reads every form
bag_layout lists: ROS 2 and ROS 1, both storage formats, message- and file-level compression,
split bags with files missing, bags cut short; sensor_msgs/Image and CompressedImage frames, and
H.264/H.265 packets (foxglove_msgs/CompressedVideo, ffmpeg_image_transport_msgs/FFMPEGPacket), come
out as CDR bytes whatever the recorded form, counted per topic (every message read, a skipped one
included, so index-based annotations stay right). `decode` is the one place an image message
becomes an RGB frame; `FrameDecoder` does that for images and video packets alike (a video topic's
packets decoded in bag order by one frames.video.VideoDecoder)."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import zstandard
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from ..params import DEFAULT_MAX_PIXELS
from ..paths import share_dir
from ..frames.conversion import ImageConversionError, compressed_to_rgb, raw_to_rgb
from ..frames.video import VideoDecoder, VideoError, codec_of, picture_to_rgb
from .bag_layout import Layout, PartRef, resolve
from .bag_parts import PART_TYPES, ZSTD_SUFFIX, BagError, Part, Record, decompress_file

__all__ = [
    'Bag',
    'BagError',
    'BagFrame',
    'TopicTally',
    'open_bag',
    'decode',
    'typestore',
    'new_bag',
    'message_cdr',
    'MessageError',
    'message_bytes_limit',
    'IMAGE',
    'COMPRESSED',
    'CLASSIFICATION',
    'IMAGE_TYPES',
    'STORAGES',
    'COMPRESSED_VIDEO',
    'FFMPEG_PACKET',
    'VIDEO_TYPES',
    'FRAME_TYPES',
    'FrameDecoder',
]

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CLASSIFICATION = 'vision_msgs/msg/Classification'
IMAGE_TYPES = (IMAGE, COMPRESSED)
COMPRESSED_VIDEO = 'foxglove_msgs/msg/CompressedVideo'
FFMPEG_PACKET = 'ffmpeg_image_transport_msgs/msg/FFMPEGPacket'
VIDEO_TYPES = (COMPRESSED_VIDEO, FFMPEG_PACKET)
FRAME_TYPES = IMAGE_TYPES + VIDEO_TYPES          # what a bag's camera topics may hold
STORAGES = ('mcap', 'sqlite3')
# The most one decompressed message may hold: the largest frame `max_pixels` lets through at 16 bytes
# a pixel (32FC4, the widest sensor_msgs encoding) plus room for the header. A few hundred bytes of
# zstd can expand to gigabytes; the limit is checked while decompressing, not after.
BYTES_PER_PIXEL_MAX = 16
MESSAGE_SLACK_BYTES = 1 << 20
ZSTD_SLICE_BYTES = 256


def message_bytes_limit(max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    return BYTES_PER_PIXEL_MAX * max_pixels + MESSAGE_SLACK_BYTES


ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'     # a CDR message starts with its encapsulation header (00 0x ..) instead
EXAMPLES_KEPT = 5                    # skipped messages named per topic and reason


@lru_cache(maxsize=1)
def typestore():
    """ROS 2 Kilted message types plus our copies of vision_msgs, foxglove_msgs (CompressedVideo) and
    ffmpeg_image_transport_msgs (not in rosbags' stores)."""
    store = get_typestore(Stores.ROS2_KILTED)
    root = share_dir() / 'interfaces'
    types = {}
    for package, name in (('vision_msgs', 'ObjectHypothesis'), ('vision_msgs', 'Classification'),
                          ('foxglove_msgs', 'CompressedVideo'), ('ffmpeg_image_transport_msgs', 'FFMPEGPacket')):
        types.update(get_types_from_msg((root / package / 'msg' / f'{name}.msg').read_text(), f'{package}/msg/{name}'))
    store.register(types)
    return store


@dataclass(frozen=True)
class BagFrame:
    """One image message of a bag, not yet decoded."""
    topic: str
    index: int | None       # position within its topic in bag order, skipped messages counted; None when
                            # a missing or damaged file before it hides how many came earlier
    timestamp_ns: int       # bag (receive) time
    stamp_ns: int           # header stamp
    frame_id: str
    msgtype: str
    rawdata: bytes          # CDR bytes, publishable as they are

    @property
    def key(self) -> tuple[str, int]:
        return self.frame_id, self.stamp_ns


class MessageError(Exception):
    """One message that cannot be used; `reason` is a short category for counting."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason} ({detail})")
        self.reason, self.detail = reason, detail


def message_cdr(record: Record, max_bytes: int = message_bytes_limit()) -> bytes:
    """The record's message as plain CDR: zstd undone (message-level compression, recognised by
    the zstd magic, so it needs no metadata.yaml), ROS 1 serialisation converted. A message that
    would decompress to more than `max_bytes` is refused (reason 'too large') once that many bytes
    came out, so a zstd bomb costs at most `max_bytes`."""
    data = record.data
    if not record.topic.ros1 and data[:4] == ZSTD_MAGIC:
        frame = zstandard.ZstdDecompressor().decompressobj()
        out, size = [], 0
        try:
            # Fed in small slices: a zstd block holds at most 128 KB, so each slice yields a few MB at
            # most and the limit is checked before a bomb has expanded.
            for start in range(0, len(data), ZSTD_SLICE_BYTES):
                out.append(frame.decompress(data[start:start + ZSTD_SLICE_BYTES]))
                size += len(out[-1])
                if size > max_bytes:
                    raise MessageError('too large', f"decompresses to more than {max_bytes} bytes; raise "
                                       "max_pixels (--max-pixels) if frames this large are meant")
                if frame.eof:
                    break
        except zstandard.ZstdError as e:
            raise MessageError('cannot be decompressed', str(e)) from e
        data = b''.join(out)
        if not frame.eof:
            raise MessageError('cannot be decompressed', 'the compressed message is cut short')
    if record.topic.ros1:
        try:
            data = bytes(typestore().ros1_to_cdr(data, record.topic.msgtype))
        except SerdeError as e:
            raise MessageError('cannot be read as ROS 1', str(e)) from e
    return data


@dataclass
class TopicTally:
    """What became of one image topic's messages while reading."""
    topic: str
    msgtype: str
    expected: int | None            # messages the bag's index or metadata.yaml lists (None: unknown)
    read: int = 0                   # messages read from the bag
    frames: int = 0                 # of those, frames handed on (the rest were skipped)
    skipped: dict[str, int] = field(default_factory=dict)            # reason -> messages
    examples: dict[str, list[str]] = field(default_factory=dict)     # reason -> first few 'message 3: ...'

    def skip(self, reason: str, index: int | None, detail: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_KEPT:
            kept.append(f"{'message ' + str(index) if index is not None else 'a message'}: {detail}")


class Bag:
    """An opened bag: its image topics (`image_topics`, topic -> message type), what happened
    while reading them (`tallies`) and everything worth telling the user (`warnings`). `frames()`
    streams the image messages; it can be called again (the labels bag reads a second time)."""

    def __init__(self, layout: Layout, topics: list[str] | None, stack: ExitStack,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.layout, self.path = layout, layout.path
        self.max_message_bytes = message_bytes_limit(max_pixels)
        self.warnings: list[str] = []
        for w in layout.warnings:
            self.warn(w)
        self._parts = self._open_parts(layout.parts, stack)
        known = {}
        for part in self._parts:
            if part is not None:
                for name, info in part.topics.items():
                    known.setdefault(name, info)
        images = {t: i.msgtype for t, i in known.items() if i.msgtype in FRAME_TYPES}
        if not images:
            present = ', '.join(f"{t} ({i.msgtype})" for t, i in known.items()) or 'none'
            raise self._error(f"bag {self.path} has no sensor_msgs/Image or CompressedImage topic, nor an H.264/H.265 "
                              f"one (foxglove_msgs/CompressedVideo, ffmpeg_image_transport_msgs/FFMPEGPacket) "
                              f"(topics: {present})")
        if topics:
            missing = [t for t in topics if t not in images]
            if missing:
                raise self._error(f"bag {self.path} has no image topic {', '.join(missing)}; "
                                  f"image topics: {', '.join(images)}")
            images = {t: images[t] for t in topics}
        self.image_topics = images
        self._offsets = self._index_offsets(layout, self._parts)
        self.tallies = {t: TopicTally(t, m, self._expected(t)) for t, m in images.items()}

    def _error(self, message: str) -> BagError:
        """A BagError that carries the warnings gathered so far, so the user sees them too."""
        return BagError(message, warnings=self.warnings)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def describe(self) -> str:
        return self.layout.describe()

    @property
    def expected_frames(self) -> int | None:
        """How many image messages the bag's index lists for the chosen topics (None: unknown)."""
        counts = [t.expected for t in self.tallies.values()]
        return None if None in counts else sum(counts)

    # -- opening ----------------------------------------------------------------------------------

    def _open_parts(self, refs: tuple[PartRef, ...], stack: ExitStack) -> list[Part | None]:
        parts: list[Part | None] = []
        errors = []
        tmp = None
        for ref in refs:
            if not ref.present:
                parts.append(None)
                continue
            path = ref.path
            try:
                if path.name.lower().endswith(ZSTD_SUFFIX):
                    # File-level compression: the storage readers need the plain file, on disk.
                    tmp = tmp or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='novic-eval-')))
                    path = decompress_file(path, tmp, self.warn)
                part = PART_TYPES[ref.kind](path, ref.name, self.warn)
            except BagError as e:
                if len(refs) == 1:
                    raise self._error(str(e)) from e
                errors.append(str(e))
                self.warn(f"{e}; evaluating the other files of the bag")
                parts.append(None)
                continue
            stack.callback(part.close)
            parts.append(part)
        if all(p is None for p in parts):
            raise self._error(f"no file of bag {self.path} can be read: {'; '.join(errors)}")
        return parts

    def _index_offsets(self, layout: Layout, parts: list[Part | None]) -> list[dict[str, int] | None]:
        """Per part, how many messages of each topic came before it (None: unknown). A part
        whose counts are unknown (missing, unreadable, without index and cut short) hides the
        offsets of every later part, unless it is the only such part and metadata.yaml gives
        per-topic totals: then its counts are the totals minus what the other parts hold."""
        counts: list[dict[str, int] | None] = []
        for ref, part in zip(layout.parts, parts):
            if part is not None and part.counts is not None:
                counts.append(part.counts)
            elif ref.message_count == 0:
                counts.append({})
            else:
                counts.append(None)
        unknown = [i for i, c in enumerate(counts) if c is None]
        if len(unknown) == 1 and layout.totals is not None:
            others = [c for c in counts if c is not None]
            counts[unknown[0]] = {t: max(0, n - sum(c.get(t, 0) for c in others)) for t, n in layout.totals.items()}
        offsets: list[dict[str, int] | None] = []
        running: dict[str, int] | None = {}
        for i, (ref, c) in enumerate(zip(layout.parts, counts)):
            offsets.append(None if running is None else dict(running))
            if running is None:
                continue
            if c is None:
                if any(p is not None for p in parts[i + 1:]):
                    self.warn(f"frame indices after {ref.name} are unknown (how many messages it held cannot be "
                              "worked out): frames of the later files get no index, so annotate them by header stamp")
                running = None
                continue
            for t, n in c.items():
                running[t] = running.get(t, 0) + n
        return offsets

    def _expected(self, topic: str) -> int | None:
        if self.layout.totals is not None and topic in self.layout.totals:
            return self.layout.totals[topic]
        if any(p is None or p.counts is None for p in self._parts):
            return None
        return sum(p.counts.get(topic, 0) for p in self._parts)

    # -- reading ----------------------------------------------------------------------------------

    def records(self, topics: set[str] | None = None) -> Iterator[tuple[Record, int | None]]:
        """Every message of `topics` (default: all) with its index within its topic."""
        for part, offset in zip(self._parts, self._offsets):
            if part is None:
                continue
            wanted = set(part.topics) if topics is None else topics & set(part.topics)
            seen: dict[str, int] = {}
            for rec in part.records(wanted):
                position = seen.get(rec.topic.name, 0)
                seen[rec.topic.name] = position + 1
                yield rec, None if offset is None else offset.get(rec.topic.name, 0) + position

    def frames(self) -> Iterator[BagFrame]:
        """The image messages of the chosen topics in bag order. Messages that cannot be read are
        skipped (counted in `tallies`, reported in `warnings`); a bag of which no frame can be read
        raises BagError once the reading is done."""
        for tally in self.tallies.values():
            tally.read = tally.frames = 0
            tally.skipped.clear(), tally.examples.clear()
        store = typestore()
        for rec, index in self.records(set(self.image_topics)):
            tally = self.tallies[rec.topic.name]
            tally.read += 1
            try:
                data = message_cdr(rec, self.max_message_bytes)
                try:
                    msg = store.deserialize_cdr(data, rec.topic.msgtype)
                except SerdeError as e:
                    raise MessageError('cannot be deserialised', str(e)) from e
            except MessageError as e:
                tally.skip(e.reason, index, e.detail)
                continue
            tally.frames += 1
            # CompressedVideo has no header: its stamp is `timestamp`, beside `frame_id`.
            stamp, frame_id = (msg.timestamp, msg.frame_id) if rec.topic.msgtype == COMPRESSED_VIDEO else \
                (msg.header.stamp, msg.header.frame_id)
            yield BagFrame(rec.topic.name, index, rec.timestamp_ns, stamp.sec * 1_000_000_000 + stamp.nanosec,
                           frame_id, rec.topic.msgtype, data)
        self._report_tallies()
        if not any(t.frames for t in self.tallies.values()):
            raise self._error(f"no image message of bag {self.path} could be read: {self._what_was_read()}")

    def _report_tallies(self) -> None:
        for t in self.tallies.values():
            for reason, n in t.skipped.items():
                self.warn(f"{t.topic}: {n} message{'s' if n != 1 else ''} {reason}, skipped "
                          f"({'; '.join(t.examples[reason])}{'; ...' if n > len(t.examples[reason]) else ''})")
            if t.expected is not None and t.read < t.expected:
                self.warn(f"{t.topic}: {t.read} of the {t.expected} messages the bag lists were read")

    def _what_was_read(self) -> str:
        parts = []
        for t in self.tallies.values():
            reasons = ', '.join(f"{n} {r}" for r, n in t.skipped.items())
            parts.append(f"{t.topic}: {t.read} messages read" + (f" ({reasons})" if reasons else ''))
        return '; '.join(parts)


class _OpenBag:
    def __init__(self, path, topics, max_pixels):
        self._args = (path, topics, max_pixels)
        self._stack = ExitStack()

    def __enter__(self) -> Bag:
        try:
            return Bag(resolve(self._args[0]), self._args[1], self._stack, self._args[2])
        except BaseException:
            self._stack.close()
            raise

    def __exit__(self, *exc) -> None:
        self._stack.close()


def open_bag(path: str | Path, topics: list[str] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> _OpenBag:
    """`with open_bag(path) as bag:` -- the bag at `path` (any form bag_layout reads), limited to
    the image `topics` given. BagError, before any message is read, when it cannot be evaluated.
    `max_pixels` bounds what one compressed message may expand to (`message_bytes_limit`)."""
    return _OpenBag(path, topics, max_pixels)


def decode(frame: BagFrame, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The frame as HxWx3 uint8 RGB; ImageConversionError (a FrameError) when it cannot be used,
    reason 'too large' when its header declares more than `max_pixels` pixels. Image messages only:
    a video packet needs the packets before it (FrameDecoder)."""
    if frame.msgtype in VIDEO_TYPES:
        raise ImageConversionError(f"{frame.msgtype} is a video packet: decode a topic's packets in order with "
                                   "FrameDecoder", reason='video packet')
    try:
        msg = typestore().deserialize_cdr(frame.rawdata, frame.msgtype)
    except SerdeError as e:
        raise ImageConversionError(f"message cannot be deserialised ({e})", reason='cannot be deserialised') from e
    if frame.msgtype == COMPRESSED:
        return compressed_to_rgb(msg.format, msg.data, max_pixels)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian, max_pixels)


@contextmanager
def new_bag(out: str | Path, storage: str) -> Iterator[Writer]:
    """A rosbags Writer for a new ROS 2 bag at `out` that appears only when complete: it is written
    in a hidden folder beside `out`, moved into place at the end, and removed on any failure."""
    if storage not in STORAGES:
        raise BagError(f"unknown storage format {storage!r}; use one of {', '.join(STORAGES)}")
    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists; choose a new output path (bags are folders and are never overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.', suffix='.partial', dir=out.parent))
    try:
        writer = Writer(staging / out.name, version=9,
                        storage_plugin=StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3)
        writer.open()
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.close()
        (staging / out.name).rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class FrameDecoder:
    """Bag frames -> HxWx3 uint8 RGB, called in bag order: image messages one by one (decode), video
    packets by one VideoDecoder per topic (a new one when the topic's codec changes). A packet that
    completes no picture raises FrameError with its reason: 'before the first keyframe', 'waiting
    for a keyframe after a loss', or the decoder's ('cannot be decoded', 'too large', 'unsupported
    video format'). `decoders` holds each video topic's decoder (its stats count what was skipped)."""

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS, hardware: str = 'software'):
        self.max_pixels, self.hardware = max_pixels, hardware
        self.decoders: dict[str, VideoDecoder] = {}

    def __call__(self, frame: BagFrame) -> np.ndarray:
        if frame.msgtype not in VIDEO_TYPES:
            return decode(frame, self.max_pixels)
        try:
            msg = typestore().deserialize_cdr(frame.rawdata, frame.msgtype)
        except SerdeError as e:
            raise ImageConversionError(f"message cannot be deserialised ({e})", reason='cannot be deserialised') from e
        codec = codec_of(msg.format if frame.msgtype == COMPRESSED_VIDEO else msg.encoding)
        decoder = self.decoders.get(frame.topic)
        if decoder is None or decoder.codec != codec:
            decoder = self.decoders[frame.topic] = VideoDecoder(codec, self.hardware, self.max_pixels)
        pictures = decoder.decode(np.asarray(msg.data, np.uint8).tobytes())
        if not pictures:
            if decoder.stats.pictures == 0 and decoder.stats.losses == 0:
                raise VideoError(f"{frame.topic}: the stream has not reached its first keyframe yet",
                                 reason='before the first keyframe')
            raise VideoError(f"{frame.topic}: a packet before this one was lost or damaged; decoding starts again at "
                             "the next keyframe", reason='waiting for a keyframe after a loss')
        return picture_to_rgb(pictures[-1])
