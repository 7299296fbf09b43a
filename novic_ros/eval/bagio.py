"""Bags in and out with rosbags (no rosbag2 needed): both storage formats (mcap, sqlite3), raw
sensor_msgs/Image and sensor_msgs/CompressedImage, and vision_msgs/Classification for labels."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..paths import share_dir

log = logging.getLogger(__name__)

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CLASSIFICATION = 'vision_msgs/msg/Classification'
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGES = ('mcap', 'sqlite3')


class BagError(ValueError):
    """A bag that cannot be evaluated; the message says why and what to do."""


@lru_cache(maxsize=1)
def typestore():
    """ROS 2 Kilted message types plus our vision_msgs definitions (not in rosbags' stores)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = share_dir() / 'interfaces' / 'vision_msgs' / 'msg'
    types = {}
    for name in ('ObjectHypothesis', 'Classification'):
        types.update(get_types_from_msg((msg_dir / f'{name}.msg').read_text(), f'vision_msgs/msg/{name}'))
    store.register(types)
    return store


@dataclass(frozen=True)
class BagFrame:
    """One image message of a bag, not yet decoded."""
    topic: str
    index: int              # position within its topic, in bag order
    timestamp_ns: int       # bag (receive) time
    stamp_ns: int           # header stamp
    frame_id: str
    msgtype: str
    rawdata: bytes          # CDR bytes, publishable as they are

    @property
    def key(self) -> tuple[str, int]:
        return self.frame_id, self.stamp_ns


def open_reader(path: str | Path):
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, FileNotFoundError) as e:     # FileNotFoundError: no metadata.yaml
        raise BagError(f"cannot open bag {path}: {e}; novic-eval reads ROS 2 bags in mcap or sqlite3 storage "
                       "(a bag folder with metadata.yaml)") from e
    return reader


def image_topics(reader) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


Record = tuple[str, str, int, bytes]      # topic, msgtype, bag time (ns), CDR bytes


def _storage(path: Path) -> str | None:
    """The bag's storage format from metadata.yaml, or from its files when the metadata is missing
    (rosbag2 writes metadata.yaml last, so a recorder that crashed leaves none)."""
    import yaml
    try:
        meta = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
        return meta['storage_identifier']
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        pass
    if any(path.glob('*.mcap')):
        return 'mcap'
    if any(path.glob('*.db3')):
        return 'sqlite3'
    return None


def _scan_mcap(path: Path) -> tuple[dict[str, str], list[Record], str]:
    """Read an mcap bag record by record from the start, as far as it goes: a recorder that crashed
    leaves no footer, and the indexed reader refuses such a file."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    schemas, channels, records, stop = {}, {}, [], ''
    for f in sorted(path.glob('*.mcap')):
        try:
            for rec in StreamReader(str(f)).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ''))
                elif isinstance(rec, Message) and rec.channel_id in channels:
                    records.append((*channels[rec.channel_id], rec.log_time, bytes(rec.data)))
        except Exception as e:  # the damaged tail: anything the stream reader raises there
            stop = f"{type(e).__name__}: {e}"
            break
    return dict(channels.values()), records, stop


def _scan_sqlite3(path: Path) -> tuple[dict[str, str], list[Record], str]:
    """Read the messages of a sqlite3 bag straight from the database (for a bag without metadata.yaml).
    A database that sqlite itself reports malformed cannot be read this way."""
    import sqlite3
    topics, records, stop = {}, [], ''
    for db in sorted(path.glob('*.db3')):
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            ids = {i: (name, typ) for i, name, typ in con.execute('SELECT id, name, type FROM topics')}
            topics.update(ids.values())
            for topic_id, timestamp, data in con.execute('SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp'):
                records.append((*ids[topic_id], timestamp, bytes(data)))
        except sqlite3.Error as e:
            stop = f"{type(e).__name__}: {e}"
            break
    return topics, records, stop


def _records(path: Path) -> tuple[dict[str, str], list[Record], list[str]]:
    """(topic -> msgtype, image records in bag order, warnings)."""
    try:
        reader = open_reader(path)
    except BagError as err:
        storage = _storage(path)
        if storage not in STORAGES:
            raise
        topics, records, stop = (_scan_mcap if storage == 'mcap' else _scan_sqlite3)(path)
        if not records:
            raise
        return topics, [r for r in records if r[1] in IMAGE_TYPES], [
            f"bag {path} is damaged, truncated or lacks metadata.yaml ({err}); read {len(records)} messages by "
            f"scanning the {storage} file{' until ' + stop if stop else ''}; evaluating what could be read"]
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        records, warnings = [], []
        try:
            for conn, timestamp, raw in reader.messages(connections=conns):
                records.append((conn.topic, conn.msgtype, timestamp, bytes(raw)))
        except Exception as e:  # rosbags raises several types for damaged storage
            expected = sum(c.msgcount for c in conns)
            warnings.append(f"bag {path} is damaged or truncated after {len(records)} of {expected} image messages "
                            f"({type(e).__name__}: {e}); evaluating the {len(records)} that could be read")
        return topics, records, warnings
    finally:
        reader.close()


def read_frames(path: str | Path, topics: list[str] | None = None) -> tuple[list[BagFrame], list[str]]:
    """All image messages (of `topics`, default every image topic) in bag order, and warnings.
    A truncated or damaged bag yields what could be read before the damage, with a warning."""
    path = Path(path)
    all_topics, records, warnings = _records(path)
    found = {t: m for t, m in all_topics.items() if m in IMAGE_TYPES}
    if not found:
        present = ', '.join(f"{t} ({m})" for t, m in all_topics.items()) or 'none'
        raise BagError(f"bag {path} has no sensor_msgs/Image or CompressedImage topic (topics: {present})")
    if topics:
        missing = [t for t in topics if t not in found]
        if missing:
            raise BagError(f"bag {path} has no image topic {', '.join(missing)}; image topics: {', '.join(found)}")
    wanted = set(topics or found)
    store = typestore()
    counters = {t: 0 for t in wanted}
    frames: list[BagFrame] = []
    for topic, msgtype, timestamp, raw in records:
        if topic not in wanted:
            continue
        try:
            header = store.deserialize_cdr(raw, msgtype).header
        except Exception as e:
            warnings.append(f"{topic}: message {counters[topic]} cannot be deserialised ({e}); skipped")
            continue
        frames.append(BagFrame(topic, counters[topic], timestamp, header.stamp.sec * 1_000_000_000 + header.stamp.nanosec,
                               header.frame_id, msgtype, raw))
        counters[topic] += 1
    return frames, warnings


def decode(frame: BagFrame) -> np.ndarray:
    """The frame as HxWx3 uint8 RGB; ImageConversionError (a FrameError) when it cannot be used."""
    from ..ros.image_conversion import compressed_to_rgb, raw_to_rgb
    msg = typestore().deserialize_cdr(frame.rawdata, frame.msgtype)
    if frame.msgtype == COMPRESSED:
        return compressed_to_rgb(msg.format, msg.data)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


def create_writer(path: str | Path, storage: str):
    from rosbags.rosbag2 import StoragePlugin, Writer
    if storage not in STORAGES:
        raise BagError(f"unknown storage format {storage!r}; use one of {', '.join(STORAGES)}")
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists; choose a new output path (bags are folders and are never overwritten)")
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    writer.open()
    return writer
