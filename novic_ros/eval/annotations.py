"""Ground-truth files for evaluating the classifier on recorded bags.

Format
------
A UTF-8 CSV file whose first (non-comment) line is the header ``topic,frame,nouns``, then one
row per annotated frame::

    topic,frame,nouns
    # the bag's only image topic, frames by position
    ,0,golden retriever;dog
    ,1,coffee mug;mug
    # a named topic, a frame by its header stamp
    /camera/image_raw,1700000000.000000042,bicycle

``topic``
    The image topic name. Empty means the bag's only image topic; leaving it empty in a bag
    with several image topics is an error: the row matches nothing and is reported.
``frame``
    Either the 0-based index of the frame within its topic, in bag order, or the frame's
    header stamp written as ``sec.nanosec`` with exactly 9 digits after the dot
    (``1700000000.000000042``). Indices are easy to write by hand; stamps survive trimming
    or merging bags, which shifts indices.
``nouns``
    One or more acceptable ground-truth nouns separated by ``;`` (``golden retriever;dog``).
    A prediction matching any of them counts as correct; the first one names the class in
    per-class reports, so put the most specific noun first.

Lines starting with ``#`` and blank lines are ignored. Fields may be quoted the CSV way
(a topic containing a comma). A malformed row (wrong number of columns, a bad frame value,
no nouns) stops loading with an AnnotationError naming ``file:line``. Rows naming frames
that the bag does not have only produce warnings (see match_annotations), so one stale row
does not void an evaluation.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

log = logging.getLogger(__name__)

HEADER = ('topic', 'frame', 'nouns')
NOUN_SEPARATOR = ';'
COMMENT = '#'
NS_PER_SEC = 1_000_000_000

_INDEX_RE = re.compile(r'\d+')
_STAMP_RE = re.compile(r'(\d+)\.(\d{9})')


class AnnotationError(ValueError):
    """A malformed annotation file; the message names file:line."""


@dataclass(frozen=True)
class FrameKey:
    """Which frame a row annotates: exactly one of `index` (0-based, within the topic) and
    `stamp_ns` (header stamp in nanoseconds) is set. topic '' = the bag's only topic."""
    topic: str
    index: int | None
    stamp_ns: int | None

    def __post_init__(self) -> None:
        if (self.index is None) == (self.stamp_ns is None):
            raise ValueError("FrameKey needs exactly one of index and stamp_ns")

    def describe(self) -> str:
        """'frame 3' or 'stamp 1700000000.000000042', for messages."""
        if self.index is not None:
            return f'frame {self.index}'
        return f'stamp {format_stamp(self.stamp_ns)}'


@dataclass(frozen=True)
class Annotation:
    """One row: the frame, its acceptable nouns (as written) and its 1-based line number."""
    key: FrameKey
    nouns: tuple[str, ...]
    line: int


class FrameRef(Protocol):
    """What match_annotations needs to know about a frame of the bag."""
    topic: str
    index: int | None  # position within its topic, bag order (None: unknown, matched by stamp only)
    stamp_ns: int


# -- frame values ---------------------------------------------------------------------------

def format_stamp(stamp_ns: int) -> str:
    """Nanoseconds -> 'sec.nanosec' with 9 digits, the form the file uses."""
    sec, nsec = divmod(stamp_ns, NS_PER_SEC)
    return f'{sec}.{nsec:09d}'


def parse_frame(value: str) -> tuple[int | None, int | None]:
    """'12' -> (12, None); '1700000000.000000042' -> (None, 1700000000000000042).
    ValueError otherwise. The 9 digits are required because '1.5' is ambiguous between
    1.5 s and 1 s + 5 ns, and a float would lose nanoseconds at today's epoch values."""
    text = value.strip()
    if _INDEX_RE.fullmatch(text):
        return int(text), None
    stamp = _STAMP_RE.fullmatch(text)
    if stamp:
        return None, int(stamp.group(1)) * NS_PER_SEC + int(stamp.group(2))
    raise ValueError(
        f"bad frame {value!r}: expected a 0-based index (e.g. 12) or a header stamp "
        f"sec.nanosec with exactly 9 digits after the dot (e.g. 1700000000.000000042)")


def split_nouns(field: str) -> tuple[str, ...]:
    """'golden retriever; dog' -> ('golden retriever', 'dog'); empty items are dropped."""
    return tuple(' '.join(n.split()) for n in field.split(NOUN_SEPARATOR) if n.strip())


# -- loading ---------------------------------------------------------------------------------

