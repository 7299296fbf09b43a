"""Which cached bundle a models-file variant was exported to, so that the next start runs that bundle
without importing torch.

The bundle cache's own key (backends/onnx_export.ExportInfo) needs the loaded CLIP model (its weights'
fingerprint), which needs torch: 700 MB and seconds before the first label on a robot that only runs
the bundle. This record is keyed instead by what can be read without loading anything: the variant's
definition (CLIP model, pretrained tag or file, decoder folder), the path, size and modification time
of each of its files (the decoder checkpoint, a local-dir CLIP folder or weights file), and the
installed torch and open_clip versions (from their metadata, not imported) and the exporter's graph
revision. A change to any of them makes the record stale, and the variant is loaded and exported
again (torch). An open_clip pretrained tag (openai, laion2b_...) names published weights that do not
change, so only the tag is keyed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..atomic_file import atomic_write_text
from .bundle import GRAPH_REVISION, IMAGE_ENCODER, Bundle, read_bundle
from .errors import ModelLoadError
from .variants import LOCAL_DIR, ModelVariant

log = logging.getLogger(__name__)
RECORDS = 'sources'          # <engine_dir>/onnx/sources/<variant>-<definition hash>.json
FORMAT = 1


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return 'none'


def source_files(variant: ModelVariant) -> list[Path]:
    """The files the variant is made of, as far as they are local: decoder folder, CLIP folder or file."""
    roots = [variant.decoder] if variant.decoder is not None else []
    clip = variant.clip
    if clip is not None:
        if clip.model.startswith(LOCAL_DIR):
            roots.append(Path(clip.model[len(LOCAL_DIR):]))
        if clip.pretrained and os.path.exists(clip.pretrained):
            roots.append(Path(clip.pretrained))
    files = []
    for root in roots:
        if root.is_dir():
            files += sorted(p for p in root.rglob('*') if p.is_file())
        elif root.is_file():
            files.append(root)
    return files


def _definition(variant: ModelVariant) -> dict:
    clip = variant.clip
    return {'name': variant.name, 'decoder': str(variant.decoder),
            'clip': [clip.model, clip.pretrained, clip.preprocess_tag] if clip is not None else None}


def source_stamp(variant: ModelVariant) -> str:
    """The variant's definition, its files' sizes and times, and the exporting libraries' versions."""
    files = []
    for p in source_files(variant):
        st = p.stat()
        files.append([str(p), st.st_size, st.st_mtime_ns])
    blob = {'format': FORMAT, 'graph_revision': GRAPH_REVISION, 'definition': _definition(variant), 'files': files,
            'versions': {p: _version(p) for p in ('torch', 'open_clip_torch')}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def record_path(variant: ModelVariant, engine_dir: str | os.PathLike) -> Path:
    tag = hashlib.sha256(json.dumps(_definition(variant), sort_keys=True).encode()).hexdigest()[:12]
    return Path(engine_dir) / 'onnx' / RECORDS / f"{variant.name}-{tag}.json"


def cached_bundle(variant: ModelVariant, engine_dir: str | os.PathLike, with_decoder: bool, fp16: bool,
                  strict: bool) -> Bundle | None:
    """The bundle last exported from the variant's files as they are now, holding what is asked for
    (decoder graphs, the fp16 image encoder), or None: then torch loads and exports the variant."""
    path = record_path(variant, engine_dir)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        if record.get('stamp') != source_stamp(variant):
            log.info("variant %s changed since its export (files, definition or torch/open_clip versions): "
                     "exporting again", variant.name)
            return None
        if strict and not record.get('strict', False):
            return None
        bundle = read_bundle(Path(engine_dir) / 'onnx' / str(record['bundle']))
    except (OSError, KeyError, TypeError, ModelLoadError) as e:
        log.info("cached export of %s not usable (%s): exporting again", variant.name, e)
        return None
    if with_decoder and bundle.decoder is None or fp16 and not bundle.has_graph(IMAGE_ENCODER, 'fp16'):
        return None
    log.info("variant %s: its files are unchanged since they were exported to %s; running that bundle "
             "(no torch)", variant.name, bundle.folder)
    return bundle


def remember_export(variant: ModelVariant, engine_dir: str | os.PathLike, bundle: Bundle, strict: bool) -> None:
    """Note which bundle the variant's current files were exported to (best effort: a read-only cache
    only costs the next start an import of torch)."""
    record = {'format': FORMAT, 'stamp': source_stamp(variant), 'bundle': Path(bundle.folder).name,
              'strict': strict, 'definition': _definition(variant)}
    try:
        atomic_write_text(record_path(variant, engine_dir), json.dumps(record, indent=2) + '\n')
    except OSError as e:
        log.warning("cannot record the export of %s in %s (%s): the next start loads torch again",
                    variant.name, record_path(variant, engine_dir), e)
