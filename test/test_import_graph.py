"""The package's layering, computed from its code (ast, nothing imported): no import cycle between
modules (lazy imports inside functions count), no subpackage importing a layer above it, and the
core and frames torch-free and ROS-free, as the package docstrings and DEVELOPERS.md say."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'novic_ros'
LEAVES = {'paths', 'atomic_file'}

# What each part may import of novic_ros (besides itself); None = anything. From the docstrings of
# the subpackages (novic_ros/*/__init__.py).
ALLOWED: dict[str, set[str] | None] = {
    'core': LEAVES,
    'lexicon': LEAVES,
    'downloads': {'core'} | LEAVES,                    # core.errors: NovicError
    'models': {'core'} | LEAVES,
    'frames': {'core', 'params', 'lexicon'} | LEAVES,   # params (defaults) imports core and lexicon
    'backends': {'core', 'models'} | LEAVES,
    'training': {'core', 'models', 'lexicon', 'frames'} | LEAVES,
    'params': {'core', 'lexicon'} | LEAVES,
    'model_loading': {'core'} | LEAVES,
    'torch_pipeline': {'core', 'models', 'backends', 'params', 'model_loading', 'downloads'} | LEAVES,
    'int8_calibration': {'core', 'frames', 'training'} | LEAVES,     # toy renders and installed photographs
    'pipeline': {'core', 'backends', 'params', 'torch_pipeline', 'model_loading', 'int8_calibration'} | LEAVES,
    'eval': {'core', 'pipeline', 'params', 'lexicon', 'frames'} | LEAVES,
    # lexicon: label_outputs maps labels to categories
    'ros': {'core', 'frames', 'pipeline', 'params', 'lexicon'} | LEAVES,
    'bench': None,
    'cli': None,
    'paths': set(),
    'atomic_file': set(),
    '__init__': set(),
}
# Imports that break the rules on purpose or are yet to be fixed, each with why. Every entry must still
# occur (a fixed one fails the test until it is taken out of here).
DEFERRED_CYCLES = {
    ('novic_ros.ros.exit_signals', 'novic_ros.ros.node_main'):
        "the entry point (run_node) installs the signal handlers before the node's heavy imports",
}
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
TORCH = {'torch', 'torchvision', 'open_clip', 'timm', 'safetensors'}
TORCH_FREE = ('core', 'frames', 'lexicon', 'downloads', 'params', 'pipeline', 'model_loading', 'int8_calibration')


def is_ros(top: str) -> bool:
    return top.startswith(('rcl', 'rosidl', 'rmw', 'launch', 'ament')) or top.endswith('_msgs') or \
        top in {'builtin_interfaces', 'unique_identifier_msgs', 'bond'}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob('*.py'))}


def imports(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(novic_ros modules imported, top-level names of other imports) anywhere in the file."""
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    inner, outer = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                (inner if a.name.split('.')[0] == 'novic_ros' else outer).add(a.name if a.name in known
                                                                            else a.name.split('.')[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            elif (node.module or '').split('.')[0] == 'novic_ros':
                target = node.module
            else:
                outer.add((node.module or '').split('.')[0])
                continue
            for a in node.names:         # `from .core import errors` imports the module novic_ros.core.errors
                sub = f"{target}.{a.name}"
                inner.add(sub if sub in known else target)
    inner.discard(name)
    return inner, outer


@pytest.fixture(scope='module')
def graph():
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def part(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def test_the_graph_sees_the_package(graph):
    assert 'novic_ros.core.classifier' in graph and 'novic_ros.ros.node' in graph
    assert 'novic_ros.core.embedding_labels' in graph['novic_ros.core.classifier'][0]
    assert 'rclpy' in graph['novic_ros.ros.node'][1]
    unknown = {part(m) for m in graph} - set(ALLOWED)
    assert not unknown, f"subpackages without a rule here: {unknown}; add them to ALLOWED with their docstring's"


def test_no_import_cycle(graph):
    edges = {m: {t for t in inner if t in graph and (m, t) not in DEFERRED_CYCLES} for m, (inner, _) in graph.items()}
    for m, t in DEFERRED_CYCLES:
        assert t in graph[m][0], f"{m} no longer imports {t}: take it out of DEFERRED_CYCLES"
    # A package's __init__ is imported with each of its modules; an edge from a module to its own
    # package's __init__ is only a cycle if that __init__ imports something back, which the walk sees.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + ' -> '.join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_no_upward_import(graph):
    bad = []
    for m, (inner, _) in graph.items():
        allowed = ALLOWED[part(m)]
        if allowed is None:
            continue
        for t in inner:
            if t != 'novic_ros' and part(t) != part(m) and part(t) not in allowed and (m, t) not in KNOWN_UPWARD:
                bad.append(f"{m} imports {t}")
    for m, t in KNOWN_UPWARD:
        assert t in graph[m][0], f"{m} no longer imports {t}: take it out of KNOWN_UPWARD"
    assert not bad, "imports against the layering (see the package docstrings):\n" + '\n'.join(sorted(bad))


def test_core_and_frames_import_no_ros_and_no_torch(graph):
    bad = []
    for m, (_, outer) in graph.items():
        p = part(m)
        if p in ('core', 'frames', 'lexicon', 'downloads', 'models', 'backends', 'training', 'params', 'pipeline',
                 'torch_pipeline', 'model_loading', 'int8_calibration'):
            bad += [f"{m} imports {t} (ROS)" for t in outer if is_ros(t)]
        if p in TORCH_FREE:
            bad += [f"{m} imports {t} (torch side)" for t in outer if t in TORCH]
    assert not bad, '\n'.join(sorted(bad))
