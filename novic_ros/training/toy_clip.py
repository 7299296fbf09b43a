"""The toy CLIP: a small open_clip model (config novic_ros/model_configs/novic-toy-clip.json)
trained contrastively by our own code on the toy world's rendered pictograms and captions.

It gives the offline tests and demo what no download can here: an image-text aligned CLIP. The
result is an ordinary open_clip 'local-dir:' folder (open_clip_config.json + weights), cached:
building again with the same settings returns the folder as it is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save
from tqdm import tqdm

from ..atomic_file import atomic_write, atomic_write_text
from ..models.clip_encoder import register_model_configs
from ..core.preprocess import Preprocessor, PreprocessConfig
from . import toy_world
from .prompts import PromptGenerator

log = logging.getLogger(__name__)

MODEL_NAME = 'novic-toy-clip'
CONFIG_DIR = Path(__file__).resolve().parent.parent / 'model_configs'
PREPROCESS = {'size': 64, 'mean': [0.48145466, 0.4578275, 0.40821073], 'std': [0.26862954, 0.26130258, 0.27577711],
              'interpolation': 'bicubic', 'resize_mode': 'shortest'}


@dataclass(frozen=True)
class ToyClipTrainConfig:
    steps: int = 1200
    batch_size: int = 128          # distinct classes per batch, so no false negatives in the loss
    lr: float = 1.5e-3
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = 0
    eval_per_class: int = 4


def model_cfg() -> dict:
    return json.loads((CONFIG_DIR / f'{MODEL_NAME}.json').read_text())


def cache_key(cfg: ToyClipTrainConfig) -> str:
    blob = json.dumps({'model': model_cfg(), 'train': asdict(cfg), 'objects': toy_world.OBJECTS,
                       'preprocess': PREPROCESS, 'version': 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def create_model():
    register_model_configs()
    return open_clip.create_model(MODEL_NAME, load_weights=False)


def _batches(cfg: ToyClipTrainConfig, generator: PromptGenerator, out: queue.Queue, stop: threading.Event):
    """Render batches in a background thread (PIL releases the GIL while drawing)."""
    rng = np.random.default_rng(cfg.seed)
    n = len(toy_world.OBJECTS)
    size = (PREPROCESS['size'], PREPROCESS['size'])
    while not stop.is_set():
        classes = rng.choice(n, size=min(cfg.batch_size, n), replace=False)
        images = [toy_world.render(int(c), size, rng) for c in classes]
        captions = [generator.prompt(int(c)).text for c in classes]
        out.put((images, captions))


def zero_shot_accuracy(model, tokenizer, images: list[np.ndarray], labels: list[int],
                       template: str = 'a photo of a {}.') -> float:
    """Top-1 accuracy of the model prompted with every toy noun."""
    pre = Preprocessor(PreprocessConfig.from_open_clip(PREPROCESS))
    with torch.inference_mode():
        text = F.normalize(model.encode_text(tokenizer([template.format(n) for n in toy_world.NOUNS])), dim=-1)
        img = F.normalize(model.encode_image(torch.from_numpy(pre(images))), dim=-1)
        pred = (img @ text.T).argmax(1)
    return float((pred == torch.tensor(labels)).float().mean())


def train(cfg: ToyClipTrainConfig, progress: bool = True):
    """Train the toy CLIP; returns (model, summary dict)."""
    torch.manual_seed(cfg.seed)
    model = create_model().train()
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    pre = Preprocessor(PreprocessConfig.from_open_clip(PREPROCESS))
    # Captions describe one object, so no multi-noun prompts; plurals and hypernyms stay out too
    # because the pictures show exactly one thing.
    gen = PromptGenerator(toy_world.NOUNS, seed=cfg.seed, weights=(1.0, 0.0, 0.0, 0.0))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and 'embedding' not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and 'embedding' not in n)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 *
                                              (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    worker = threading.Thread(target=_batches, args=(cfg, gen, q, stop), daemon=True)
    worker.start()
    t0, losses = time.time(), []
    try:
        for step in tqdm(range(cfg.steps), desc='toy CLIP', disable=not progress, mininterval=2):
            images, captions = q.get()
            img = F.normalize(model.encode_image(torch.from_numpy(pre(images))), dim=-1)
            txt = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
            logits = model.logit_scale.exp() * img @ txt.T
            target = torch.arange(len(images))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)
    model.eval()
    held_out = toy_world.render_set(cfg.eval_per_class, seed=cfg.seed + 1000)
    acc = zero_shot_accuracy(model, tokenizer, [x.image for x in held_out], [x.index for x in held_out])
    summary = {'steps': cfg.steps, 'seconds': round(time.time() - t0, 1),
               'final_loss': round(float(np.mean(losses[-50:])), 4), 'prompted_top1_heldout': round(acc, 4),
               'classes': len(toy_world.OBJECTS)}
    return model, summary


def build(out_dir: str | os.PathLike, cfg: ToyClipTrainConfig = ToyClipTrainConfig(), force: bool = False,
          progress: bool = True) -> Path:
    """Train and save the toy CLIP to `out_dir`, unless it already holds one built with the same settings."""
    out = Path(out_dir)
    key = cache_key(cfg)
    cfg_file = out / 'open_clip_config.json'
    if not force and cfg_file.is_file():
        meta = json.loads(cfg_file.read_text()).get('novic_toy', {})
        if meta.get('key') == key and (out / 'open_clip_model.safetensors').is_file():
            log.info("toy CLIP in %s is up to date (key %s)", out, key)
            return out
    model, summary = train(cfg, progress)
    out.mkdir(parents=True, exist_ok=True)
    # fp16 halves the committed file; loading casts back to the model's dtype.
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / 'open_clip_model.safetensors', save(tensors))
    atomic_write_text(cfg_file, json.dumps({'model_cfg': model_cfg(), 'preprocess_cfg': PREPROCESS,
                                    'novic_toy': {'key': key, 'train': asdict(cfg), **summary}}, indent=2) + '\n')
    log.info("toy CLIP saved to %s: %s", out, summary)
    return out
