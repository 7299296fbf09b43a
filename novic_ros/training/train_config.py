"""Decoder training configuration: a YAML file (config/train/*.yaml) read into typed dataclasses."""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..models.decoder import DecoderConfig
from ..paths import config_path

# What the data decides, not the config: the CLIP embedding width and the label vocabulary.
DATA_DECIDED = ('embed_dim', 'vocab_size')
# Fields that change how a run goes, not what it trains: they may differ between a run and its
# resume, and a decoder trained with other values of them is not stale.
RUN_ONLY = ('eval_every', 'checkpoint_every', 'log_every', 'text_batch_size')
# Auto text batch (text_batch_size 0): 1024 is 1.7x slower than 256 on a 2-core CPU; GPUs want large batches.
TEXT_BATCH = {'cpu': 256, 'cuda': 1024}


def _decoder_config(self, embed_dim: int, vocab_size: int) -> DecoderConfig:
    return DecoderConfig(embed_dim=embed_dim, vocab_size=vocab_size, **asdict(self))


def _check_decoder(self) -> None:
    self.config(1, 1)          # DecoderConfig's own validation, at load time rather than after data preparation


# DecoderConfig without the parts the data decides, derived from its fields so that each
# hyper-parameter and its default is written once (in models/decoder.py).
DecoderHParams = make_dataclass(
    'DecoderHParams',
    [(f.name, f.type, field(default=f.default)) for f in fields(DecoderConfig) if f.name not in DATA_DECIDED],
    namespace={'config': _decoder_config, '__post_init__': _check_decoder,
               '__doc__': 'DecoderConfig without the parts the data decides (embedding width, vocabulary size).'},
    frozen=True)
DecoderHParams.__module__ = __name__       # make_dataclass(module=) arrives only in Python 3.12
assert all(f.default is not MISSING for f in fields(DecoderHParams)), 'every decoder hyper-parameter needs a default'


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
    text_batch_size: int = 0          # prompts per text-tower batch; 0 = 256 on a CPU, 1024 on a GPU
    seed: int = 0

    def __post_init__(self):
        checks = {
            'prompts_per_noun': self.prompts_per_noun >= 1,
            'steps': self.steps >= 1,
            'batch_size': self.batch_size >= 1,
            'lr': self.lr > 0,
            'warmup': self.warmup >= 0,
            'noise': self.noise >= 0,
            'val_fraction': 0 <= self.val_fraction < 0.5,
            'label_smoothing': 0 <= self.label_smoothing < 1,
            'eval_every': self.eval_every >= 1,
            'checkpoint_every': self.checkpoint_every >= 1,
            'max_nouns': self.max_nouns >= 0,
            'log_every': self.log_every >= 1,
            'text_batch_size': self.text_batch_size >= 0,
            'grad_clip': self.grad_clip >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"training config: invalid value for {', '.join(bad)} "
                             f"({', '.join(f'{k}={getattr(self, k)!r}' for k in bad)})")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> 'TrainConfig':
        """The config in a YAML file, or one of the package's by name ('toy', see find_config)."""
        path = find_config(path)
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

    def text_batch(self, device_type: str) -> int:
        return self.text_batch_size or TEXT_BATCH.get(device_type, TEXT_BATCH['cpu'])

    def with_overrides(self, **kw) -> 'TrainConfig':
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


def _flat(d: dict, prefix: str = '') -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def differences(old: dict, new: dict, ignore: tuple[str, ...] = RUN_ONLY) -> list[tuple[str, Any, Any]]:
    """(field, old value, new value) for each field two config dicts disagree on; nested fields as
    'decoder.width'."""
    a, b = _flat(old), _flat(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if k not in ignore and a.get(k) != b.get(k)]


def packaged_configs() -> dict[str, Path]:
    """The package's training configs by name ({'toy': .../config/train/toy.yaml, ...}); empty
    where the share directory cannot be found."""
    try:
        folder = config_path('train')
    except FileNotFoundError:
        return {}
    return {p.stem: p for p in sorted(folder.glob('*.yaml'))}


def find_config(spec: str | Path) -> Path:
    """A training config: a path to a YAML file (absolute, or relative to the current folder), else
    a packaged config by name ('toy' or 'toy.yaml', from any folder). FileNotFoundError names where
    the package's configs are and what they are called."""
    path = Path(spec)
    if path.is_file():
        return path
    named = packaged_configs()
    stem = path.name[:-len('.yaml')] if path.name.endswith('.yaml') else path.name
    if path.parent == Path('.') and stem in named:
        return named[stem]
    where = (f"the package's configs are {', '.join(named)} in {next(iter(named.values())).parent} (give a name, "
             f"e.g. --config {next(iter(named))}, or a path to your own YAML file)") if named else \
        "and the package's config/train folder was not found (set NOVIC_ROS_SHARE)"
    raise FileNotFoundError(f"training config {spec} does not exist; {where}")
