"""novic-eval offline --ray [ADDRESS]: a fleet's bags as Ray tasks (the fleet itself: eval/fleet.py).

Ray is an optional extra (`pip install novic_ros[ray]`). The driver connects to the cluster at
ADDRESS (`ray.init(address)`; `auto`: the one this machine belongs to) or starts a local one, puts the
model's files (a bundle folder, or the variant's local CLIP weights and decoder) into Ray's object
store once, and submits one task per bag. Each task unpacks the model once per node (a cache under
the node's temp folder, keyed by the files' hash), runs `novic-eval offline` on its bag in the worker
process (the model loaded once per task) into a temporary folder, and returns the report's files;
the driver writes them into OUT/<bag name>/. The bags are read where the workers run: give paths the
workers see (a shared file system). A task whose worker dies (killed, out of memory, a crash in a
native decoder) is not retried: its bag is a failed entry and the others finish.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from ..backends import resolve_engine_dir
from ..core.export_record import cached_bundle
from ..core.variants import LOCAL_DIR, get_variant
from ..eval.fleet import bag_entry
from ..params import ModelParams

RAY_MISSING = "--ray needs Ray, an optional extra: pip install novic_ros[ray] (or pip install -r requirements-ray.txt)"


class RayMissing(ValueError):
    """--ray without the ray package (one line on stderr, exit 1)."""


def require_ray():
    try:
        import ray
    except ImportError as e:
        raise RayMissing(RAY_MISSING) from e
    return ray


@dataclass(frozen=True)
class ModelPackage:
    """The model's files as one tar (what the object store ships) and how a worker names the model
    once they are unpacked: a variant (its models file written beside the files) or a bundle folder."""
    tar: bytes
    sha: str
    name: str
    entry: dict | None          # the models-file entry (paths relative to the unpacked folder); None: a bundle


def package_model(params: ModelParams) -> ModelPackage:
    """The local files the model of `params` loads from, packed: a bundle folder as it is; a variant, for
    a runtime backend, the bundle it was last exported to when its files are unchanged since (what a
    single run would load: the workers need no torch and export nothing), else the variant's CLIP
    weights and decoder. Weights named by an open_clip tag (openai, ...) are not files of ours: each
    worker finds them in its own Hugging Face cache, as a single run would."""
    variant = get_variant(params.model, params.models_file or None)
    members: dict[str, Path] = {}
    entry = None
    exported = None
    if variant.bundle is None and params.backend != 'torch':
        exported = cached_bundle(variant, resolve_engine_dir(params.engine_dir), params.mode != 'prompted',
                                 fp16=False, strict=True)
    if variant.bundle is not None or exported is not None:
        members['bundle'] = Path(variant.bundle if exported is None else exported.folder)
    else:
        clip_model, pretrained = variant.clip.model, variant.clip.pretrained
        if clip_model.startswith(LOCAL_DIR):
            members['clip'] = Path(clip_model[len(LOCAL_DIR):])
            clip_model = LOCAL_DIR + 'clip'
        if pretrained and os.path.isfile(pretrained):
            members['pretrained'] = Path(pretrained)
            pretrained = 'pretrained/' + Path(pretrained).name
        members['decoder'] = variant.decoder
        entry = {'clip_model': clip_model, 'pretrained': pretrained, 'decoder': 'decoder'}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for arcname, path in members.items():
            if not path.exists():
                raise FileNotFoundError(f"model {params.model}: {path} does not exist (the Ray workers get the model "
                                        "from here)")
            tar.add(path, arcname=arcname if path.is_dir() else f"{arcname}/{path.name}")
    data = buf.getvalue()
    return ModelPackage(data, hashlib.sha256(data).hexdigest()[:16], variant.name, entry)


def _unpacked(pkg: ModelPackage) -> list[str]:
    """Unpack the model on this node once (tasks on one node share it) and return the flags that name it."""
    root = Path(tempfile.gettempdir()) / 'novic_ros-ray-models' / pkg.sha
    if not root.is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        part = Path(tempfile.mkdtemp(dir=root.parent, prefix=f'.{pkg.sha}-'))
        with tarfile.open(fileobj=io.BytesIO(pkg.tar)) as tar:
            tar.extractall(part, filter='data')
        if pkg.entry is not None:
            (part / 'models.yaml').write_text(yaml.safe_dump({pkg.name: pkg.entry}))
        try:
            part.rename(root)           # atomic: another task on this node may have won the race
        except OSError:
            shutil.rmtree(part, ignore_errors=True)
    if pkg.entry is None:
        return ['--model', str(root / 'bundle')]
    return ['--model', pkg.name, '--models-file', str(root / 'models.yaml')]


def evaluate_bag(eval_main: Callable[[list[str]], int], bag: str, passthrough: list[str], pkg: ModelPackage) -> dict:
    """One bag, in a Ray worker: `novic-eval offline` (`eval_main`, the CLI's main) in this process;
    its exit status, stderr and report files."""
    start = time.monotonic()
    err = io.StringIO()
    with tempfile.TemporaryDirectory(prefix='novic-ray-bag-') as tmp:
        out = Path(tmp) / 'report'
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            code = eval_main(['offline', bag, '--out', str(out), '--no-progress', *passthrough, *_unpacked(pkg)])
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob('*') if p.is_file()} \
            if out.is_dir() else {}
    return {'exit': code, 'stderr': err.getvalue(), 'files': files, 'seconds': time.monotonic() - start}


def run_ray(bags: list[Path], outs: list[Path], passthrough: list[str], pkg: ModelPackage, address: str | None,
            task_fn: Callable[[str, list[str], ModelPackage], dict], num_cpus: int | None = None) -> list[dict]:
    """The bags as Ray tasks (one CPU each, `task_fn(bag, passthrough, pkg)`: evaluate_bag with the CLI's
    main, a function of an importable module so that the workers import it by name) on the cluster at
    `address`, or on a new local one (of `num_cpus`; None: this machine's cores) when None; a Ray
    session that is already up (a caller that ran ray.init) is used as it is."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        local = {'num_cpus': num_cpus, 'include_dashboard': False} if not address else {}
        try:
            ray.init(address=address or 'local', log_to_driver=False, configure_logging=False, **local)
        except ConnectionError as e:         # no cluster at that address (one line, exit 1)
            raise ValueError(f"--ray {address}: {e} (start one with `ray start --head`, or leave out ADDRESS "
                             "for a local cluster of this run)") from e
    try:
        model_ref = ray.put(pkg)        # shipped once: each node fetches it from the object store once
        task = ray.remote(num_cpus=1, max_retries=0)(task_fn)
        refs = [task.remote(str(bag.resolve()), passthrough, model_ref) for bag in bags]
        entries = []
        for bag, out, ref in zip(bags, outs, refs):
            try:
                res = ray.get(ref)
            except ray.exceptions.RayError as e:        # the worker died, or the task could not run
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                entries.append(bag_entry(bag, out, -1, '', 0.0, f"Ray task failed: {type(e).__name__}: {first}"))
                continue
            for name, data in res['files'].items():
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                (out / name).write_bytes(data)
            entries.append(bag_entry(bag, out, res['exit'], res['stderr'], res['seconds']))
        return entries
    finally:
        if started:
            ray.shutdown()
