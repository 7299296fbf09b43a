"""Model variants are data: config/models.yaml maps a short name (toy, b32, ...) to an open_clip
model with its pretrained tag or local weights and the decoder checkpoint trained for it (what
torch loads and novic-export exports), or to an exported bundle (what a runtime without torch
loads), or to a NOVIC authors' checkpoint (`novic_checkpoint: PATH.train`, its own config naming
the CLIP model; `clip_model`/`pretrained` may say where that CLIP's weights are). The `model`
parameter may also name a bundle folder or a NOVIC checkpoint file directly."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..paths import config_path, share_dir
from .bundle import is_bundle
from .errors import ModelLoadError

LOCAL_DIR = 'local-dir:'      # open_clip's prefix for a folder with open_clip_config.json and weights
HF_HUB = 'hf-hub:'            # open_clip's prefix for a Hugging Face repository (config, weights, tokenizer)
NOVIC_SUFFIXES = ('.train', '.model')   # the NOVIC reference's checkpoint files (training state / model only)


def is_novic_checkpoint(path) -> bool:
    """Whether a path names a NOVIC authors' checkpoint file (by its suffix: `.train` or `.model`)."""
    return str(path).endswith(NOVIC_SUFFIXES)


@dataclass(frozen=True)
class ClipSpec:
    """Which CLIP model: open_clip name (or 'local-dir:PATH', 'hf-hub:ORG/NAME') and pretrained tag or
    checkpoint file. `preprocess_tag`: with a checkpoint file, the open_clip pretrained tag whose image
    preprocessing the weights were trained with (open_clip applies a tag's preprocessing only when it
    loads by tag; a bare file would otherwise get the default resize and crop)."""
    model: str
    pretrained: str | None = None
    preprocess_tag: str | None = None

    @classmethod
    def local_dir(cls, folder) -> 'ClipSpec':
        return cls(LOCAL_DIR + str(folder))

    def describe(self) -> str:
        extra = [f"pretrained={self.pretrained}"] if self.pretrained else []
        extra += [f"preprocessing of {self.preprocess_tag}"] if self.preprocess_tag else []
        return self.model + (f" ({', '.join(extra)})" if extra else '')


@dataclass(frozen=True)
class ModelVariant:
    """A CLIP model and decoder (torch), a NOVIC checkpoint (torch; `clip` then only overrides where
    its CLIP's weights come from: model '' keeps the checkpoint's embedder), or a bundle (runtime)."""
    name: str
    clip: ClipSpec | None = None         # with `decoder`: the torch models
    decoder: Path | None = None          # novic_ros decoder folder, or a NOVIC checkpoint file
    description: str = ''
    bundle: Path | None = None           # or an exported bundle (runtime backends only)

    @property
    def is_novic(self) -> bool:
        return self.decoder is not None and is_novic_checkpoint(self.decoder)

    def describe_loaded(self, decoder_loaded: bool) -> str:
        """The variant and the models it was loaded from, in words (VisionInfo.method says this)."""
        if self.bundle is not None:          # an exported bundle (a runtime without torch)
            models = f"bundle {self.bundle}" + ('' if decoder_loaded else ', no decoder (prompted mode only)')
        elif self.is_novic:
            clip = f"CLIP {self.clip.describe()}" if self.clip is not None and self.clip.model else \
                "the CLIP model its embedder names" + (f" ({self.clip.describe()})" if self.clip else '')
            models = f"NOVIC checkpoint {self.decoder}" + ('' if decoder_loaded else ' (its decoder not loaded)') + \
                f", {clip}"
        else:
            decoder = str(self.decoder) if decoder_loaded else 'none (prompted mode only)'
            models = f"CLIP {self.clip.describe()}, decoder {decoder}"
        return f"variant {self.name}, {models}"


def _resolve(value: str, base: Path) -> str:
    value = os.path.expanduser(os.path.expandvars(value))
    return value if os.path.isabs(value) else str(base / value)


def _local_paths(clip_model: str, pretrained: str | None, base: Path) -> tuple[str, str | None]:
    """A models-file entry's clip_model and pretrained with the local paths among them resolved against
    `base` (a local-dir: folder; a pretrained value that is a path or a weights file, not an open_clip tag)."""
    if clip_model.startswith(LOCAL_DIR):
        clip_model = LOCAL_DIR + _resolve(clip_model[len(LOCAL_DIR):], base)
    if pretrained and ('/' in pretrained or pretrained.endswith(('.pt', '.pth', '.bin', '.safetensors'))):
        pretrained = _resolve(pretrained, base)
    return clip_model, pretrained


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
            if 'novic_checkpoint' in entry:
                clip_model, pretrained = _local_paths(entry.get('clip_model') or '', entry.get('pretrained'), base)
                overrides = ClipSpec(clip_model, pretrained) if clip_model or pretrained else None
                variants[name] = ModelVariant(name=name, clip=overrides,
                                              decoder=Path(_resolve(entry['novic_checkpoint'], base)),
                                              description=entry.get('description', ''))
                continue
            if 'bundle' in entry:
                variants[name] = ModelVariant(name=name, bundle=Path(_resolve(entry['bundle'], base)),
                                              description=entry.get('description', ''))
                continue
            clip_model, pretrained = _local_paths(entry['clip_model'], entry.get('pretrained'), base)
            if not pretrained and not clip_model.startswith((LOCAL_DIR, 'hf-hub:')):
                raise ModelLoadError(
                    f"models file {path}: entry {name!r} names the architecture {clip_model} without weights; set "
                    "`pretrained` to an open_clip tag (openai, ...) or a weights file, or to random:SEED for seeded "
                    "random weights (smoke tests: the same in every process, labels meaningless)")
            variants[name] = ModelVariant(name=name, clip=ClipSpec(clip_model, pretrained),
                                          decoder=Path(_resolve(entry['decoder'], base)),
                                          description=entry.get('description', ''))
        except (KeyError, TypeError, AttributeError) as e:
            raise ModelLoadError(
                f"models file {path}: entry {name!r} needs clip_model and decoder, bundle, or novic_checkpoint ({e})"
            ) from e
    return variants


def get_variant(name: str, models_file: str | os.PathLike | None = None) -> ModelVariant:
    """A variant of the models file by name, a bundle folder given by its path, or a NOVIC checkpoint
    file (PATH.train / PATH.model) given by its path."""
    if is_novic_checkpoint(name):
        path = Path(os.path.expanduser(name))
        if not path.is_file():
            raise ModelLoadError(f"NOVIC checkpoint {name} not found: download one with novic-fetch (e.g. `novic-fetch "
                                 "ye2`, which prints its path), or give the path of a .train file you have")
        path = path.resolve()
        return ModelVariant(name=path.stem, decoder=path, description="a NOVIC authors' checkpoint")
    if ('/' in name or name.startswith(('.', '~'))) and is_bundle(os.path.expanduser(name)):
        folder = Path(os.path.expanduser(name)).resolve()
        return ModelVariant(name=folder.name, bundle=folder)
    variants = load_variants(models_file)
    if name not in variants and is_bundle(name):
        # A bundle folder named without './' (toy-bundle): a variant of that name would come first.
        folder = Path(name).resolve()
        return ModelVariant(name=folder.name, bundle=folder)
    if name not in variants:
        raise ModelLoadError(f"unknown model variant {name!r}; known variants: {', '.join(sorted(variants))} "
                             f"(defined in {models_file or config_path('models.yaml')}), or give the path of "
                             "a bundle folder made by novic-export")
    return variants[name]
