"""The import contract: every import stays within the layers that docs/architecture.md allows.

The table in that document is the contract; this test reads it and every
import statement (also inside functions and under ``TYPE_CHECKING``), and
names the file and line of any import the table does not allow. Runtime
import cycles (module-level imports) are refused too.
"""

from __future__ import annotations

import ast
import pathlib
import re
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).parent.parent
PROJECT = ("sequencer_net", "ordering", "mev", "delivery", "p2p", "ops", "bench", "examples")
ANYTHING = "anything"


@dataclass(frozen=True)
class Layer:
    modules: tuple[str, ...]
    allowed: tuple[str, ...] | None  # None: anything


@dataclass(frozen=True)
class Import:
    path: pathlib.Path
    line: int
    importer: str
    imported: str
    module_level: bool


def layers_from(doc: str) -> list[Layer]:
    """The rows of the layer table: (modules, may import)."""
    layers = []
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[1].startswith("`"):
            continue
        modules = tuple(re.findall(r"`([\w.]+)`", cells[1]))
        allowed = None if cells[2] == ANYTHING else tuple(re.findall(r"`([\w.]+)`", cells[2]))
        layers.append(Layer(modules, allowed))
    return layers


def module_name(root: pathlib.Path, path: pathlib.Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(root: pathlib.Path) -> list[Import]:
    """Every import of a project module, from every project source file under ``root``."""
    paths = [path for top in PROJECT for path in sorted((root / top).rglob("*.py"))]
    known = {module_name(root, path) for path in paths}
    found = []
    for path in paths:
        importer = module_name(root, path)
        tree = ast.parse(path.read_text(), str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            for imported in _imported(node, importer, known):
                if imported.split(".")[0] in PROJECT:
                    found.append(
                        Import(path, node.lineno, importer, imported, id(node) in top_level)
                    )
    return found


def _imported(node: ast.AST, importer: str, known: set[str]) -> list[str]:
    """The modules an import statement loads (``from a import b``: ``a.b`` if it is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: resolve against the importer's package
        package = importer.split(".")[: -node.level]
        base = ".".join([*package, node.module] if node.module else package)
    else:
        base = node.module or ""
    submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    return submodules or [base]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str, layers: list[Layer]) -> Layer | None:
    """The layer with the longest module prefix that holds ``module``."""
    matches = [(len(m), layer) for layer in layers for m in layer.modules if _within(module, m)]
    return max(matches, key=lambda pair: pair[0])[1] if matches else None


def violations(root: pathlib.Path, layers: list[Layer]) -> list[str]:
    """One line per import outside the contract: ``file:line: a imports b``."""
    out = []
    for imp in imports_in(root):
        layer = layer_of(imp.importer, layers)
        if layer is None:
            out.append(f"{imp.path}:{imp.line}: {imp.importer} belongs to no layer")
            continue
        if layer.allowed is None or any(_within(imp.imported, m) for m in layer.modules):
            continue
        if not any(_within(imp.imported, allowed) for allowed in layer.allowed):
            out.append(f"{imp.path}:{imp.line}: {imp.importer} may not import {imp.imported}")
    return out


def cycles(root: pathlib.Path) -> list[list[str]]:
    """Import cycles among module-level imports (what Python runs at import time)."""
    graph: dict[str, set[str]] = {}
    for imp in imports_in(root):
        if imp.module_level and imp.importer.split(".")[0] not in ("ops", "bench"):
            graph.setdefault(imp.importer, set()).add(imp.imported)
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph.get(module, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt] if nxt in path else [module, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def contract() -> list[Layer]:
    return layers_from((ROOT / "docs" / "architecture.md").read_text())


def test_every_import_stays_within_its_layer() -> None:
    layers = contract()
    assert {m for layer in layers for m in layer.modules} >= {
        "sequencer_net.base",
        "ordering",
        "mev",
        "p2p",
        "sequencer_net.node",
        "ops",
    }
    assert violations(ROOT, layers) == []


def test_there_are_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_a_core_that_imports_the_node_is_caught_with_file_and_line(
    tmp_path: pathlib.Path,
) -> None:
    for package in ("ordering", "sequencer_net/node", "sequencer_net/base"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "sequencer_net" / "__init__.py").write_text("")
    (tmp_path / "sequencer_net" / "base" / "codec.py").write_text("import json\n")
    (tmp_path / "ordering" / "core.py").write_text(
        "from sequencer_net.base import codec\n\n\ndef f():\n"
        "    from sequencer_net.node.storage import Store\n"
    )
    (tmp_path / "sequencer_net" / "base" / "signing.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ordering import core\n"
    )
    found = violations(tmp_path, contract())
    assert sorted(found) == [
        f"{tmp_path / 'ordering' / 'core.py'}:5: ordering.core may not import "
        "sequencer_net.node.storage",
        f"{tmp_path / 'sequencer_net' / 'base' / 'signing.py'}:3: sequencer_net.base.signing "
        "may not import ordering.core",
    ]


def test_a_cycle_is_caught(tmp_path: pathlib.Path) -> None:
    (tmp_path / "mev").mkdir()
    (tmp_path / "mev" / "a.py").write_text("from mev import b\n")
    (tmp_path / "mev" / "b.py").write_text("import mev.a\n")
    assert cycles(tmp_path) == [["mev.a", "mev.b", "mev.a"]]
