"""Several objects per frame: each with a free-text label, a score and a pixel box.

How (chosen by measurement, README "Several objects per frame"):
1. Where: class-agnostic box proposals from saliency maps (proposals.py; at most
   `saliency.max_proposals`, the cost's bound), and/or a fixed multi-scale grid of windows (`regions`).
2. What: each proposal is looked at through a square window around it (`margins` x its longer
   side; one margin, 1.25, named as many objects as two, 1.15 and 1.4, with half the windows);
   every window of every frame goes through the CLIP encoder in one batch and through the decoder
   in one batch (the backend's batch limit permitting: TensorRT engines have one).
3. Each window gets one label and a score, from the classifier's EmbeddingLabeller
   (embedding_labels.py, the labelling path of whole frames too):
   - generate: the greedy decoder's label; score = its sequence probability (the decoder's own
     probability of that exact label, not renormalised over anything, so a window on background
     scores low);
   - hybrid: the decoder's beam candidates re-ranked by CLIP similarity; score = the chosen
     candidate's sequence probability;
   - prompted: CLIP's softmax over the label list; score = that probability.
   With `min_similarity` > 0, CLIP checks each window's label: a window whose embedding's cosine
   similarity to the label's prompt is below it names nothing. The cosine is on a scale of its
   own for each CLIP model (matching pairs score about 0.8 with the toy CLIP, about 0.3 with
   OpenAI's), so the threshold comes calibrated per model (object_calibration.py).
4. Merge: windows best first; one that overlaps (IoU of their object boxes > `max_overlap`) an
   object already kept adds nothing (same label: its box is fused into that object's, score-weighted;
   another label: suppressed, one object gets one name). Objects below `min_score` are dropped; at
   most `max_objects` remain, best first. The same label may name two objects that do not overlap.

The result is deliberately plain (FrameObjects of DetectedObject: label, score in [0, 1], box
[x0, y0, x1, y1] in pixels of the input frame, 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height,
sorted by score), so that tracking over time (tracks.py) can match objects by box overlap; each
object also carries the unit CLIP embedding of what it was seen through (the windows fused into
it, score-weighted), which the tracker compares to tell apart objects whose boxes overlap.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .embedding_labels import batched
from .preprocess import validate_frame
from .proposals import SaliencyConfig, salient_boxes
from .frame_labels import Label, StageTimings
from .windows import GridConfig, WindowCropper, grid_boxes, square_windows

REGIONS = ('salient', 'grid', 'salient+grid')


@dataclass(frozen=True)
class ObjectOptions:
    regions: str = 'salient'                     # salient | grid | salient+grid
    min_score: float = 0.5                       # objects scoring below are dropped
    min_similarity: float = 0.0                  # CLIP check of each window's label; 0 = none
    max_objects: int = 10                        # most objects per frame, best first
    max_overlap: float = 0.3                     # IoU above which two windows see the same object
    margins: tuple[float, ...] = (1.25,)         # window sides around a proposal, x its longer side
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)
    grid: GridConfig = field(default_factory=GridConfig)

    def __post_init__(self):
        if self.regions not in REGIONS:
            raise ValueError(f"regions {self.regions!r} is not one of {', '.join(REGIONS)}")
        if not 0.0 <= self.min_score <= 1.0 or self.max_objects < 1 or not 0.0 < self.max_overlap <= 1.0:
            raise ValueError(f"invalid object options {self}: min_score in [0, 1], max_objects >= 1, "
                             "max_overlap in (0, 1]")
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity {self.min_similarity} must be in [0, 1] (0: no CLIP check)")
        if not self.margins or any(m < 1.0 for m in self.margins):
            raise ValueError(f"margins {self.margins} must be >= 1 (a window holds its whole proposal)")


@dataclass(frozen=True)
class DetectedObject:
    label: str
    score: float                                 # in [0, 1]; see the module docstring for what it is
    box: tuple[float, float, float, float]       # x0, y0, x1, y1 in pixels of the frame, inside it
    # Unit-length CLIP image embedding of the object's windows (None where no encoder saw it, e.g. a
    # hand-made object); not part of equality.
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        return {'label': self.label, 'score': round(self.score, 6), 'box': [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class FrameObjects:
    objects: tuple[DetectedObject, ...]          # best first
    timings: StageTimings = StageTimings()       # of the whole batch; preprocess = proposals + windows
    batch_size: int = 1
    windows: int = 0                             # windows looked at in this frame

    @property
    def per_frame_ms(self) -> float:
        """This frame's share of its batch's inference time."""
        return self.timings.total_ms / max(1, self.batch_size)

    def to_json(self) -> list[dict]:
        return [o.to_json() for o in self.objects]

    @property
    def labels(self) -> tuple[Label, ...]:
        """One label per object, best first: what code written for whole-frame labels (evaluation
        results, label bags) takes from a multi-object frame."""
        return tuple(Label(o.label, o.score) for o in self.objects)


@dataclass(frozen=True)
class WindowLabels:
    """What the windows of one frame saw, before the CLIP check and the merge (ObjectFinder.look)."""
    windows: np.ndarray                          # N x 4 square windows, frame pixels
    boxes: np.ndarray                            # N x 4 the object box each window stands for
    labels: tuple[str, ...]                      # '' where the decoder gave no finished label
    scores: np.ndarray                           # N, see the module docstring
    similarities: np.ndarray                     # N, cosine with the label's prompt (0 when not computed)
    frame_hw: tuple[int, int]
    embeddings: np.ndarray | None = field(default=None, compare=False, repr=False)   # N x E, the windows'


@dataclass(frozen=True)
class _Windows:
    """The windows of one frame: what the encoder sees, and the object box each stands for."""
    windows: np.ndarray                          # N x 4, square
    boxes: np.ndarray                            # N x 4, the proposal (or the window itself)


class ObjectFinder:
    """Finds the objects of frames with a NovicClassifier's models and mode (its options decide the
    mode, label list, template, beam width and max tokens; ObjectOptions the rest). Like the
    classifier, it never changes: new options make a new finder (cheap, the models are shared)."""

    always_similarity = False      # compute similarities even without a CLIP check (calibration, study)

    def __init__(self, classifier, options: ObjectOptions = ObjectOptions(), max_batch: int | None = None):
        """`max_batch`: most windows per encoder or decoder call (None: all at once)."""
        if options.min_similarity > 0 and not classifier.labeller.embeds_text:
            raise ValueError(f"min_similarity {options.min_similarity} checks labels with CLIP's text encoder, which "
                             f"{classifier.backend.describe()} does not have; set it to 0, or export the model again "
                             "with novic-export")
        self.classifier = classifier
        self.labeller = classifier.labeller
        self.options = options
        self.max_batch = max_batch
        self.crop = WindowCropper(classifier.clip.preprocess)

    def describe(self) -> str:
        o = self.options
        return (f"objects: {o.regions} regions, min_score {o.min_score:g}, "
                f"min_similarity {o.min_similarity:g}, at most {o.max_objects}")

    def classify(self, frames) -> list[FrameObjects]:
        """One HxWx3 uint8 RGB frame or a sequence of them -> one FrameObjects per frame (the same
        call shape as NovicClassifier.classify, so the pipeline's batching loop feeds either)."""
        looked, timings = self.look(frames)
        t0 = time.perf_counter()
        objects = [merge(w.boxes, self._checked(w), w.scores, self.options, w.frame_hw, w.embeddings) for w in looked]
        timings = StageTimings(timings.preprocess_ms, timings.encode_ms,
                               timings.decode_ms + (time.perf_counter() - t0) * 1e3)
        return [FrameObjects(o, timings, len(looked), len(w.labels)) for o, w in zip(objects, looked)]

    def look(self, frames) -> tuple[list['WindowLabels'], StageTimings]:
        """Steps 1-3 for every frame (before the CLIP check and the merge): what each window saw."""
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            frames = [frames]
        frames = [validate_frame(f, i) for i, f in enumerate(frames)]
        t0 = time.perf_counter()
        per_frame = [self._windows(f) for f in frames]
        pixels = [self.crop(f, w.windows) for f, w in zip(frames, per_frame) if len(w.windows)]
        t1 = time.perf_counter()
        embeds = batched(self.classifier.encode, np.concatenate(pixels), self.max_batch) if pixels else None
        t2 = time.perf_counter()
        labels, scores = (
            self.labeller.window_labels(embeds, self.max_batch) if embeds is not None else ([], np.zeros(0))
        )
        sims = self._similarities(embeds, labels) if embeds is not None else np.zeros(0)
        out, start = [], 0
        for f, w in zip(frames, per_frame):
            n = len(w.windows)
            out.append(WindowLabels(w.windows, w.boxes, tuple(labels[start:start + n]), scores[start:start + n],
                                    sims[start:start + n], f.shape[:2],
                                    embeds[start:start + n] if embeds is not None else np.zeros((0, 0))))
            start += n
        t3 = time.perf_counter()
        return out, StageTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

    # --- where to look ---

    def _windows(self, frame: np.ndarray) -> _Windows:
        h, w = frame.shape[:2]
        parts = []
        if self.options.regions in ('salient', 'salient+grid'):
            proposals = salient_boxes(frame, self.options.saliency)
            for m in self.options.margins:
                parts.append((square_windows(proposals, m, h, w), proposals))
        if self.options.regions in ('grid', 'salient+grid'):
            grid = grid_boxes(h, w, self.options.grid)
            parts.append((grid, grid))
        windows = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 4))
        boxes = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 4))
        return _Windows(windows, boxes)

    # --- what is there ---

    def _similarities(self, embeds: np.ndarray, labels: list[str]) -> np.ndarray:
        """Cosine similarity of each window with its label's prompt (0 without a label, or without CLIP's
        text encoder, or when no CLIP check is asked for: then nothing is embedded)."""
        if not self.labeller.embeds_text or self.options.min_similarity <= 0 and not self.always_similarity:
            return np.zeros(len(labels))
        return self.labeller.similarities(embeds, labels)

    def _checked(self, w: 'WindowLabels') -> tuple[str, ...]:
        """The window labels, '' where CLIP finds the window too unlike its label's prompt."""
        if self.options.min_similarity <= 0:
            return w.labels
        return tuple(l if s >= self.options.min_similarity else '' for l, s in zip(w.labels, w.similarities))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of N x 4 and M x 4 boxes [x0, y0, x1, y1] -> N x M."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def merge(boxes: np.ndarray, labels, scores, options: ObjectOptions, frame_hw: tuple[int, int],
          embeddings: np.ndarray | None = None) -> tuple[DetectedObject, ...]:
    """Windows (object box, label, score, and optionally their N x E embeddings) -> objects, best
    first (see the module docstring, step 4)."""
    h, w = frame_hw
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64)
    order = [i for i in np.argsort(-scores, kind='stable') if labels[i] and scores[i] >= options.min_score]
    if not order:
        return ()
    iou = iou_matrix(boxes, boxes)
    embeds = None if embeddings is None or len(embeddings) != len(boxes) else np.asarray(embeddings, np.float64)
    kept: list[list] = []              # [label, best score, first window, fused box sum, weight sum, embedding sum]
    for i in order:
        same_place = [k for k in kept if iou[i, k[2]] > options.max_overlap]
        if same_place:
            for k in same_place:
                if k[0] == labels[i]:
                    k[3] += scores[i] * boxes[i]
                    k[4] += scores[i]
                    if embeds is not None:
                        k[5] = k[5] + scores[i] * embeds[i]
            continue
        if len(kept) == options.max_objects:
            break
        kept.append([labels[i], float(scores[i]), i, scores[i] * boxes[i], float(scores[i]),
                     scores[i] * embeds[i] if embeds is not None else None])
    out = []
    for label, score, _, box_sum, weight, embed_sum in kept:
        x0, y0, x1, y1 = box_sum / weight
        x0, x1 = min(max(x0, 0.0), w - 1.0), min(max(x1, 1.0), float(w))
        y0, y1 = min(max(y0, 0.0), h - 1.0), min(max(y1, 1.0), float(h))
        embedding = None
        if embed_sum is not None:
            norm = float(np.linalg.norm(embed_sum))
            embedding = (embed_sum / norm if norm > 0 else embed_sum).astype(np.float32)
        out.append(DetectedObject(label, min(1.0, max(0.0, score)),
                                  (x0, y0, max(x1, x0 + 1e-3), max(y1, y0 + 1e-3)), embedding))
    return tuple(out)
