"""The import graph of ``projects.ccformer`` is a DAG, lazy imports included.

Every ``import`` of a ``projects.ccformer`` module anywhere in a file (at module level or inside a function) is an
edge; importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (unless it is an ancestor of the importing module,
which is already running), so that is an edge too. A function-level import may defer an optional dependency (the
ONNX Runtime-only install), but it must not close a cycle: the loaders live below the models
(``utils/checkpoint.py``), the model-level checkpoint checks above them (``engine/safe_checkpoint.py``).
The same holds for the sub-packages (``models``, ``engine``, ``utils`` ...) as units.
"""

import ast
import os.path as osp
import subprocess
import sys
from glob import glob
from typing import Dict, List, Set, Tuple

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
PACKAGE = 'projects.ccformer'


def _module_names() -> Dict[str, str]:
    """Dotted module name -> file, for every file of the package (a package by its ``__init__``)."""
    out = {}
    for path in glob(osp.join(ROOT, 'projects', 'ccformer', '**', '*.py'), recursive=True):
        parts = osp.relpath(path, ROOT)[: -len('.py')].split(osp.sep)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        out['.'.join(parts)] = path
    return out


MODULES = _module_names()


def _is_package(name: str) -> bool:
    return MODULES[name].endswith('__init__.py')


def _resolve(importer: str, node: ast.AST) -> List[str]:
    """The package modules an import node names (deepest existing module of each name)."""
    names: List[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = importer if _is_package(importer) else importer.rsplit('.', 1)[0]
            for _ in range(node.level - 1):
                base = base.rsplit('.', 1)[0]
            base = f'{base}.{node.module}' if node.module else base
        else:
            base = node.module or ''
        names = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in MODULES else base for alias in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rsplit('.', 1)[0] if '.' in name else ''
        if name.startswith(PACKAGE + '.'):
            out.append(name)
    return out


def import_edges() -> Dict[str, Set[Tuple[str, int]]]:
    """Module -> {(imported module, line)}, with the ``__init__`` of every package the import runs."""
    edges: Dict[str, Set[Tuple[str, int]]] = {name: set() for name in MODULES}
    for importer, path in MODULES.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _resolve(importer, node):
                parts = target.split('.')
                for depth in range(3, len(parts) + 1):  # projects.ccformer.<sub>... down to the target
                    name = '.'.join(parts[:depth])
                    if name != importer and not importer.startswith(name + '.'):
                        edges[importer].add((name, node.lineno))
    return edges


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle of ``graph`` as a list of nodes (first == last), or [] when it is a DAG."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _describe(cycle: List[str], edges: Dict[str, Set[Tuple[str, int]]]) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        lines = sorted(line for target, line in edges.get(a, ()) if target == b)
        steps.append(f'{a} (line {lines[0] if lines else "?"}) -> {b}')
        if not lines:  # sub-package level: name one module edge
            steps[-1] += (
                ' via '
                + ', '.join(
                    f'{m}:{line} -> {t}'
                    for m, targets in edges.items()
                    if _sub(m) == a
                    for t, line in sorted(targets)
                    if _sub(t) == b
                )[:300]
            )
    return '\n'.join(steps)


def _sub(name: str) -> str:
    """The sub-package of a module (``models``, ``engine`` ...); the package root itself is ``''``."""
    parts = name.split('.')
    return parts[2] if len(parts) > 2 else ''


def test_the_resolver_sees_lazy_and_relative_imports():
    edges = import_edges()
    targets = {t for t, _ in edges['projects.ccformer.models.backbones.vggish']}
    assert 'projects.ccformer.utils.checkpoint' in targets and 'projects.ccformer.utils' in targets
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) == []


def test_module_import_graph_has_no_cycle():
    edges = import_edges()
    graph = {m: {t for t, _ in targets} for m, targets in edges.items()}
    cycle = find_cycle(graph)
    assert not cycle, 'import cycle:\n' + _describe(cycle, edges)


def test_sub_package_import_graph_has_no_cycle():
    edges = import_edges()
    graph: Dict[str, Set[str]] = {}
    for module, targets in edges.items():
        if _sub(module):
            graph.setdefault(_sub(module), set()).update(_sub(t) for t, _ in targets if _sub(t) != _sub(module))
    cycle = find_cycle(graph)
    assert not cycle, 'sub-package import cycle:\n' + _describe(cycle, edges)


def test_checkpoint_readers_sit_below_the_models():
    """The backbones read their pretrained files with utils/checkpoint.py, which imports nothing of the package;
    engine/safe_checkpoint.py builds on both."""
    edges = import_edges()
    assert not edges['projects.ccformer.utils.checkpoint']
    for module in ('projects.ccformer.models.backbones.vggish', 'projects.ccformer.models.backbones.timm_backbone'):
        assert not any(_sub(t) == 'engine' for t, _ in edges[module]), module


@pytest.mark.parametrize('sub', sorted({_sub(m) for m in MODULES if _sub(m)}))
def test_each_sub_package_imports_alone(sub):
    """A fresh interpreter imports the sub-package first (what a tool or a config's ``custom_imports`` does)."""
    proc = subprocess.run(
        [sys.executable, '-c', f'import {PACKAGE}.{sub}'], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
