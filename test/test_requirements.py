"""The requirement files hold ranges that install where robots are; the lock file picks the exact
versions of our venv and CI inside them.

Offline: every pin of requirements-lock.txt lies inside the ranges of the requirement files, and
every package they name is pinned. Online (PyPI): pip's resolver installs the runtime and eval
requirements on Python 3.10 (Jetson JetPack 6, Humble) and 3.12 (Jazzy), on x86_64 and on aarch64:
a range whose versions do not exist there fails. Skipped, saying so, when the index cannot be
reached. The torch side (requirements-core.txt) is resolved by `make check-requirements`: pip needs
80-170 s for torch's tree, too slow for the suite, and its aarch64 answer would be wrong (pip
evaluates environment markers for the running machine, so --platform aarch64 asks for torch's x86_64
CUDA wheels).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
RANGE_FILES = ('requirements-runtime.txt', 'requirements-eval.txt', 'requirements-core.txt',
               'requirements-ros.txt', 'requirements-openvino.txt', 'requirements-ray.txt', 'requirements-dev.txt')
AARCH64 = ('manylinux_2_35_aarch64', 'manylinux_2_28_aarch64', 'manylinux2014_aarch64')   # Jetson L4T r36: glibc 2.35


def _requirements(name: str) -> list[Requirement]:
    out = []
    for line in (REPO / name).read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            out.append(Requirement(line))
    return out


def _lock() -> dict[str, str]:
    pins = {}
    for req in _requirements('requirements-lock.txt'):
        (spec,) = req.specifier
        assert spec.operator == '==', f"the lock file pins exact versions: {req}"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_lock_pins_lie_inside_the_ranges():
    pins = _lock()
    for name in RANGE_FILES:
        for req in _requirements(name):
            assert not any(s.operator in ('==', '===') for s in req.specifier), f"{name}: {req} is a pin, not a range"
            key = canonicalize_name(req.name)
            assert key in pins, f"{name}: {req.name} has no pin in requirements-lock.txt"
            assert req.specifier.contains(pins[key], prereleases=True), \
                f"requirements-lock.txt pins {req.name}=={pins[key]}, outside {name}'s {req.specifier}"


def test_setup_py_extras_are_the_range_files():
    # setup.py calls setup() when run: execute only its helpers (everything above that call).
    source = (REPO / 'setup.py').read_text().split('\nsetup(', 1)[0]
    ns: dict = {'__file__': str(REPO / 'setup.py')}
    exec(compile(source, str(REPO / 'setup.py'), 'exec'), ns)
    for name in ('requirements-runtime.txt', 'requirements-eval.txt'):
        assert [str(Requirement(r)) for r in ns['requirements'](name)] == [str(r) for r in _requirements(name)]
    assert 'torch' not in {canonicalize_name(r.name) for r in _requirements('requirements-runtime.txt')}
    assert {'zstandard', 'apsw', 'rosbags', 'mcap'} <= {
        canonicalize_name(r.name) for r in _requirements('requirements-eval.txt')
    }


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(('pypi.org', 443), timeout=5).close()
        return True
    except OSError:
        return False


def resolve(files: list[str], python: str, platforms: tuple[str, ...], target: Path) -> subprocess.CompletedProcess:
    """pip's answer to installing `files` on `python` / `platforms` (binary wheels only), nothing installed."""
    cmd = [sys.executable, '-m', 'pip', 'install', '-q', '--dry-run', '--ignore-installed', '--only-binary=:all:',
           '--disable-pip-version-check', '--python-version', python, '--target', str(target),
           '--report', str(target / 'report.json')]
    for p in platforms:
        cmd += ['--platform', p]
    for f in files:
        cmd += ['-r', str(REPO / f)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400)


# A Jetson on JetPack 6 (3.10, aarch64) and Ubuntu 24.04 with Jazzy (3.12, x86_64); the other two
# pairings resolve to the same versions (the runtime's wheels carry no per-machine markers) and would
# double the file's time (about 30 s per question on 2 busy cores). make check-requirements: all four.
CASES = [('3.10', 'aarch64'), ('3.12', 'x86_64')]
ALL_CASES = [('3.10', 'x86_64'), ('3.10', 'aarch64'), ('3.12', 'x86_64'), ('3.12', 'aarch64')]


def test_runtime_and_eval_requirements_resolve_on_robot_pythons(tmp_path):
    cases = ALL_CASES if os.environ.get('NOVIC_ALL_PLATFORMS') else CASES
    if not _pypi_reachable():
        pytest.skip('pypi.org:443 is unreachable: cannot ask pip whether the ranges resolve')
    files = ['requirements-runtime.txt', 'requirements-eval.txt']

    def one(case):
        python, arch = case
        target = tmp_path / f'{python}-{arch}'
        target.mkdir()
        return case, target, resolve(files, python, AARCH64 if arch == 'aarch64' else (), target)

    with ThreadPoolExecutor(len(cases)) as pool:       # network-bound: the four questions at once
        results = list(pool.map(one, cases))
    for (python, arch), target, r in results:
        if r.returncode != 0 and any(s in r.stderr for s in ('NewConnectionError', 'Max retries exceeded',
                                                           'Temporary failure in name resolution')):
            pytest.skip(f'the package index failed mid-way ({python} {arch}): {r.stderr.strip()[-300:]}')
        assert r.returncode == 0, (
            f"runtime + eval requirements do not resolve on Python {python} {arch}:\n{r.stderr[-3000:]}"
        )
        got = {canonicalize_name(i['metadata']['name']): i['metadata']['version']
               for i in json.loads((target / 'report.json').read_text())['install']}
        for req in _requirements('requirements-runtime.txt') + _requirements('requirements-eval.txt'):
            key = canonicalize_name(req.name)
            assert key in got and req.specifier.contains(got[key]), (python, arch, req, got.get(key))
        assert 'torch' not in got, f"the runtime pulls torch on {python} {arch}"
