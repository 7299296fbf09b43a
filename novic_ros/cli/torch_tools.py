"""Entry points of the tools that need torch (novic-toy, novic-train, novic-export, novic-bench) or
novic-eval's libraries (requirements-eval.txt): in a
runtime install without torch they say so in one line, with the install command, instead of ending in
a ModuleNotFoundError traceback; `--help` then still exits 0."""
from __future__ import annotations

import importlib
import sys

TORCH_SIDE = ('torch', 'torchvision', 'open_clip', 'timm', 'safetensors', 'onnx', 'onnxscript')
INSTALL = 'pip install -r requirements-core.txt (or novic_ros[export]; on a Jetson NVIDIA\'s torch wheel first)'


def _run(module: str, tool: str, argv=None) -> int:
    try:
        main = importlib.import_module(f'novic_ros.cli.{module}').main
    except ImportError as e:
        if (e.name or '').split('.')[0] not in TORCH_SIDE:
            raise
        args = sys.argv[1:] if argv is None else argv
        line = f"{tool} needs torch and open_clip ({e.name} is not installed): {INSTALL}"
        print(line, file=sys.stdout if {'-h', '--help'} & set(args) else sys.stderr)
        return 0 if {'-h', '--help'} & set(args) else 1
    return main(argv)


EVAL_SIDE = ('rosbags', 'mcap', 'zstandard', 'apsw', 'tqdm', 'matplotlib')
EVAL_INSTALL = 'pip install -r requirements-eval.txt (or novic_ros[eval])'


def eval_tool(argv=None) -> int:
    """novic-eval: needs requirements-eval.txt beside the runtime (no torch)."""
    try:
        main = importlib.import_module('novic_ros.cli.eval').main
    except ImportError as e:
        if (e.name or '').split('.')[0] not in EVAL_SIDE:
            raise
        args = set(sys.argv[1:] if argv is None else argv)
        print(f"novic-eval needs the bag and report libraries ({e.name} is not installed): {EVAL_INSTALL}",
              file=sys.stdout if {'-h', '--help'} & args else sys.stderr)
        return 0 if {'-h', '--help'} & args else 1
    return main(argv)


def toy(argv=None) -> int:
    return _run('toy', 'novic-toy', argv)


def train(argv=None) -> int:
    return _run('train', 'novic-train', argv)


def export(argv=None) -> int:
    return _run('export', 'novic-export', argv)


def bench(argv=None) -> int:
    return _run('bench', 'novic-bench', argv)
