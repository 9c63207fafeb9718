"""The io package is layered: no module imports (at the top or inside a function) a module
that imports it back, so each reader can be read, changed and tested from the bottom up."""

from __future__ import annotations

import ast
from pathlib import Path

import asymflux.io

IO = Path(asymflux.io.__file__).parent


def _imports(path: Path) -> set[str]:
    """The asymflux.io modules that ``path`` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("asymflux.io."):
                found.add(node.module.removeprefix("asymflux.io."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("asymflux.io.") for a in node.names
                      if a.name.startswith("asymflux.io.")}
    return found


def import_graph() -> dict[str, set[str]]:
    return {p.stem: _imports(p) for p in IO.glob("*.py") if p.stem != "__init__"}


def _cycle(graph):
    state = {}

    def visit(n, trail):
        state[n] = "open"
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return [*trail[trail.index(m):], m] if m in trail else [n, m]
            if m not in state and (c := visit(m, [*trail, m])):
                return c
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n, [n])):
            return c
    return None


def test_the_io_modules_import_each_other_without_a_cycle():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_bare_stacks_know_nothing_of_datasets():
    assert not {"dataset", "instrument", "readers"} & _imports(IO / "stacks.py")
