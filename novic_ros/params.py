"""Every novic_ros parameter, defined once: name, type, default, description, range or choices.

The ROS node declares its parameters from this table (with ParameterDescriptor ranges), the
CLIs build their flags from it, the launch file maps its arguments onto it, and the README
table is generated from it (`python -m novic_ros.params --markdown`). ROS-free.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar

from .core.object_calibration import AUTO, resolve_thresholds
from .core.object_finder import REGIONS, ObjectOptions
from .core.proposals import SaliencyConfig
from .core.label_files import MAX_LABEL_CHARS, MAX_LABELS, check_labels_path, read_labels_file
from .core.novic_decoding import check_generation, is_guided_name
from .core.options import MODES, ClassifierOptions
from .core.stable_labels import StabilityOptions
from .core.tracks import TrackOptions
from .lexicon.categories import DEFAULT_CATEGORIES, check_specs

BACKENDS = ('auto', 'torch', 'onnxruntime', 'tensorrt', 'openvino')
QOS_CHOICES = ('auto', 'sensor_data', 'reliable')
TRANSPORTS = ('raw', 'compressed', 'foxglove', 'ffmpeg')
VIDEO_TRANSPORTS = ('foxglove', 'ffmpeg')
VIDEO_HARDWARE = ('auto', 'software', 'cuda', 'vaapi', 'qsv', 'videotoolbox', 'd3d11va')
NODE_NAME = 'novic_node'
DEFAULT_NAMESPACE = '/novic'
DEVICE_RE = re.compile(r'^(auto|cpu|cuda(:\d+)?|gpu(\.\d+)?|npu)$')
# Bounds on every text and list value a peer may set (labels have their own, core.label_files).
MAX_TEXT_CHARS = 4096          # a path (PATH_MAX), a topic name, a template
MAX_LIST_ITEMS = 64            # topics, categories, folders
PACKAGE_URI = 'package://novic_ros'     # labels_dirs: the package's share folder
MIN_RATE_HZ = 0.01             # rate_hz below this (but not 0) parks the worker for minutes


def _check_rate(value: float) -> None:
    if 0.0 < value < MIN_RATE_HZ:
        raise ValueError(f"{value} Hz would wait {1 / value:.3g} s between frames; give 0 (as fast as the "
                         f"model goes) or at least {MIN_RATE_HZ} Hz")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    pattern: re.Pattern | None = None
    launch_arg: str | None = None       # launch argument of the same meaning, if any
    group: str = 'model'                # model | node
    live: bool = False                  # the node applies a change while running (else: restart)
    check: Callable[[Any], None] | None = None   # a further check of the converted value (ValueError)
    max_items: int = MAX_LIST_ITEMS     # lists: most entries
    max_chars: int = MAX_TEXT_CHARS     # text, and each entry of a list: most characters

    @property
    def type(self) -> type:
        return type(self.default)

    def validate(self, value: Any) -> Any:
        """Return `value` converted to this parameter's type, or raise ValueError naming the fix."""
        t = self.type
        if t is list and isinstance(value, (list, tuple)) and len(value) > self.max_items:
            # Before converting: a million entries are refused without a copy of them.
            raise ValueError(f"parameter {self.name!r}: {len(value)} entries, more than the {self.max_items} allowed")
        if isinstance(value, str) and len(value) > (self.max_chars if t is str else self.max_chars * self.max_items):
            raise ValueError(f"parameter {self.name!r}: {len(value)} characters, more than the allowed")
        try:
            if t is bool:
                if isinstance(value, str):
                    if value.lower() not in ('true', 'false', '1', '0'):
                        raise ValueError
                    value = value.lower() in ('true', '1')
                elif not isinstance(value, bool):
                    raise ValueError
            elif t is list:
                if isinstance(value, str):
                    value = value.split(',')
                value = [v for v in map(str.strip, map(str, value)) if v]
            elif t is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            else:
                value = t(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name!r}: expected {t.__name__}, got {_short(value)}") from None
        if t is list and len(value) > self.max_items:
            raise ValueError(f"parameter {self.name!r}: {len(value)} entries, more than the {self.max_items} allowed")
        longest = max(map(len, value), default=0) if t is list else len(value) if t is str else 0
        if longest > self.max_chars:
            raise ValueError(f"parameter {self.name!r}: {longest} characters, more than the {self.max_chars} allowed")
        if t is float and value != value:
            raise ValueError(f"parameter {self.name!r}: NaN is not a value")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise ValueError(f"parameter {self.name!r}: {value} is outside [{self.min}, {self.max}]")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.pattern is not None and not self.pattern.match(value):
            raise ValueError(f"parameter {self.name!r}: {value!r} does not match {self.pattern.pattern}")
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as e:
                raise ValueError(f"parameter {self.name!r}: {e}") from None
        return value


