"""The four object decoders the NOVIC authors released (github.com/pallgeuer/novic, README "Model
Checkpoints", release v1.0.0): where each zip is, what it holds, which CLIP embedder it was trained
for, and the figures the authors published for it (theirs, not measured here).

Sizes and sha256 of the zips are not published and could not be computed where this was written (no
access to GitHub's release storage): they are None, i.e. unknown. The cache records both after the
first complete download and checks them on every later download and load (release_cache.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

RELEASE_URL = 'https://github.com/pallgeuer/novic/releases/download/v1.0.0'
URL_ENV = 'NOVIC_RELEASE_URL'      # replaces RELEASE_URL (a mirror, or a test's loopback server)


@dataclass(frozen=True)
class NovicRelease:
    tag: str                  # the authors' short tag (ta4, ...)
    name: str                 # the training run's name (ovod_YYYYMMDD_HHMMSS)
    zip_name: str             # the release asset
    train_file: str           # the checkpoint's path inside the zip
    embedder: str             # the reference's embedder spec: the CLIP model the decoder was trained on
    vocab_threshold: str      # the noun-frequency threshold of its training vocabulary (FT0, FT2)
    figures: dict[str, str] = field(default_factory=dict)   # the authors' published accuracy, as printed
    zip_size: int | None = None      # bytes; None: unknown (recorded on first download)
    zip_sha256: str | None = None    # hex; None: unknown (recorded on first download)

    def url(self, base: str | None = None) -> str:
        base = base or os.environ.get(URL_ENV) or RELEASE_URL
        return base.rstrip('/') + '/' + self.zip_name

    @property
    def folder_name(self) -> str:
        """The cache folder the zip is unpacked into (the zip's name without .zip)."""
        return self.zip_name[:-len('.zip')]


# Figures as the authors' README prints them: World-H and Wiki-H (with specificity), Wiki-L, CIFAR10, ImageNet-1K.
RELEASES: tuple[NovicRelease, ...] = (
    NovicRelease(
        'ta4',
        'ovod_20240610_105233',
        'vitb16_ft2_ta4_ovod_20240610_105233.zip',
        'ovod_20240610_105233/ovod_chunk0899_20240612_005748.train',
        'openclip:timm/ViT-B-16-SigLIP',
        'FT2',
        {
            'World-H': '79.56% (78.92%)',
            'Wiki-H': '71.89% (-)',
            'Wiki-L': '64.60%',
            'CIFAR10': '90.86%',
            'ImageNet-1K': '67.91%',
            'Embed speed (RTX A6000, fp16, batch 256)': '1163 img/s',
        },
    ),
    NovicRelease(
        'yb3',
        'ovod_20240626_001447',
        'so400m_ft2_yb3_ovod_20240626_001447.zip',
        'ovod_20240626_001447/ovod_chunk0899_20240627_112729.train',
        'openclip:timm/ViT-SO400M-14-SigLIP',
        'FT2',
        {
            'World-H': '88.53% (-)',
            'Wiki-H': '- (-)',
            'Wiki-L': '72.15%',
            'CIFAR10': '95.52%',
            'ImageNet-1K': '75.30%',
            'Embed speed (RTX A6000, fp16, batch 256)': '300 img/s',
        },
    ),
    NovicRelease(
        'ya2',
        'ovod_20240620_162925',
        'dfn5bl_ft2_ya2_ovod_20240620_162925.zip',
        'ovod_20240620_162925/ovod_chunk0899_20240621_202727.train',
        'openclip:apple/DFN5B-CLIP-ViT-H-14-378',
        'FT2',
        {
            'World-H': '87.94% (87.13%)',
            'Wiki-H': '80.13% (79.02%)',
            'Wiki-L': '75.70%',
            'CIFAR10': '97.04%',
            'ImageNet-1K': '75.77%',
            'Embed speed (RTX A6000, fp16, batch 256)': '56.2 img/s',
        },
    ),
    NovicRelease(
        'ye2',
        'ovod_20240628_142131',
        'dfn5bl_ft0_ye2_ovod_20240628_142131.zip',
        'ovod_20240628_142131/ovod_chunk0433_20240630_235415.train',
        'openclip:apple/DFN5B-CLIP-ViT-H-14-378',
        'FT0',
        {
            'World-H': '88.64% (88.27%)',
            'Wiki-H': '79.13% (78.16%)',
            'Wiki-L': '74.85%',
            'CIFAR10': '96.15%',
            'ImageNet-1K': '75.60%',
            'Embed speed (RTX A6000, fp16, batch 256)': '56.2 img/s',
        },
    ),
)


def find_release(key: str) -> NovicRelease:
    """A release by tag (ye2), run name (ovod_20240628_142131) or asset name (with or without .zip)."""
    k = key.strip().lower()
    for r in RELEASES:
        if k in (r.tag, r.name, r.zip_name, r.folder_name):
            return r
    known = ', '.join(f"{r.tag} ({r.name})" for r in RELEASES)
    raise KeyError(f"unknown NOVIC checkpoint {key!r}; the authors released {known}")
