"""Child processes in which importing torch fails, as on a robot with the runtime install only: a
sitecustomize module on PYTHONPATH puts a meta-path finder first that refuses torch, torchvision,
open_clip and timm (and their submodules) with ModuleNotFoundError, before any other code runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BLOCKED = ('torch', 'torchvision', 'open_clip', 'timm')
MESSAGE = 'blocked by the torch-free test'

SITECUSTOMIZE = f'''import sys


class _BlockTorch:
    """Refuse {BLOCKED}: this process must run without them."""

    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} ({MESSAGE})", name=name)
        return None


sys.meta_path.insert(0, _BlockTorch())
'''


def torch_free_env(folder: Path, base: dict | None = None) -> dict:
    """An environment whose Python processes cannot import torch (the hook is written into `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'sitecustomize.py').write_text(SITECUSTOMIZE)
    env = dict(base if base is not None else os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(folder)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    return env


def run_module(module: str, args: list[str], env: dict, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m module args` in the torch-free environment."""
    return subprocess.run([sys.executable, '-m', module, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