def _short(value: Any) -> str:
    """A value as an error message may echo it: cut short (a peer may send megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + '…'


PARAMS: tuple[Param, ...] = (
    # --- model and inference (core; also the CLI flags) ---
    Param(
        'model', 'toy', "Model variant: a short name from models_file (toy, b32, b16, l14, ...).", launch_arg='model'
    ),
    Param('models_file', '', "YAML file of model variants; empty = the package's config/models.yaml."),
    Param(
        'backend',
        'auto',
        "Inference backend. auto = tensorrt when a GPU and the tensorrt package are "
        "present; on the CPU the faster of onnxruntime and openvino as measured on this machine (cached; "
        "onnxruntime alone without openvino); else torch. openvino: Intel's runtime (optional extra "
        "novic_ros[openvino]; CPU, Intel GPU or NPU).",
        choices=BACKENDS,
        launch_arg='backend',
    ),
    Param(
        'device',
        'auto',
        "Device: auto, cpu, cuda or cuda:N (auto = cuda when a GPU is present); with "
        "backend openvino also gpu, gpu.N (Intel graphics) or npu, where OpenVINO reports them.",
        pattern=DEVICE_RE,
        launch_arg='device',
    ),
    Param(
        'precision',
        'auto',
        "fp32, fp16 (a GPU: torch, tensorrt, openvino), bf16 (openvino on a CPU with AMX "
        "or AVX512_BF16) or int8 (onnxruntime or openvino on the CPU: quantised graphs); auto = fp16 on a GPU, "
        "fp32 on the CPU.",
        choices=('auto', 'fp32', 'fp16', 'bf16', 'int8'),
    ),
    Param(
        'mode',
        'generate',
        "generate: the decoder names the object (no label list). prompted: score "
        "`labels` by CLIP similarity. hybrid: re-rank the decoder's beam candidates by CLIP similarity.",
        choices=MODES,
        live=True,
    ),
    Param(
        'labels',
        [],
        f"Label list for prompted mode (at most {MAX_LABELS} labels of {MAX_LABEL_CHARS} characters; "
        "ignored in the other modes).",
        live=True,
        max_items=MAX_LABELS,
        max_chars=MAX_LABEL_CHARS,
    ),
    Param(
        'labels_file',
        '',
        "Prompted mode: a file of labels, one per line, or a novic-nouns dictionary (.jsonl); "
        "added to `labels`. The node reads it only under labels_dirs, only a regular file (README: Security).",
        live=True,
    ),
    Param(
        'prompt_template', 'a photo of a {}.', "Text prompt for prompted and hybrid modes; {} is the label.", live=True
    ),
    Param(
        'top_k',
        3,
        "Labels per frame, best first (at most beam_width in generate/hybrid mode).",
        min=1,
        max=100,
        live=True,
    ),
    Param('beam_width', 5, "Beam search width (1 = greedy decoding).", min=1, max=64, live=True),
    Param('max_tokens', 0, "Most tokens per label; 0 = the decoder's own maximum.", min=0, max=64, live=True),
    Param(
        'preprocessing',
        'fast',
        "How frames become the encoder's input: fast = open_clip's resize filter as "
        "matrix products (0.7-0.9 ms for 640x480 on a 2-core Zen 4, within a few 8-bit levels of open_clip's "
        "pixels at hard edges, "
        "labels unchanged in the README's measurement); exact = Pillow's resize, open_clip's pixels to the bit "
        "(2-3x slower; to reproduce published figures).",
        choices=('fast', 'exact'),
    ),
    Param(
        'generation',
        'auto',
        "A NOVIC authors' checkpoint (model PATH.train): the reference's generation "
        "configuration, e.g. beam_k10_vnone_gp_t1_a0 (auto: that default; README: The NOVIC authors' models). "
        "Named and guided (gp / gr): `labels` / labels_file, when given in generate mode, are the guide nouns. "
        "novic_ros's own decoders take auto (beam_width, max_tokens).",
        live=True,
        check=check_generation,
        max_chars=80,
    ),
    Param('min_score', 0.0, "Drop labels scoring below this probability.", min=0.0, max=1.0, live=True),
    Param(
        'object_regions',
        'salient',
        "Multi-object mode: where to look. salient: windows around salient-region "
        "proposals (about 9 per 640x480 frame, at most object_proposals); grid: a fixed multi-scale grid (74 windows, "
        "slower); both.",
        choices=REGIONS,
        live=True,
    ),
    Param(
        'object_min_score',
        AUTO,
        "Multi-object mode: drop objects scoring below this (decoder probability; "
        "CLIP softmax in prompted mode). -1: the value calibrated for the CLIP model "
        "(config/object_calibration.yaml), else 0.5.",
        min=-1.0,
        max=1.0,
        live=True,
    ),
    Param(
        'object_min_similarity',
        AUTO,
        "Multi-object mode: a window's label must have at least this CLIP cosine "
        "similarity with the window (the scale differs per CLIP model). -1: calibrated for the model, else 0 "
        "(no check); 0: no check.",
        min=-1.0,
        max=1.0,
        live=True,
    ),
    Param('max_objects', 10, "Multi-object mode: most objects per frame, best first.", min=1, max=100, live=True),
    Param(
        'object_proposals',
        16,
        "Multi-object mode, salient regions: most region proposals per frame, each "
        "looked at through one encoder window; the mode's cost grows with it (README: Several objects per frame).",
        min=1,
        max=64,
        live=True,
    ),
    Param('batch_size', 8, "Most frames per inference batch (offline evaluation, multiple cameras).", min=1, max=256),
    Param('threads', 0, "CPU threads for torch / ONNX Runtime / OpenVINO; 0 = library default.", min=0, max=256),
    Param(
        'text_cache_dir',
        '',
        "Folder for cached label embeddings (prompted and hybrid modes), reused across runs; "
        "empty = ~/.cache/novic_ros/text_embeddings ($NOVIC_ROS_CACHE/text_embeddings).",
    ),
    Param(
        'engine_dir',
        '',
        "Folder for exported ONNX graphs and TensorRT engines; empty = the package's engines/ "
        "when writable, else ~/.cache/novic_ros/engines.",
    ),
    Param(
        'max_pixels',
        3840 * 2160,
        "Largest frame accepted, in pixels (width x height; default 4K UHD), checked "
        "from the message or file header before decoding; larger frames are rejected with reason 'too large'. "
        "Decoding and preprocessing peak at about 9 bytes per pixel (4K: 70 MB).",
        min=1,
        max=1_000_000_000,
    ),
    Param(
        'categories',
        list(DEFAULT_CATEGORIES),
        "Coarse categories labels are mapped to (nearest listed WordNet "
        "ancestor, else 'other'): nouns ('animal'), senses ('plant.n.02') or offsets ('n00017222'), each "
        "optionally 'name=...'; entries with one name form one category. See Categories.",
        check=check_specs,
        live=True,
    ),
    # --- ROS node ---
    Param(
        'image_topics',
        ['image'],
        "Camera topics to classify (relative names follow the namespace). "
        "The launch file's `image` argument remaps `image`.",
        group='node',
    ),
    Param(
        'transport',
        'raw',
        "raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage (jpeg, png) on "
        "<topic>/compressed; foxglove: foxglove_msgs/CompressedVideo (H.264/H.265) on <topic>/foxglove; ffmpeg: "
        "ffmpeg_image_transport_msgs/FFMPEGPacket (H.264/H.265) on <topic>/ffmpeg. Video: every packet is decoded, "
        "the newest picture classified (README: Video input).",
        choices=TRANSPORTS,
        launch_arg='transport',
        group='node',
    ),
    Param(
        'video_decoding',
        'auto',
        "foxglove and ffmpeg transports: auto = hardware decoding on the first device "
        "PyAV's FFmpeg can open (cuda, vaapi, qsv, videotoolbox, d3d11va), else software; software; or one "
        "device type (falls back to software when it cannot be opened).",
        choices=VIDEO_HARDWARE,
        group='node',
    ),
    Param(
        'qos',
        'auto',
        "Subscription reliability. auto: reliable when every publisher on the topic is reliable "
        "(lost fragments of large raw frames are then resent), else best effort; re-checked when publishers come "
        "and go. sensor_data: best effort. reliable: reliable (receives nothing from best-effort publishers).",
        choices=QOS_CHOICES,
        group='node',
    ),
    Param('qos_depth', 5, "Subscription queue depth.", min=1, max=1000, group='node'),
    Param(
        'rate_hz',
        0.0,
        f"Most inferences per second over all cameras; 0 = as fast as the model goes; else at least {MIN_RATE_HZ}.",
        min=0.0,
        max=1000.0,
        launch_arg='rate_hz',
        group='node',
        live=True,
        check=_check_rate,
    ),
    Param(
        'labels_dirs',
        [PACKAGE_URI, 'labels'],
        "Folders the node reads a labels_file from (symlinks resolved): "
        f"{PACKAGE_URI} is the package's share folder, a relative folder is under the node's working directory. "
        "Read-only: any peer on the domain can set labels_file, only the integrator sets this.",
        group='node',
    ),
    Param(
        'frame_timeout_s',
        5.0,
        "Warn (log and /diagnostics) when a camera topic has publishers but no frame "
        "arrived for this many seconds; 0 = never.",
        min=0.0,
        max=3600.0,
        group='node',
    ),
    Param(
        'labels_topic',
        'labels',
        "Output topic (vision_msgs/Classification); relative to the namespace (/novic by default).",
        group='node',
    ),
    Param(
        'publish_overlay',
        False,
        "Also publish ~/image_labeled: the frame with its labels drawn on.",
        launch_arg='publish_overlay',
        group='node',
    ),
    Param(
        'objects',
        False,
        "Also find every object of each frame (label, score, box; see object_* parameters) "
        "and publish vision_msgs/Detection2DArray on objects_topic.",
        group='node',
    ),
    Param(
        'objects_topic',
        'objects',
        "Output topic of the objects (vision_msgs/Detection2DArray); relative to the namespace.",
        group='node',
    ),
    Param(
        'annotations_topic',
        'annotations',
        "Objects mode: foxglove_msgs/ImageAnnotations of each frame (boxes, "
        "track ids, labels) for Foxglove's Image panel, published while subscribed; relative to the namespace.",
        group='node',
    ),
    Param(
        'track_objects',
        True,
        "Objects mode: track the objects from frame to frame (per camera): each "
        "Detection2D gets an id that stays while the object stays in view, and its track's label smoothed like "
        "labels_stable (smoothing_s, stable_margin, stable_dwell_s). false: each frame's objects stand alone "
        "(empty id, the frame's own label).",
        group='node',
        live=True,
    ),
    Param(
        'track_timeout_s',
        1.5,
        "Objects mode: a track that got no detection for this many seconds (of the "
        "frames' stamps) ends; an object seen again after that gets a new id.",
        min=0.05,
        max=3600.0,
        group='node',
        live=True,
    ),
    Param(
        'track_min_iou',
        0.1,
        "Objects mode: least box overlap (IoU) of a detection with where a track is "
        "predicted to be (its velocity applied) for the detection to continue it.",
        min=0.0,
        max=1.0,
        group='node',
        live=True,
    ),
    Param(
        'track_appearance_weight',
        0.5,
        "Objects mode: weight of the CLIP embedding similarity against box "
        "overlap when detections are assigned to tracks; it keeps overlapping objects (of one noun too) apart.",
        min=0.0,
        max=1.0,
        group='node',
        live=True,
    ),
    Param('warmup', True, "Run one dummy frame at configure so the first real frame is not slow.", group='node'),
    Param(
        'autostart',
        True,
        "Configure and activate at start (lifecycle node). false: stay unconfigured until a "
        "lifecycle manager (nav2_lifecycle_manager, launch lifecycle events) drives the transitions.",
        launch_arg='autostart',
        group='node',
    ),
    Param(
        'bond_heartbeat_period',
        0.1,
        "Seconds between bond heartbeats to nav2_lifecycle_manager while active "
        "(as nav2's own nodes send them); 0 = no bond (then set the manager's bond_timeout to 0).",
        min=0.0,
        max=10.0,
        group='node',
    ),
    Param(
        'smoothing_s',
        1.0,
        "labels_stable: time constant of the moving average of label probabilities, in "
        "seconds of the frames' stamps (any frame rate); 0 = no smoothing.",
        min=0.0,
        max=60.0,
        group='node',
        live=True,
    ),
    Param(
        'stable_margin',
        0.15,
        "labels_stable: another label replaces the stable one only when its smoothed "
        "probability leads by more than this...",
        min=0.0,
        max=1.0,
        group='node',
        live=True,
    ),
    Param(
        'stable_dwell_s', 0.3, "... on every frame for this many seconds.", min=0.0, max=60.0, group='node', live=True
    ),
    Param(
        'stable_timeout_s',
        5.0,
        "labels_stable: a camera that sent no frame for this many seconds starts over (its state is dropped).",
        min=0.1,
        max=3600.0,
        group='node',
        live=True,
    ),
)

BY_NAME = {p.name: p for p in PARAMS}
# Where a node started with the defaults publishes its labels (clients, the demo and novic-eval listen here).
DEFAULT_LABELS_TOPIC = f"{DEFAULT_NAMESPACE}/{BY_NAME['labels_topic'].default}"
# The size bound of every frame reader (node, novic-classify, novic-eval) when no parameter says otherwise.
DEFAULT_MAX_PIXELS = BY_NAME['max_pixels'].default


def defaults(group: str | None = None) -> dict[str, Any]:
    return {p.name: (list(p.default) if isinstance(p.default, list) else p.default)
            for p in PARAMS if group is None or p.group == group}


def _default(name: str) -> Any:
    """A field's default, read from its row of the table (lists become tuples: the configs are frozen)."""
    default = BY_NAME[name].default
    return tuple(default) if isinstance(default, list) else default


