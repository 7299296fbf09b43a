"""Decoder training configuration: a YAML file (config/train/*.yaml) read into typed dataclasses."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml


@dataclass(frozen=True)
class DecoderHParams:
    """DecoderConfig without the parts the data decides (embedding width, vocabulary size)."""
    width: int = 512
    layers: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    prefix_len: int = 4
    max_tokens: int = 12
    dropout: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    nouns: str = 'wordnet'            # toy | wordnet (build from Debian's WordNet) | path to a novic-nouns .jsonl
    max_nouns: int = 0                # 0 = all; otherwise the most frequent max_nouns
    prompts_per_noun: int = 100
    val_fraction: float = 0.02        # prompts held out for validation (text inversion accuracy)
    decoder: DecoderHParams = field(default_factory=DecoderHParams)
    noise: float = 0.1                # norm of the Gaussian noise added to each unit text embedding
    steps: int = 10000
    batch_size: int = 256
    lr: float = 5e-4
    warmup: int = 500
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 1000
    checkpoint_every: int = 2000
    log_every: int = 50
    text_batch_size: int = 256
    seed: int = 0

    def __post_init__(self):
        checks = {
            'prompts_per_noun': self.prompts_per_noun >= 1, 'steps': self.steps >= 1, 'batch_size': self.batch_size >= 1,
            'lr': self.lr > 0, 'warmup': self.warmup >= 0, 'noise': self.noise >= 0,
            'val_fraction': 0 <= self.val_fraction < 0.5, 'label_smoothing': 0 <= self.label_smoothing < 1,
            'eval_every': self.eval_every >= 1, 'checkpoint_every': self.checkpoint_every >= 1,
            'max_nouns': self.max_nouns >= 0, 'log_every': self.log_every >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"training config: invalid value for {', '.join(bad)} "
                             f"({', '.join(f'{k}={getattr(self, k)!r}' for k in bad)})")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> 'TrainConfig':
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        return cls.from_dict({**data, **{k: v for k, v in overrides.items() if v is not None}}, str(path))

    @classmethod
    def from_dict(cls, data: dict, where: str = 'training config') -> 'TrainConfig':
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        if 'decoder' in data:
            dk = {f.name for f in fields(DecoderHParams)}
            bad = set(data['decoder']) - dk
            if bad:
                raise ValueError(f"{where}: unknown decoder keys {sorted(bad)}; known: {sorted(dk)}")
            data['decoder'] = DecoderHParams(**data['decoder'])
        return cls(**data)

    def with_overrides(self, **kw) -> 'TrainConfig':
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)
