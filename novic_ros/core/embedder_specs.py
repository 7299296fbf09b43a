"""The NOVIC reference names the CLIP model a decoder was trained on by an embedder spec,
`TYPE:NAME` (a checkpoint's `embedder_spec`): `openclip:<Hugging Face repo id>` (open_clip's
`hf-hub:` model, config and weights from the hub), `openai:<OpenAI CLIP name>` (ViT-B/32, ...).
This module maps such a spec onto our ClipSpec, with the overrides a user sets when the weights
live elsewhere: `clip_model` (an open_clip name, `hf-hub:ID`, `local-dir:FOLDER`) and `pretrained`
(a local weights file, or a folder: an open_clip model folder, a Hugging Face cache folder of the
repo, or a Hugging Face cache root holding it). Torch-free: paths are resolved, nothing is loaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError
from .variants import HF_HUB, LOCAL_DIR, ClipSpec

WEIGHT_FILES = ('.safetensors', '.bin', '.pt', '.pth')

# OpenAI CLIP names (the `clip` package's) -> open_clip's architecture names; tag 'openai'.
OPENAI_MODELS = {
    'RN50': 'RN50', 'RN101': 'RN101', 'RN50x4': 'RN50x4', 'RN50x16': 'RN50x16', 'RN50x64': 'RN50x64',
    'ViT-B/32': 'ViT-B-32', 'ViT-B/16': 'ViT-B-16', 'ViT-L/14': 'ViT-L-14', 'ViT-L/14@336px': 'ViT-L-14-336',
}


@dataclass(frozen=True)
class HubModel:
    """An open_clip model published on the Hugging Face hub, and the built-in open_clip architecture
    its weights fit (used when `pretrained` names a bare weights file: the architecture must then come
    from open_clip's own configs, with the activation the weights were trained with)."""
    repo_id: str
    architecture: str        # open_clip built-in config name (with -quickgelu where the weights need it)
    tag: str                 # open_clip's pretrained tag for the same weights
    tokenizer: str           # 'clip_bpe' (open_clip SimpleTokenizer) or 'hf' (a Hugging Face tokenizer)


# The embedders of the NOVIC authors' released checkpoints (downloads/catalog.py), and their relatives.
HUB_MODELS = {m.repo_id: m for m in (
    HubModel('apple/DFN5B-CLIP-ViT-H-14-378', 'ViT-H-14-378-quickgelu', 'dfn5b', 'clip_bpe'),
    HubModel('apple/DFN5B-CLIP-ViT-H-14', 'ViT-H-14-quickgelu', 'dfn5b', 'clip_bpe'),
    HubModel('timm/ViT-B-16-SigLIP', 'ViT-B-16-SigLIP', 'webli', 'hf'),
    HubModel('timm/ViT-SO400M-14-SigLIP', 'ViT-SO400M-14-SigLIP', 'webli', 'hf'),
)}


def parse_embedder_spec(spec: str) -> tuple[str, str]:
    """'openclip:timm/ViT-B-16-SigLIP' -> ('openclip', 'timm/ViT-B-16-SigLIP')."""
    kind, sep, name = str(spec).partition(':')
    if not sep or not name:
        raise ModelLoadError(
            f"embedder spec {spec!r} is not TYPE:NAME (openclip:<Hugging Face repo id>, openai:ViT-B/32)"
        )
    return kind.strip().lower(), name.strip()


def hub_repo_folder(cache_root: Path, repo_id: str) -> Path:
    """Where the Hugging Face cache keeps a model repository: ROOT/models--ORG--NAME."""
    return cache_root / ('models--' + repo_id.replace('/', '--'))


def hub_snapshot(repo_folder: Path, revision: str = 'main') -> Path | None:
    """The snapshot a cached repo's ref names (refs/main), else its only snapshot; None if there is none."""
    ref = repo_folder / 'refs' / revision
    if ref.is_file():
        snap = repo_folder / 'snapshots' / ref.read_text().strip()
        if snap.is_dir():
            return snap
    snaps = (
        sorted(p for p in (repo_folder / 'snapshots').glob('*') if p.is_dir())
        if (repo_folder / 'snapshots').is_dir()
        else []
    )
    return snaps[0] if len(snaps) == 1 else None


def _folder_spec(folder: Path, repo_id: str | None) -> ClipSpec:
    """A folder given as `pretrained`: an open_clip model folder, a cached repo, or a cache root."""
    if (folder / 'open_clip_config.json').is_file():
        return ClipSpec.local_dir(folder)
    candidates = [folder]
    if repo_id:
        candidates.insert(0, hub_repo_folder(folder, repo_id))       # a cache root holding the repo
    for repo in candidates:
        snap = hub_snapshot(repo) if (repo / 'snapshots').is_dir() else None
        if snap is not None and (snap / 'open_clip_config.json').is_file():
            return ClipSpec.local_dir(snap)
    where = f" (for {repo_id}: {hub_repo_folder(folder, repo_id)}/snapshots/REV/)" if repo_id else ''
    raise ModelLoadError(f"pretrained folder {folder} holds no open_clip model: expected open_clip_config.json and "
                         f"weights in it, or a Hugging Face cache snapshot with them{where}")


def clip_spec_for_embedder(spec: str, clip_model: str | None = None, pretrained: str | None = None) -> ClipSpec:
    """The ClipSpec that loads the embedder `spec` names, as the NOVIC reference loads it, unless the
    overrides say where the weights are: `clip_model` replaces the model outright (with `pretrained`
    as its tag or file); `pretrained` alone names a weights file (the architecture comes from open_clip's
    configs for that embedder) or a folder (see the module docstring). ModelLoadError names what is
    unsupported or missing."""
    kind, name = parse_embedder_spec(spec)
    if clip_model:
        return ClipSpec(clip_model, _expand(pretrained) if pretrained else None)
    if kind == 'openai':
        arch = OPENAI_MODELS.get(name)
        if arch is None:
            raise ModelLoadError(
                f"embedder {spec!r}: unknown OpenAI CLIP model {name!r}; known: {', '.join(OPENAI_MODELS)}"
            )
        return ClipSpec(arch, _expand(pretrained) if pretrained else 'openai')
    if kind != 'openclip':
        raise ModelLoadError(f"embedder {spec!r}: type {kind!r} is not supported (openclip:<repo id> and openai:<name> "
                             "are); set clip_model to an open_clip model that computes the same embeddings")
    if name.startswith(HF_HUB) or name.startswith(LOCAL_DIR):
        raise ModelLoadError(
            f"embedder {spec!r}: openclip: takes a Hugging Face repo id (ORG/NAME), as the reference does"
        )
    if '/' not in name:
        raise ModelLoadError(f"embedder {spec!r}: {name!r} is not a Hugging Face repo id (ORG/NAME)")
    if not pretrained:
        return ClipSpec(HF_HUB + name)
    path = Path(_expand(pretrained))
    if path.is_dir():
        return _folder_spec(path, name)
    if path.is_file() or path.suffix in WEIGHT_FILES:
        hub = HUB_MODELS.get(name)
        if hub is None:
            raise ModelLoadError(
                f"embedder {spec!r}: with a bare weights file ({path}) the architecture must be known, and "
                f"{name} is not among {', '.join(HUB_MODELS)}; set clip_model to its open_clip "
                "architecture too, or give the repo's folder (open_clip_config.json + weights)"
            )
        if not path.is_file():
            raise ModelLoadError(f"pretrained weights file {path} does not exist")
        return ClipSpec(hub.architecture, str(path), preprocess_tag=hub.tag)
    raise ModelLoadError(f"pretrained {pretrained!r} for embedder {spec!r} is neither a weights file "
                         f"({', '.join(WEIGHT_FILES)}) nor a folder")


def _expand(value: str) -> str:
    return os.path.expanduser(os.path.expandvars(str(value)))
