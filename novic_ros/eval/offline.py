"""novic-eval offline: classify every image of a bag with the core (batched), and optionally write
the labels into a new bag beside the original topics, to play back with the camera."""
from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from ..params import DEFAULT_LABELS_TOPIC, DEFAULT_MAX_PIXELS
from ..pipeline import classify_in_batches
from .bagio import (
    CLASSIFICATION,
    IMAGE_TYPES,
    Bag,
    BagFrame,
    FrameDecoder,
    MessageError,
    message_cdr,
    new_bag,
    typestore,
)
from .run_results import FrameResult

log = logging.getLogger(__name__)


def classify_frames(frames: Iterable[BagFrame], classifier, batch_size: int, progress: bool = True,
                    total: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[FrameResult]:
    results: list[FrameResult] = []
    with tqdm(total=total, desc='offline', unit='frame', disable=not progress) as bar:
        # One decoder for the run: a video topic's packets are decoded in bag order.
        for c in classify_in_batches(classifier, frames, FrameDecoder(max_pixels), batch_size):
            f = c.item
            if c.error is not None:
                results.append(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns, error=str(c.error),
                                           reason=c.error.reason))
            else:
                objects = getattr(c.labels, 'objects', ())       # --objects: FrameObjects, a box per label
                results.append(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns,
                                           tuple((l.text, l.score) for l in c.labels.labels),
                                           latency_ms=c.labels.per_frame_ms,
                                           boxes=tuple(tuple(map(float, o.box)) for o in objects)))
            bar.update(1)
    return results


def run_offline(bag: Bag, classifier, *, batch_size: int = 8, progress: bool = True,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> list[FrameResult]:
    """Every frame of the bag's chosen topics, classified (a frame over `max_pixels` rejected from its
    header); the bag's `warnings` and `tallies` say what could not be read. BagError when no frame could
    be read at all."""
    return classify_frames(bag.frames(), classifier, batch_size, progress, bag.expected_frames, max_pixels)


def write_labels_bag(bag: Bag, out: str | Path, results: list[FrameResult],
                     labels_topic: str = DEFAULT_LABELS_TOPIC, storage: str | None = None) -> list[str]:
    """A new ROS 2 bag with every topic of `bag` that can be copied and `labels_topic`
    (vision_msgs/Classification), one message per labelled frame at that frame's bag time, with the
    frame's header. Returns warnings: topics that could not be copied and why.

    Copied: topics whose message type novic-eval knows (the ROS 2 Kilted interfaces and
    vision_msgs), as plain CDR (message compression undone, legacy type names spelt the ROS 2 way).
    ROS 1 messages are converted for the image topics only; convert the whole bag with
    `rosbags-convert` first to keep the others."""
    store = typestore()
    if storage is None:
        storage = 'sqlite3' if all(p.kind == 'sqlite3' for p in bag.layout.parts) else 'mcap'
    pending: dict[tuple[str, int], deque[FrameResult]] = {}
    for r in results:
        pending.setdefault((r.topic, r.timestamp_ns), deque()).append(r)
    not_copied: dict[str, str] = {}
    unreadable = 0
    Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
    Classification, Hyp = store.types[CLASSIFICATION], store.types['vision_msgs/msg/ObjectHypothesis']
    with new_bag(out, storage) as writer:
        conns = {}
        label_conn = writer.add_connection(labels_topic, CLASSIFICATION, typestore=store)
        for rec, _ in bag.records():
            info = rec.topic
            if info.msgtype not in store.types:
                not_copied[info.name] = f"type {info.msgtype} is not one novic-eval knows"
                continue
            if info.ros1 and info.msgtype not in IMAGE_TYPES:
                not_copied[info.name] = "ROS 1 message (convert the bag with rosbags-convert to keep it)"
                continue
            try:
                data = message_cdr(rec, bag.max_message_bytes)
            except MessageError:
                unreadable += 1
                continue
            key = (info.name, info.msgtype)
            if key not in conns:
                conns[key] = writer.add_connection(info.name, info.msgtype, typestore=store, serialization_format='cdr',
                                                   offered_qos_profiles=list(info.qos))
            writer.write(conns[key], rec.timestamp_ns, data)
            queue = pending.get((info.name, rec.timestamp_ns)) if info.name in bag.image_topics else None
            r = queue.popleft() if queue else None
            if r is not None and r.labels:
                header = Header(stamp=Time(sec=r.stamp_ns // 10**9, nanosec=r.stamp_ns % 10**9), frame_id=r.frame_id)
                msg = Classification(header=header, results=[Hyp(class_id=t, score=s) for t, s in r.labels])
                writer.write(label_conn, rec.timestamp_ns, store.serialize_cdr(msg, CLASSIFICATION))
    warnings = [f"labels bag: topic {t} not copied: {why}" for t, why in not_copied.items()]
    if unreadable:
        warnings.append(f"labels bag: {unreadable} messages that cannot be read were not copied")
    return warnings


def frames_at(
    bag_path: str | Path, topics, max_pixels: int, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], object]:
    """The decoded pictures (HxWx3 uint8) of the frames `wanted` ((topic, index) keys), read again from
    the bag: the report's thumbnails. Video packets are decoded in order up to the last one wanted
    (a picture needs its references); image messages only when wanted. A frame that cannot be
    decoded is left out."""
    from .bagio import VIDEO_TYPES, open_bag
    found: dict[tuple[str, int], object] = {}
    if not wanted:
        return found
    decoder = FrameDecoder(max_pixels)
    with open_bag(Path(bag_path), topics, max_pixels) as bag:
        for f in bag.frames():
            key = (f.topic, f.index)
            if key not in wanted and f.msgtype not in VIDEO_TYPES:
                continue
            try:
                rgb = decoder(f)
            except Exception:   # noqa: BLE001 -- the run already counted why; the gallery shows no picture
                continue
            if key in wanted:
                found[key] = rgb
                if len(found) == len(wanted):
                    break
    return found