class _Validated:
    """Every field of the group checked and converted by its row of the table."""
    _group: ClassVar[str] = ''

    def __post_init__(self):
        # updated() passes the names whose values come from an already validated copy: a change of
        # top_k does not check a list of 100,000 labels again (the parameter callback stays quick).
        trusted = getattr(self, '_trusted', ())
        for f in fields(self):
            if f.name in BY_NAME and BY_NAME[f.name].group == self._group and f.name not in trusted:
                v = BY_NAME[f.name].validate(getattr(self, f.name))
                object.__setattr__(self, f.name, tuple(v) if isinstance(v, list) else v)


# The fields are written out so editors and type checkers see them; their defaults, ranges and docs
# are the table's (test_params checks the two agree field for field, in order).
@dataclass(frozen=True)
class ModelParams(_Validated):
    """The validated model/inference parameters (group 'model' of the table)."""
    _group: ClassVar[str] = 'model'
    model: str = _default('model')                            # variant name in models_file, or a model folder
    models_file: str = _default('models_file')                # YAML of variants; '' = config/models.yaml
    backend: str = _default('backend')                        # auto | torch | onnxruntime | tensorrt
    device: str = _default('device')                          # auto | cpu | cuda | cuda:N
    precision: str = _default('precision')                    # auto | fp32 | fp16 | int8
    mode: str = _default('mode')                              # generate | prompted | hybrid
    labels: tuple[str, ...] = _default('labels')              # prompted mode's label list
    labels_file: str = _default('labels_file')                # more labels, one per line or a .jsonl dictionary
    prompt_template: str = _default('prompt_template')        # CLIP text prompt; '{}' is the label
    top_k: int = _default('top_k')                            # labels per frame, best first
    beam_width: int = _default('beam_width')                  # beam search width; 1 = greedy
    max_tokens: int = _default('max_tokens')                  # most tokens per label; 0 = the decoder's maximum
    preprocessing: str = _default('preprocessing')            # fast | exact (core/preprocess.py)
    generation: str = _default('generation')                  # NOVIC checkpoints: reference configuration or auto
    min_score: float = _default('min_score')                  # labels scoring below are dropped
    object_regions: str = _default('object_regions')          # salient | grid | both
    object_min_score: float = _default('object_min_score')    # objects scoring below are dropped; -1 = calibrated
    object_min_similarity: float = _default('object_min_similarity')  # least window-label cosine; -1 = calibrated
    max_objects: int = _default('max_objects')                # most objects per frame
    object_proposals: int = _default('object_proposals')      # most salient-region proposals per frame
    batch_size: int = _default('batch_size')                  # most frames per inference batch
    threads: int = _default('threads')                        # CPU threads; 0 = the library's default
    text_cache_dir: str = _default('text_cache_dir')          # cached label embeddings; '' = the user cache
    engine_dir: str = _default('engine_dir')                  # ONNX graphs and TensorRT engines; '' = engines/
    max_pixels: int = _default('max_pixels')                  # largest frame accepted (width x height)
    categories: tuple[str, ...] = _default('categories')      # coarse categories the labels map to

    def __post_init__(self):
        super().__post_init__()
        self._check()          # the checks between fields (and labels_file's path rules)
        for name in ('object_min_score', 'object_min_similarity'):
            value = getattr(self, name)
            if value != AUTO and not 0.0 <= value <= 1.0:
                raise ValueError(f"parameter {name!r}: {value} must be in [0, 1], or -1 for the calibrated value")

    def _check(self) -> None:
        """The checks between fields, without reading labels_file (the node validates a change in its
        parameter callback, which must be quick): the file passes the path rules and stands in for its
        labels; reading it (to_options) can still fail."""
        try:
            check_labels_path(self.labels_file, self.label_dirs)
        except ValueError as e:
            raise ValueError(f"parameter 'labels_file': {e}") from None
        # The checks need to know only whether there is a list (deduplicating 100,000 labels costs 50 ms).
        self._options(self.labels[:1] + (('labels_file',) if self.labels_file else ()))

    @property
    def label_dirs(self) -> tuple[str, ...] | None:
        """The folders labels_file must be under (resolved labels_dirs: set by NodeParams), None: anywhere
        (a CLI's user names their own files)."""
        return getattr(self, '_label_dirs', None)

    def _options(self, labels: tuple[str, ...]) -> ClassifierOptions:
        # Only prompted mode and a named guided generation use the list: the others do not keep (or embed) it.
        return ClassifierOptions(mode=self.mode, labels=labels if self._uses_labels else (),
                                 prompt_template=self.prompt_template, beam_width=self.beam_width,
                                 max_tokens=self.max_tokens, top_k=self.top_k, min_score=self.min_score,
                                 generation=self.generation, preprocessing=self.preprocessing)

    @property
    def _uses_labels(self) -> bool:
        return self.mode == 'prompted' or self.mode == 'generate' and is_guided_name(self.generation)

    def to_options(self) -> ClassifierOptions:
        """The core's options: the label list merges `labels` and `labels_file` (read now, in prompted
        mode only)."""
        if not self._uses_labels:
            return self._options(())
        try:
            labels = self.labels + read_labels_file(self.labels_file, self.label_dirs)
            if len(labels) > MAX_LABELS:
                raise ValueError(f"{len(labels)} labels with `labels`, more than the {MAX_LABELS} allowed")
        except ValueError as e:
            raise ValueError(f"parameter 'labels_file': {e}") from None
        return self._options(labels)

    def to_object_options(self, clip_fingerprint: str) -> ObjectOptions:
        """The multi-object mode's options; thresholds left at -1 take the calibration of the CLIP
        model with this fingerprint (core.object_calibration)."""
        min_score, min_similarity, _ = resolve_thresholds(self.object_min_score, self.object_min_similarity,
                                                          clip_fingerprint)
        return ObjectOptions(regions=self.object_regions, min_score=min_score, min_similarity=min_similarity,
                             max_objects=self.max_objects, saliency=SaliencyConfig(max_proposals=self.object_proposals))

    @classmethod
    def from_mapping(cls, values: dict, label_dirs: tuple[str, ...] | None = None,
                     trusted: frozenset = frozenset()) -> ModelParams:
        """The model parameters among `values`; `label_dirs`: the folders labels_file must be under;
        `trusted`: names whose values were validated before (an updated() copy's unchanged ones)."""
        names = {f.name for f in fields(cls)}
        self = cls.__new__(cls)
        object.__setattr__(self, '_label_dirs', label_dirs)      # before __init__ validates
        object.__setattr__(self, '_trusted', trusted)
        self.__init__(**{k: v for k, v in values.items() if k in names})
        return self


