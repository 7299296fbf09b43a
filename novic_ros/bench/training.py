"""Training benchmarks: host memory at two data set sizes, and throughput with and without the
throughput fixes, each pair measured side by side in one run."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..models.clip_encoder import ClipEncoder
from ..core.variants import ClipSpec
from ..paths import config_path
from ..training.batches import PREFETCH_BATCHES, BatchStream
from ..training.distributed import SINGLE
from ..training.nouns_source import dictionary_nouns
from ..training.prompts import PromptGenerator
from ..training.text_embeddings import encode_shard
from ..training.train_config import TrainConfig
from ..training.train_data import TrainData, load_labels, prepare_data
from ..training.trainer import RunningLoss, Trainer, add_noise, batch_loss
from .models import b32_encoder, wide_tiny_clip_dir
from .sections import _table
from .timing import interleaved

MEMORY_SIZES = (4, 32)      # prompts per noun x 27,653 dictionary nouns: 111k and 885k prompts


def memory(sizes: tuple[int, ...] = MEMORY_SIZES, steps: int = 20) -> str:
    """Peak host memory of embedding + training (gpu.yaml's decoder and batch) at two data set sizes,
    each in a fresh process."""
    rows = []
    for per_noun in sizes:
        out = subprocess.run([sys.executable, '-m', 'novic_ros.bench.training_probe', '--per-noun', str(per_noun),
                              '--steps', str(steps)], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"training memory probe failed: {out.stderr[-2000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base = r['baseline']['RssAnon']
        rows.append([f"{r['prompts']:,}", f"{r['embeddings_mb']:.0f}", f"{base:.0f}",
                     f"{r['embedding']['RssAnon'] - base:.0f}", f"{r['training']['RssAnon'] - base:.0f}",
                     f"{max(r['embedding']['VmRSS'], r['training']['VmRSS']):.0f}",
                     f"{r['embed_seconds']:.0f}", f"{r['train_seconds']:.0f}"])
    return _table(['prompts', 'embeddings MB (fp16)', 'baseline MB (model + nouns)', 'embedding phase: anon peak MB',
                   'training phase: anon peak MB', 'peak RSS incl. mapped file MB', 'embed s', f'{steps} steps s'],
                  rows)


def _old_style_steps(trainer: Trainer, embeds: torch.Tensor, steps: int) -> list[float]:
    """The loop before the throughput fixes: a CPU randint copied to the device, the whole data set
    in memory, and loss.item() (a device sync) every step."""
    cfg, data, device = trainer.cfg, trainer.data, trainer.device
    gen = torch.Generator().manual_seed(0)
    n = len(embeds)
    tokens = data.labels.tokens.to(device)
    losses = []
    for _ in range(steps):
        pick = torch.randint(n, (cfg.batch_size,), generator=gen).to(device)
        emb = add_noise(embeds[pick].float(), cfg.noise)
        targets = torch.from_numpy(data.labels.rows.targets(pick.cpu().numpy())).to(device)
        with trainer.amp():
            loss = batch_loss(trainer.decoder, emb, tokens[targets], cfg.label_smoothing)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainer.decoder.parameters(), cfg.grad_clip)
        trainer.optimizer.step()
        trainer.scheduler.step()
        losses.append(loss.item())
    return losses


def _new_steps(trainer: Trainer, state: dict, steps: int) -> float | None:
    running = RunningLoss(trainer.device)
    for batch in trainer.stream.batches(state['step'], state['step'] + steps):
        running.add(trainer.train_step(batch))
    state['step'] += steps
    return running.take(SINGLE)


def _bench_data(device: str, per_noun: int, cache: Path) -> tuple[ClipEncoder, TrainConfig, TrainData]:
    encoder = ClipEncoder(ClipSpec.local_dir(wide_tiny_clip_dir()), device)
    cfg = TrainConfig.from_yaml(config_path('train', 'cpu.yaml')).with_overrides(
        nouns='wordnet', max_nouns=0, prompts_per_noun=per_noun, steps=10 ** 6)
    return encoder, cfg, prepare_data(encoder, cfg, progress=False, cache_root=cache, labels=load_labels(cfg))


def train_speed(repeat: int, steps: int = 10, per_noun: int = 4) -> str:
    """Decoder training samples/s, the loop before the fixes against the loop now, same decoder and data."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    with tempfile.TemporaryDirectory(prefix='novic-bench-train-') as tmp:
        encoder, cfg, data = _bench_data(device, per_noun, Path(tmp))
        rows = []
        for prefetch in (0, PREFETCH_BATCHES):
            new = Trainer(encoder, cfg, data, Path(tmp) / 'new', SINGLE, None)
            new.stream = BatchStream(new.plan, data.embeds, data.labels.tokens, new.device, prefetch)
            old = Trainer(encoder, cfg, data, Path(tmp) / 'old', SINGLE, None)
            in_memory = torch.from_numpy(np.array(data.embeds)).to(old.device)     # the old code loaded it all
            state = {'step': 0}
            t = interleaved({'old': lambda: _old_style_steps(old, in_memory, steps),
                             'new': lambda: _new_steps(new, state, steps)}, repeat, warmup=1)
            rate = lambda ms: cfg.batch_size * steps / ms * 1e3  # noqa: E731
            rows.append([device, f"{cfg.decoder.layers} x {cfg.decoder.width}", cfg.batch_size, prefetch,
                         rate(t['old']), rate(t['new']), t['old'] / t['new']])
    return _table(['device', 'decoder', 'batch', 'prefetch batches', 'before: samples/s', 'now: samples/s', 'speed-up'],
                  rows)


def text_speed(repeat: int, prompts: int = 1024) -> str:
    """Prompts/s of the ViT-B/32 text tower at two text batch sizes (and bf16 against fp32 on a GPU)."""
    enc = b32_encoder()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda':
        enc = ClipEncoder(enc.spec, device)
    nouns = dictionary_nouns(None, 2000)
    gen = PromptGenerator(nouns.labels, nouns.hypernyms, nouns.plural, seed=0)
    texts = [p.text for p in gen.prompts(1)][:prompts]
    fns = {(b, bf16): (lambda b=b, bf16=bf16: encode_shard(enc, texts, b, 0, lambda n: None, bf16))
           for b in (256, 1024) for bf16 in ((False, True) if device == 'cuda' else (False,))}
    t = interleaved(fns, max(2, repeat // 3), warmup=1)
    base = t[(1024, False)]
    return _table(
        ['device', 'text batch', 'precision', 'prompts/s', 'speed-up vs 1024 fp32 (the old gpu.yaml)'],
        [[device, b, 'bf16' if bf16 else 'fp32', prompts / ms * 1e3, base / ms] for (b, bf16), ms in t.items()],
    )


def training(repeat: int) -> str:
    return '\n\n'.join([memory(), train_speed(repeat), text_speed(repeat)])
