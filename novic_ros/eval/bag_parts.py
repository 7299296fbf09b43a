"""One storage file of a recording -> its topics, its per-topic message counts and its messages,
each format read with the library made for it: MCAP with the reference `mcap` reader (through its
index in time order; a file without a readable index, as a recorder that crashed leaves, record
by record in file order as far as it goes), rosbag2 sqlite3 files and ROS 1 bags with rosbags.
A file compressed whole with zstd (`ros2 bag record --compression-mode file`) is first
decompressed into a temporary folder.

Damage is handled in two places only: opening a file, and stepping a library's message iterator.
There the exceptions each library raises for damaged bytes (the tuples below, found by cutting
and flipping bytes of files the writers made) become a warning or a BagError; any other
exception is a bug and propagates.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator

import apsw
import zstandard
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import CRCValidationError, StreamReader
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1 import ReaderError as Ros1ReaderError
from rosbags.rosbag2 import Reader as Ros2Reader
from rosbags.rosbag2 import ReaderError as Ros2ReaderError
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys.msg import normalize_msgtype

# mcap: EndOfFile and bad lengths (McapError), garbage read as strings, lengths or offsets
# (UnicodeDecodeError, struct.error, OverflowError, OSError from a seek before the start),
# a channel id that names nothing (KeyError), broken chunks (ZstdError; lz4 raises RuntimeError).
MCAP_DAMAGE = (McapError, CRCValidationError, UnicodeDecodeError, struct.error, OverflowError, OSError, KeyError,
               zstandard.ZstdError, RuntimeError)
# rosbags' sqlite3 reader wraps open errors in ReaderError but lets apsw's through while reading.
SQLITE3_DAMAGE = (Ros2ReaderError, apsw.Error, UnicodeDecodeError)
# rosbags' ROS 1 reader: ReaderError, plus what bz2 (OSError, ValueError) and lz4 (RuntimeError)
# raise for broken chunks, garbage header fields (UnicodeDecodeError, struct.error), a connection
# id that names nothing (KeyError) and its own check that an index entry matches its record
# (AssertionError, rosbag1/reader.py `assert entry.time == ...`).
ROS1_DAMAGE = (Ros1ReaderError, UnicodeDecodeError, struct.error, OSError, ValueError, RuntimeError, KeyError,
               AssertionError)

ZSTD_SUFFIX = '.zstd'
STORAGE_SUFFIXES = ('.mcap', '.db3')                  # rosbag2 storage files, each maybe + ZSTD_SUFFIX
ROS1_SUFFIXES = ('.bag', '.bag.active')               # .active: a ROS 1 recording that was never closed
COPY_CHUNK = 1 << 16      # compressed bytes per step: output per step stays a few MB for real bags


class BagError(ValueError):
    """A bag (or a part of one) that cannot be read; the message says why and what to do.
    `warnings`: what was found wrong before giving up (missing files, damage), for the user too."""

    def __init__(self, message: str, warnings: list[str] | tuple[str, ...] = ()):
        super().__init__(message)
        self.warnings = tuple(warnings)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str                # ROS 2 spelling (sensor_msgs/msg/Image), whatever the file wrote
    ros1: bool = False          # messages serialised the ROS 1 way (.bag files, ros1 mcap channels)
    qos: tuple = ()             # offered QoS profiles as recorded (rosbags Qos), for copies of the bag


@dataclass(frozen=True)
class Record:
    """One message as stored: `data` may still be zstd-compressed (message-level compression) or
    ROS 1 serialised; bagio turns it into CDR."""
    topic: TopicInfo
    timestamp_ns: int           # bag (receive) time
    data: bytes


def describe_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def file_kind(path: Path) -> str | None:
    """'mcap', 'sqlite3' or 'ros1' from a file name (a trailing .zstd is file-level compression)."""
    name = path.name.lower().removesuffix(ZSTD_SUFFIX)
    if name.endswith('.mcap'):
        return 'mcap'
    if name.endswith('.db3'):
        return 'sqlite3'
    if path.name.lower().endswith(ROS1_SUFFIXES):
        return 'ros1'
    return None


def natural_key(path: Path) -> list:
    """bag_2 before bag_10: split recordings number their files without padding."""
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', path.name)]


class Part:
    """One storage file, opened: `topics` (name -> TopicInfo), `counts` (messages per topic as
    its index says, None when it has none or is cut short) and `records()`. Problems met while
    reading go to `warn`, each message once."""

    kind = ''

    def __init__(self, path: Path, name: str, warn: Callable[[str], None]):
        self.path, self.name, self.warn = path, name, warn
        self.topics: dict[str, TopicInfo] = {}
        self.counts: dict[str, int] | None = None
        self.cut_short = False

    def records(self, topics: Collection[str]) -> Iterator[Record]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _until_damage(self, items: Iterator, damage: tuple[type[BaseException], ...]) -> Iterator:
        """`items` as far as the file can be read; the damage that stops it becomes a warning and
        sets `cut_short`."""
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except damage as e:
                self.cut_short = True
                self.warn(f"{self.name} is damaged or cut short ({describe_error(e)}); "
                          "the rest of this file cannot be read")
                return
            yield item


def _open_binary(path: Path, name: str):
    try:
        return open(path, 'rb')
    except OSError as e:
        raise BagError(f"cannot read {name}: {e.strerror}") from e


class McapPart(Part):
    kind = 'mcap'

    def __init__(self, path: Path, name: str, warn: Callable[[str], None]):
        super().__init__(path, name, warn)
        self._file = _open_binary(path, name)
        try:
            self._reader = make_reader(self._file)
        except MCAP_DAMAGE as e:
            self._file.close()
            raise BagError(f"{name} is not an MCAP file ({e})") from e
        try:
            summary = self._reader.get_summary()
        except MCAP_DAMAGE as e:
            summary = None
            warn(f"{name} has no readable index at its end ({describe_error(e)}): a recorder that stopped without "
                 "closing the file, or a cut copy; reading it record by record as far as it goes")
        self._indexed = summary is not None and bool(summary.chunk_indexes) and summary.statistics is not None
        if self._indexed:
            channels = summary.channels
            for channel in channels.values():
                self._add_topic(channel, summary.schemas.get(channel.schema_id))
            self.counts = {}
            for cid, n in summary.statistics.channel_message_counts.items():
                if cid in channels and channels[cid].topic in self.topics:
                    self.counts[channels[cid].topic] = self.counts.get(channels[cid].topic, 0) + n
        else:
            self._scan_topics()

    def _add_topic(self, channel: Channel, schema: Schema | None) -> TopicInfo | None:
        """The channel as a TopicInfo; None (and no topic) for a channel that holds no ROS messages."""
        if channel.message_encoding not in ('cdr', 'ros1') or schema is None:
            return None
        try:
            qos = tuple(parse_qos(channel.metadata.get('offered_qos_profiles', '')))
        except Ros2ReaderError:
            qos = ()            # unreadable QoS text: copies of the bag get the default profile
        info = TopicInfo(channel.topic, normalize_msgtype(schema.name), channel.message_encoding == 'ros1', qos)
        self.topics.setdefault(channel.topic, info)
        return info

    def _stream(self) -> Iterator[tuple[TopicInfo, Message]]:
        """Every message in file order, reading records from the start until the file ends or breaks."""
        self._file.seek(0)
        schemas: dict[int, Schema] = {}
        infos: dict[int, TopicInfo | None] = {}
        for rec in self._until_damage(iter(StreamReader(self._file).records), MCAP_DAMAGE):
            if isinstance(rec, Schema):
                schemas[rec.id] = rec
            elif isinstance(rec, Channel):
                infos[rec.id] = self._add_topic(rec, schemas.get(rec.schema_id))
            elif isinstance(rec, Message) and infos.get(rec.channel_id) is not None:
                yield infos[rec.channel_id], rec

    def _scan_topics(self) -> None:
        """Without an index the topics are only known by reading the file through once. Counts
        are exact when that read reaches the end of the file."""
        counts: dict[str, int] = {}
        for info, _ in self._stream():
            counts[info.name] = counts.get(info.name, 0) + 1
        self.counts = None if self.cut_short else counts

    def records(self, topics: Collection[str]) -> Iterator[Record]:
        wanted = set(topics)
        if not self._indexed:
            for info, msg in self._stream():
                if info.name in wanted:
                    yield Record(info, msg.log_time, msg.data)
            return
        infos: dict[int, TopicInfo | None] = {}
        messages = self._reader.iter_messages(topics=sorted(wanted), log_time_order=True)
        for schema, channel, msg in self._until_damage(messages, MCAP_DAMAGE):
            if channel.id not in infos:
                infos[channel.id] = self._add_topic(channel, schema)
            if infos[channel.id] is not None:
                yield Record(infos[channel.id], msg.log_time, msg.data)

    def close(self) -> None:
        self._file.close()


class _RosbagsPart(Part):
    """A file read through a rosbags reader: its connections become topics, its index the counts."""

    DAMAGE: tuple[type[BaseException], ...] = ()

    def _add_connections(self, reader) -> None:
        self._reader = reader
        self._connections = {}
        self.counts = {}
        for c in reader.connections:
            info = self._topic_info(c)
            if info is None:
                continue
            self.topics.setdefault(c.topic, info)
            self._connections[c.id] = (c, info)
            self.counts[c.topic] = self.counts.get(c.topic, 0) + c.msgcount

    def _topic_info(self, connection) -> TopicInfo | None:
        raise NotImplementedError

    def records(self, topics: Collection[str]) -> Iterator[Record]:
        conns = [c for c, info in self._connections.values() if info.name in topics]
        if not conns:
            return
        for conn, timestamp, data in self._until_damage(self._reader.messages(connections=conns), self.DAMAGE):
            yield Record(self._connections[conn.id][1], timestamp, bytes(data))

    def close(self) -> None:
        self._reader.close()


class Sqlite3Part(_RosbagsPart):
    kind = 'sqlite3'
    DAMAGE = SQLITE3_DAMAGE

    def __init__(self, path: Path, name: str, warn: Callable[[str], None]):
        super().__init__(path, name, warn)
        reader = Ros2Reader(path)
        try:
            reader.open()
        except SQLITE3_DAMAGE as e:
            raise BagError(f"cannot read {name} ({e}); a damaged sqlite3 file may be rescued with "
                           "`sqlite3 FILE .recover | sqlite3 NEW.db3`") from e
        self._add_connections(reader)

    def _topic_info(self, c) -> TopicInfo | None:
        fmt = c.ext.serialization_format
        if fmt not in ('cdr', 'ros1'):
            self.warn(f"{self.name}: topic {c.topic} is serialised as {fmt!r}, which novic-eval does not read; skipped")
            return None
        return TopicInfo(c.topic, normalize_msgtype(c.msgtype), fmt == 'ros1', tuple(c.ext.offered_qos_profiles))


class Ros1Part(_RosbagsPart):
    kind = 'ros1'
    DAMAGE = ROS1_DAMAGE

    def __init__(self, path: Path, name: str, warn: Callable[[str], None]):
        super().__init__(path, name, warn)
        reader = Ros1Reader(path)
        try:
            reader.open()
        except ROS1_DAMAGE as e:
            if 'not indexed' in str(e) or 'index looks damaged' in str(e):
                raise BagError(f"{name} is a ROS 1 bag without a readable index (a recorder that did not close it "
                               f"leaves one, often named .bag.active): run `rosbag reindex {name}` on a ROS 1 machine, "
                               "then evaluate the reindexed bag") from e
            raise BagError(f"cannot read ROS 1 bag {name} ({describe_error(e)})") from e
        self._add_connections(reader)

    def _topic_info(self, c) -> TopicInfo:
        return TopicInfo(c.topic, c.msgtype, ros1=True)     # rosbags already spells types the ROS 2 way


PART_TYPES = {'mcap': McapPart, 'sqlite3': Sqlite3Part, 'ros1': Ros1Part}


def decompress_file(path: Path, folder: Path, warn: Callable[[str], None]) -> Path:
    """`name.mcap.zstd` -> folder/`name.mcap`, streamed (memory stays at one buffer). A file cut
    short yields what it holds, with a warning; the storage reader then salvages what it can."""
    out = folder / path.name[:-len(ZSTD_SUFFIX)]
    decompressor = zstandard.ZstdDecompressor()
    inside_frame = False        # input ended inside a zstd frame: the file was cut short
    with _open_binary(path, path.name) as src, open(out, 'wb') as dst:
        frame = decompressor.decompressobj()
        try:
            while chunk := src.read(COPY_CHUNK):
                while chunk:
                    dst.write(frame.decompress(chunk))
                    inside_frame = not frame.eof
                    chunk = frame.unused_data if frame.eof else b''
                    if frame.eof:
                        frame = decompressor.decompressobj()
        except zstandard.ZstdError as e:
            warn(f"{path.name} cannot be decompressed past {dst.tell()} bytes ({e}); reading what was recovered")
            return out
    if inside_frame:
        warn(f"{path.name} ends inside its zstd stream (a cut copy or a recorder that crashed); reading what it holds")
    return out