def resolve_labels_dirs(labels_dirs) -> tuple[str, ...]:
    """labels_dirs as folders: package://novic_ros is the share folder, relative ones are absolute."""
    out = []
    for d in labels_dirs:
        if d == PACKAGE_URI or d.startswith(PACKAGE_URI + '/'):
            from .paths import share_dir
            d = str(share_dir()) + d[len(PACKAGE_URI):]
        out.append(os.path.abspath(d))
    return tuple(out)


@dataclass(frozen=True)
class NodeParams(_Validated):
    """The validated node parameters (group 'node' of the table), with the model parameters in `model`."""
    _group: ClassVar[str] = 'node'
    image_topics: tuple[str, ...] = _default('image_topics')  # camera topics to classify
    transport: str = _default('transport')                    # raw | compressed | foxglove | ffmpeg
    video_decoding: str = _default('video_decoding')          # video transports: auto | software | a device type
    qos: str = _default('qos')                                # auto | sensor_data | reliable
    qos_depth: int = _default('qos_depth')                    # subscription queue depth
    rate_hz: float = _default('rate_hz')                      # most inferences per second; 0 = unbounded
    labels_dirs: tuple[str, ...] = _default('labels_dirs')    # the folders labels_file may be under
    frame_timeout_s: float = _default('frame_timeout_s')      # warn after this long without a frame; 0 = never
    labels_topic: str = _default('labels_topic')              # vision_msgs/Classification output
    publish_overlay: bool = _default('publish_overlay')       # also publish ~/image_labeled
    objects: bool = _default('objects')                       # also find every object of each frame
    objects_topic: str = _default('objects_topic')            # vision_msgs/Detection2DArray output
    annotations_topic: str = _default('annotations_topic')    # foxglove_msgs/ImageAnnotations output
    track_objects: bool = _default('track_objects')           # track objects from frame to frame
    track_timeout_s: float = _default('track_timeout_s')      # a track without detections ends after this
    track_min_iou: float = _default('track_min_iou')          # least IoU with a track's predicted box
    track_appearance_weight: float = _default('track_appearance_weight')  # embedding weight against IoU
    warmup: bool = _default('warmup')                         # one dummy frame at configure
    autostart: bool = _default('autostart')                   # configure and activate at start
    bond_heartbeat_period: float = _default('bond_heartbeat_period')  # bond heartbeat period; 0 = no bond
    smoothing_s: float = _default('smoothing_s')              # labels_stable: moving-average time constant
    stable_margin: float = _default('stable_margin')          # labels_stable: lead a new label needs
    stable_dwell_s: float = _default('stable_dwell_s')        # labels_stable: how long it must lead
    stable_timeout_s: float = _default('stable_timeout_s')    # labels_stable: a silent camera starts over
    model: ModelParams = field(default_factory=ModelParams)   # the model/inference parameters

    def __post_init__(self):
        super().__post_init__()
        if not self.image_topics:
            raise ValueError("parameter 'image_topics': give at least one camera topic")
        # labels_file is read only under labels_dirs: the model parameters carry the resolved folders.
        dirs = resolve_labels_dirs(self.labels_dirs)
        if self.model.label_dirs != dirs:
            model = ModelParams.from_mapping({f.name: getattr(self.model, f.name) for f in fields(self.model)},
                                             label_dirs=dirs)
            object.__setattr__(self, 'model', model)

    @classmethod
    def from_mapping(cls, values: dict, trusted: frozenset = frozenset()) -> NodeParams:
        names = {f.name for f in fields(cls)} - {'model'}
        dirs = resolve_labels_dirs(BY_NAME['labels_dirs'].validate(values.get('labels_dirs',
                                                                              BY_NAME['labels_dirs'].default)))
        self = cls.__new__(cls)
        object.__setattr__(self, '_trusted', trusted)
        self.__init__(model=ModelParams.from_mapping(values, label_dirs=dirs, trusted=trusted),
                      **{k: v for k, v in values.items() if k in names})
        return self

    def flat(self) -> dict:
        """Every parameter by name, node and model alike (the shape of the ROS parameter list)."""
        node = {f.name: getattr(self, f.name) for f in fields(self) if f.name != 'model'}
        return {**node, **{f.name: getattr(self.model, f.name) for f in fields(self.model)}}

    def stability_options(self) -> StabilityOptions:
        """The core's options for labels_stable."""
        return StabilityOptions(smoothing_s=self.smoothing_s, margin=self.stable_margin,
                                dwell_s=self.stable_dwell_s, timeout_s=self.stable_timeout_s)

    def track_options(self) -> TrackOptions:
        """The core's options for object tracks."""
        return TrackOptions(timeout_s=self.track_timeout_s, min_iou=self.track_min_iou,
                            appearance_weight=self.track_appearance_weight)

    def updated(self, **changes) -> NodeParams:
        """A validated copy with `changes` applied (ValueError names what is wrong)."""
        flat = self.flat()
        return NodeParams.from_mapping({**flat, **changes}, trusted=frozenset(flat) - set(changes))


