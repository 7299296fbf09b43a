"""Model variants are data: config/models.yaml maps a short name (toy, b32, ...) to an open_clip
model with its pretrained tag or local weights, and to the decoder checkpoint trained for it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..paths import config_path, share_dir
from .clip_encoder import LOCAL_DIR, ClipSpec
from .errors import ModelLoadError


@dataclass(frozen=True)
class ModelVariant:
    name: str
    clip: ClipSpec
    decoder: Path
    description: str = ''


def _resolve(value: str, base: Path) -> str:
    value = os.path.expanduser(os.path.expandvars(value))
    return value if os.path.isabs(value) else str(base / value)


def load_variants(models_file: str | os.PathLike | None = None) -> dict[str, ModelVariant]:
    """Read a models file; relative paths in it are relative to the package share directory
    (for the package's own file) or to the file's folder (for any other file)."""
    path = Path(models_file) if models_file else config_path('models.yaml')
    if not path.is_file():
        raise ModelLoadError(f"models file {path} does not exist")
    base = share_dir() if not models_file else path.parent
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ModelLoadError(f"models file {path} is not valid YAML: {e}") from e
    variants = {}
    for name, entry in data.items():
        try:
            clip_model = entry['clip_model']
            if clip_model.startswith(LOCAL_DIR):
                clip_model = LOCAL_DIR + _resolve(clip_model[len(LOCAL_DIR):], base)
            pretrained = entry.get('pretrained')
            if pretrained and ('/' in pretrained or pretrained.endswith(('.pt', '.pth', '.bin', '.safetensors'))):
                pretrained = _resolve(pretrained, base)
            variants[name] = ModelVariant(name=name, clip=ClipSpec(clip_model, pretrained),
                                          decoder=Path(_resolve(entry['decoder'], base)),
                                          description=entry.get('description', ''))
        except (KeyError, TypeError, AttributeError) as e:
            raise ModelLoadError(f"models file {path}: entry {name!r} needs clip_model and decoder ({e})") from e
    return variants


def get_variant(name: str, models_file: str | os.PathLike | None = None) -> ModelVariant:
    variants = load_variants(models_file)
    if name not in variants:
        raise ModelLoadError(f"unknown model variant {name!r}; known variants: {', '.join(sorted(variants))} "
                             f"(defined in {models_file or config_path('models.yaml')})")
    return variants[name]
