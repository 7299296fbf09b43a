"""What a checkpoint needs beyond the decoder itself to continue a run (train_state.pt beside
it), and the checks that a resume continues the same run, made before any heavy work."""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ..atomic_file import atomic_write
from ..models.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from .train_config import RUN_ONLY, TrainConfig, differences

STATE_FILE = 'train_state.pt'
STATE_FORMAT = 'novic_ros.train_state/2'
RESUMABLE = RUN_ONLY + ('steps',)      # what may change on resume: the rest changes what is trained


@dataclass(frozen=True)
class TrainState:
    step: int                 # optimiser steps done
    config: dict              # TrainConfig.to_dict() of the run
    clip_fingerprint: str     # the CLIP weights whose text embeddings it trains on
    data: str                 # fingerprint of the prompt rows (nouns, templates, seed, prompts per noun)
    world_size: int           # ranks of the run that wrote it (a resume may use another number)
    seconds: float            # training time up to `step`, over all runs: clocks continue across resumes
    optimizer: dict
    scheduler: dict

    @property
    def finished(self) -> bool:
        return self.step >= self.config.get('steps', 0)


def save_state(out: str | os.PathLike, state: TrainState) -> None:
    buf = io.BytesIO()
    torch.save({'format': STATE_FORMAT, **asdict(state)}, buf)
    atomic_write(Path(out) / STATE_FILE, buf.getvalue())


def read_state(out: str | os.PathLike) -> TrainState | None:
    """The state in `out`, None when there is none."""
    path = Path(out) / STATE_FILE
    if not path.is_file():
        return None
    try:
        d = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # pickle, zip and torch errors alike: the file is unusable either way
        raise ValueError(f"{path} cannot be read ({e}); delete it to start the run over") from e
    if not isinstance(d, dict) or d.get('format') != STATE_FORMAT:
        raise ValueError(f"{path} was written by an older novic-train (not {STATE_FORMAT}) and cannot be resumed; "
                         "delete it to start the run over")
    return TrainState(**{f.name: d[f.name] for f in fields(TrainState)})


def state_for_resume(out: str | os.PathLike, cfg: TrainConfig) -> TrainState:
    """The state to continue from, or an error that names what stands in the way."""
    path = Path(out) / STATE_FILE
    state = read_state(out)
    if state is None:
        raise FileNotFoundError(f"--resume: {path} does not exist, so there is no run in {out} to continue; "
                                "drop --resume to start one")
    diffs = differences(state.config, cfg.to_dict(), ignore=RESUMABLE)
    if diffs:
        listed = ', '.join(f"{k} ({a!r} in the run, {b!r} now)" for k, a, b in diffs)
        raise ValueError(f"cannot resume from {path}: the config differs in {listed}. These change what is trained; "
                         f"resume with the run's values or train into a new --out (only {', '.join(RESUMABLE)} may "
                         "change on resume)")
    if cfg.steps < state.step:
        raise ValueError(f"cannot resume from {path}: it is at step {state.step}, beyond steps={cfg.steps}; "
                         f"give --steps {state.step} or more")
    return state


def check_same_inputs(state: TrainState, clip_fingerprint: str, data: str, out: str | os.PathLike) -> None:
    path = Path(out) / STATE_FILE
    if state.clip_fingerprint != clip_fingerprint:
        raise ValueError(f"cannot resume from {path}: the run trained on CLIP weights with fingerprint "
                         f"{state.clip_fingerprint}, this model's are {clip_fingerprint}; use the run's --model")
    if state.data != data:
        raise ValueError(f"cannot resume from {path}: the training prompts differ (nouns: the noun source, e.g. the "
                         "dictionary file or WordNet, or the prompt templates changed since the run started); "
                         "train into a new --out")


def check_fresh_start(out: str | os.PathLike, overwrite: bool = False) -> None:
    """Starting over must not silently discard a run: an unfinished one is continued with --resume,
    and a finished one (or any trained decoder) is replaced only with `overwrite` (novic-toy build
    --force), never by a plain second run into the same folder."""
    out = Path(out)
    try:
        state = read_state(out)
    except ValueError:
        state = None                    # unreadable: nothing that could be resumed is lost
    if state is not None and not state.finished:
        raise ValueError(f"{out / STATE_FILE} holds a run stopped at step {state.step} of "
                         f"{state.config.get('steps')}: continue it with --resume, or delete that file (or choose "
                         "another --out) to start over")
    if overwrite or not any((out / name).exists() for name in (CONFIG_FILE, WEIGHTS_FILE)):
        return
    done = f"a finished training run ({state.step} steps)" if state is not None else "a trained decoder"
    more = f", train it longer with --resume --steps N (N > {state.step})," if state is not None else ''
    raise ValueError(f"{out} holds {done}; a new run would overwrite it. Give a new --out{more} or delete {out} "
                     "to train it again")