# --- CLI flags from the same table ------------------------------------------------------------

def add_model_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Add --flag for each model parameter (or those in `names`), with the registry's default and doc."""
    for p in PARAMS:
        if p.group != 'model' or names is not None and p.name not in names:
            continue
        flag = '--' + p.name.replace('_', '-')
        kw: dict[str, Any] = {'default': p.default, 'help': f"{p.description} (default: {p.default!r})"}
        if p.type is list:
            kw.update(nargs='*', default=list(p.default))
        elif p.type is bool:
            kw['type'] = lambda s, p=p: p.validate(s)
        else:
            kw['type'] = p.type
        if p.choices:
            kw['choices'] = p.choices
        parser.add_argument(flag, **kw)


def model_params_from_args(args: argparse.Namespace) -> ModelParams:
    return ModelParams.from_mapping(
        {f.name: getattr(args, f.name) for f in fields(ModelParams) if hasattr(args, f.name)}
    )


def markdown_table() -> str:
    rows = ['| parameter | type | default | range / choices | live | launch arg | description |',
            '|---|---|---|---|---|---|---|']
    for p in PARAMS:
        rng = ', '.join(map(str, p.choices)) if p.choices else (
            f"[{p.min}, {p.max}]" if p.min is not None else (p.pattern.pattern if p.pattern else ''))
        if p.type is list:
            rng = f"at most {p.max_items} of {p.max_chars} chars"
        rows.append(f"| `{p.name}` | {p.type.__name__} | `{p.default!r}` | {rng} | {'yes' if p.live else ''} | "
                    f"{p.launch_arg or ''} | {p.description} |")
    return '\n'.join(rows)


BEGIN, END = '<!-- params:begin (python -m novic_ros.params --update README.md) -->', '<!-- params:end -->'


def update_readme(path: str) -> None:
    """Replace the table between the markers in `path` with the current one."""
    text = open(path).read()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    open(path, 'w').write(f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--update']:
        update_readme(sys.argv[2])
    else:
        print(markdown_table())