def load_annotations(path: str | os.PathLike) -> list[Annotation]:
    """Read an annotation file (format in the module docstring), rows in file order.
    Raises AnnotationError naming file:line for a malformed header or row."""
    name = os.fspath(path)
    with open(path, encoding='utf-8-sig', newline='') as f:  # -sig: tolerate an Excel BOM
        lines = f.read().splitlines()
    annotations: list[Annotation] = []
    seen_header = False
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith(COMMENT):
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if not seen_header:
            _check_header(fields, name, number)
            seen_header = True
            continue
        annotations.append(_parse_row(fields, name, number))
    if not seen_header:
        raise AnnotationError(f"{name}: empty annotation file (expected the header {','.join(HEADER)})")
    log.debug("loaded %d annotations from %s", len(annotations), name)
    return annotations


def _check_header(fields: list[str], name: str, number: int) -> None:
    if tuple(f.lower() for f in fields) != HEADER:
        raise AnnotationError(
            f"{name}:{number}: expected the header line {','.join(HEADER)}, got {','.join(fields)!r}")


def _parse_row(fields: list[str], name: str, number: int) -> Annotation:
    where = f'{name}:{number}'
    if len(fields) != len(HEADER):
        raise AnnotationError(
            f"{where}: expected {len(HEADER)} columns ({','.join(HEADER)}), got {len(fields)}; "
            f"separate nouns with '{NOUN_SEPARATOR}', and quote a field that contains a comma")
    topic, frame, noun_field = fields
    try:
        index, stamp_ns = parse_frame(frame)
    except ValueError as e:
        raise AnnotationError(f"{where}: {e}") from None
    nouns = split_nouns(noun_field)
    if not nouns:
        raise AnnotationError(f"{where}: no nouns (give one or more, separated by '{NOUN_SEPARATOR}')")
    return Annotation(FrameKey(topic, index, stamp_ns), nouns, number)


# -- matching against a bag -------------------------------------------------------------------

@dataclass
class _TopicFrames:
    """Positions (in the caller's frame sequence) of one topic's frames."""
    by_index: dict[int, int]
    by_stamp: dict[int, list[int]]
    count: int = 0


def _index_frames(frames: Sequence[FrameRef]) -> dict[str, _TopicFrames]:
    topics: dict[str, _TopicFrames] = {}
    for position, frame in enumerate(frames):
        entry = topics.setdefault(frame.topic, _TopicFrames({}, {}))
        if frame.index is not None:
            entry.by_index[frame.index] = position
        entry.by_stamp.setdefault(frame.stamp_ns, []).append(position)
        entry.count += 1
    return topics


def match_annotations(annotations: Iterable[Annotation],
                      frames: Sequence[FrameRef]) -> tuple[dict[int, Annotation], list[str]]:
    """Attach annotations to frames: {position in `frames`: annotation} and warnings.

    A warning (never an exception) for each row naming a topic the bag does not have, one per
    topic for the rows naming frames that were not read (a truncated bag: one line, not one per
    row), for an empty topic when the bag has several, for a stamp shared by several frames
    (the first is used) and for a second row on an already annotated frame (the first row
    wins). Frames without a row simply have no annotation."""
    topics = _index_frames(frames)
    matched: dict[int, Annotation] = {}
    lines: dict[int, int] = {}
    warnings: list[str] = []
    missing: dict[str, list[tuple[int, str]]] = {}      # topic -> (line, warning) for frames not read
    for annotation in annotations:
        position = _locate(annotation, topics, warnings, missing)
        if position is None:
            continue
        if position in matched:
            warnings.append(f"line {annotation.line}: {annotation.key.describe()} is already annotated "
                            f"by line {lines[position]}; keeping line {lines[position]}")
            continue
        matched[position] = annotation
        lines[position] = annotation.line
    warnings += [_missing_summary(topic, rows, topics[topic]) for topic, rows in missing.items()]
    for warning in warnings:
        log.debug("annotations: %s", warning)       # returned to the caller, who reports them once
    return matched, warnings


def _missing_summary(topic: str, rows: list[tuple[int, str]], entry: _TopicFrames) -> str:
    """One warning for the rows of `topic` that name frames not read: the row's own for one row."""
    if len(rows) == 1:
        return rows[0][1]
    first, last = rows[0][0], rows[-1][0]
    known = sorted(entry.by_index)
    span = f", indices {known[0]}..{known[-1]}" if known else ''
    return (f"{len(rows)} rows (lines {first}..{last}) name frames of topic {topic!r} that were not read from the "
            f"bag ({entry.count} frames were{span}): a truncated bag, or annotations of another recording; "
            f"those rows are not scored")


