"""novic-eval offline: classify every image of a bag with the core (batched), and optionally write
the labels into a new bag beside the original topics, to play back with the camera."""
from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from ..params import DEFAULT_LABELS_TOPIC
from ..pipeline import classify_in_batches
from .bagio import CLASSIFICATION, BagFrame, create_writer, decode, open_reader, read_frames, typestore
from .results import FrameResult

log = logging.getLogger(__name__)


def classify_frames(frames: list[BagFrame], classifier, batch_size: int, progress: bool = True) -> list[FrameResult]:
    results: list[FrameResult] = []
    with tqdm(total=len(frames), desc='offline', unit='frame', disable=not progress) as bar:
        for c in classify_in_batches(classifier, frames, decode, batch_size):
            f = c.item
            if c.error is not None:
                results.append(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns, error=str(c.error)))
            else:
                results.append(FrameResult(f.topic, f.index, f.stamp_ns, f.frame_id, f.timestamp_ns,
                                           tuple((l.text, l.score) for l in c.labels.labels),
                                           latency_ms=c.labels.per_frame_ms))
            bar.update(1)
    return results


def run_offline(bag: str | Path, classifier, *, topics: list[str] | None = None, batch_size: int = 8,
                progress: bool = True) -> tuple[list[FrameResult], list[str]]:
    frames, warnings = read_frames(bag, topics)
    return classify_frames(frames, classifier, batch_size, progress), warnings


def write_labels_bag(source: str | Path, out: str | Path, results: list[FrameResult],
                     labels_topic: str = DEFAULT_LABELS_TOPIC, storage: str | None = None) -> Path:
    """Copy every topic of `source` into a new bag and add `labels_topic` (vision_msgs/Classification),
    one message per labelled frame at that frame's bag time, with the frame's header."""
    store = typestore()
    reader = open_reader(source)
    storage = storage or ('mcap' if any(Path(source).glob('*.mcap')) else 'sqlite3')   # the source's format by default
    writer = create_writer(out, storage)
    try:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=store, serialization_format='cdr',
                                             offered_qos_profiles=c.ext.offered_qos_profiles)
                 for c in reader.connections}
        label_conn = writer.add_connection(labels_topic, CLASSIFICATION, typestore=store)
        Header, Time = store.types['std_msgs/msg/Header'], store.types['builtin_interfaces/msg/Time']
        Classification, Hyp = store.types[CLASSIFICATION], store.types['vision_msgs/msg/ObjectHypothesis']
        by_time: dict[int, list[FrameResult]] = {}
        for r in results:
            if r.labels:
                by_time.setdefault(r.timestamp_ns, []).append(r)
        try:
            for conn, timestamp, raw in reader.messages():
                writer.write(conns[conn.id], timestamp, raw)
                for r in by_time.pop(timestamp, []):
                    header = Header(stamp=Time(sec=r.stamp_ns // 10**9, nanosec=r.stamp_ns % 10**9), frame_id=r.frame_id)
                    msg = Classification(header=header, results=[Hyp(class_id=t, score=s) for t, s in r.labels])
                    writer.write(label_conn, timestamp, store.serialize_cdr(msg, CLASSIFICATION))
        except Exception as e:
            log.warning("stopped copying %s at a damaged message (%s); the new bag holds what was read", source, e)
    finally:
        writer.close()
        reader.close()
    return Path(out)