def _locate(annotation: Annotation, topics: dict[str, _TopicFrames], warnings: list[str],
            missing: dict[str, list[tuple[int, str]]]) -> int | None:
    """Position of the frame an annotation names, or None after appending a warning (to `missing`,
    by topic, for a frame the bag's topic does not hold)."""
    key, line = annotation.key, annotation.line
    topic = _resolve_topic(key.topic, topics, line, warnings)
    if topic is None:
        return None
    entry = topics.get(topic)
    if entry is None:
        known = ', '.join(sorted(topics)) or 'none'
        warnings.append(f"line {line}: topic {topic!r} is not in the bag (image topics: {known})")
        return None
    lost = missing.setdefault(topic, [])
    found = _by_index(key, entry, topic, line, lost) if key.index is not None else \
        _by_stamp(key, entry, topic, line, lost, warnings)
    if not lost:
        del missing[topic]
    return found


def _resolve_topic(topic: str, topics: dict[str, _TopicFrames], line: int, warnings: list[str]) -> str | None:
    if topic:
        return topic
    if len(topics) == 1:
        return next(iter(topics))
    if not topics:
        warnings.append(f"line {line}: the bag has no image frames")
    else:
        warnings.append(f"line {line}: topic is empty but the bag has {len(topics)} image topics "
                        f"({', '.join(sorted(topics))}); name the topic")
    return None


def _by_index(key: FrameKey, entry: _TopicFrames, topic: str, line: int, lost: list[tuple[int, str]]) -> int | None:
    position = entry.by_index.get(key.index)
    if position is None:
        known = sorted(entry.by_index)
        span = f"indices {known[0]}..{known[-1]}" if known else "no frame of known index"
        lost.append((line, f"line {line}: frame {key.index} of topic {topic!r} was not read from the bag "
                           f"({entry.count} frames were, {span})"))
    return position


def _by_stamp(key: FrameKey, entry: _TopicFrames, topic: str, line: int, lost: list[tuple[int, str]],
              warnings: list[str]) -> int | None:
    positions = entry.by_stamp.get(key.stamp_ns)
    if not positions:
        stamps = sorted(entry.by_stamp)
        lost.append((line, f"line {line}: no frame of topic {topic!r} has stamp {format_stamp(key.stamp_ns)} "
                           f"(the topic has {entry.count} frames, stamps {format_stamp(stamps[0])} "
                           f"to {format_stamp(stamps[-1])})"))
        return None
    if len(positions) > 1:
        warnings.append(f"line {line}: stamp {format_stamp(key.stamp_ns)} matches {len(positions)} "
                        f"frames of topic {topic!r}; using the first")
    return positions[0]


# -- writing -----------------------------------------------------------------------------------

def format_annotations(rows: Iterable[tuple[str, int | str, Sequence[str]]]) -> str:
    """The text of an annotation file with (topic, frame, nouns) rows.

    `frame` is an int index, or a string in the file's form (index or 'sec.nanosec'), so
    tools that build bags from labelled image folders can record either. Rows are checked
    with the loader's rules (ValueError otherwise), so what is written always loads back."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(HEADER)
    for topic, frame, nouns in rows:
        writer.writerow(_format_row(topic, frame, nouns))
    return buffer.getvalue()


def _format_row(topic: str, frame: int | str, nouns: Sequence[str]) -> tuple[str, str, str]:
    if topic.lstrip().startswith(COMMENT):
        raise ValueError(f"topic {topic!r} would read back as a comment line")
    if isinstance(frame, bool) or not isinstance(frame, (int, str)):
        raise ValueError(f"frame must be an int index or a 'sec.nanosec' string, got {frame!r}")
    if isinstance(frame, int) and frame < 0:
        raise ValueError(f"frame index must be >= 0, got {frame}")
    frame_text = str(frame).strip()
    parse_frame(frame_text)
    if isinstance(nouns, str):
        raise ValueError(f"nouns must be a sequence of nouns, not the string {nouns!r}")
    cleaned = [' '.join(n.split()) for n in nouns]
    if not cleaned or any(not n or NOUN_SEPARATOR in n for n in cleaned):
        raise ValueError(f"nouns must be one or more non-empty nouns without '{NOUN_SEPARATOR}', got {list(nouns)!r}")
    return topic.strip(), frame_text, NOUN_SEPARATOR.join(cleaned)
