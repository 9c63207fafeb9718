"""The package's shape: docs/architecture.md lists every module (a new module must be placed
there), and the import rules it states hold (no import cycle, nothing imports a front end, no
private module or name imported across packages), read from the source."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import networkx as nx  # a dependency of scikit-image
import pytest

import asymflux

ROOT = Path(asymflux.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def modules() -> list[str]:
    out = []
    for p in sorted(ROOT.rglob("*.py")):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def rows() -> dict[str, str]:
    """First cell's dotted names -> the whole row, for the table of where things live."""
    table = {}
    for line in DOC.read_text().splitlines():
        if line.startswith("| `asymflux"):
            first = line.split("|")[1]
            for name in re.findall(r"`(asymflux[\w.]*)`", first):
                table[name] = line
    return table


def listed(module: str, table: dict[str, str]) -> bool:
    if module in table:
        return True
    package, _, leaf = module.rpartition(".")
    return package in table and f"`{leaf}`" in table[package]


def test_every_module_is_listed():
    table = rows()
    assert table, "no table of modules in docs/architecture.md"
    missing = [m for m in modules() if m != "asymflux" and not listed(m, table)]
    assert not missing, f"docs/architecture.md does not list: {', '.join(missing)}"


def test_the_check_would_see_a_missing_module():
    table = {"asymflux.io": "| `asymflux.io` | `stacks` |"}
    assert listed("asymflux.io.stacks", table)
    assert not listed("asymflux.io.echem", table)
    assert not listed("asymflux.fit", table)


# --- the import rules (docs/architecture.md, "What may import what") ----------------------------
#
# Read from the source with ast, imports inside functions included. The module graph: an import of
# a package is an edge to its ``__init__``; ``from package import submodule`` an edge to the
# submodule; ``from package import name``, for a package whose ``__init__`` imports ``name`` on
# first use (its ``_EXPORTS = {"name": "submodule"}`` table), also an edge to that submodule (the
# module that import runs).

FRONT_ENDS = ("asymflux.cli", "asymflux.napari", "asymflux.views")
#: The core's base: each stands alone, importing only itself and the root's utilities
#: (``asymflux._atomic``, ``asymflux._validate``: top-level private modules) and the paper's
#: numbers (``asymflux.paper``, which imports nothing).
BASE = ("asymflux.model", "asymflux.optics", "asymflux.io")
ROOT_CONSTANTS = ("asymflux.paper",)


@dataclasses.dataclass(frozen=True)
class Import:
    importer: str  # the module whose source holds the statement
    module: str  # the module named, relative imports resolved
    name: str | None  # ``from module import name``
    line: int


@dataclasses.dataclass(frozen=True)
class Violation:
    importer: str
    line: int
    imported: str  # module, or module.name for a private name
    rule: str

    def __str__(self):
        return f"{self.importer}:{self.line} {self.rule} {self.imported}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def read_imports(root: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of the package ``root`` (its top name) by its modules, wherever it stands."""
    top = root.name
    found = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(name, a.name, None, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([module] if module else []))
                found += [Import(name, module, a.name, node.lineno) for a in node.names]
    return [i for i in found if i.module == top or i.module.startswith(top + ".")]


def lazy_exports(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """package -> {name: submodule} for the packages that import their names on first use."""
    out = {}
    for name, path in modules.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                out[name] = {k: f"{name}.{v.lstrip('.')}"
                             for k, v in ast.literal_eval(node.value).items()}
    return out


def imported_modules(imp: Import, modules, exports) -> set[str]:
    """The modules of the package an import runs (its edges in the module graph)."""
    if imp.name is not None:
        if f"{imp.module}.{imp.name}" in modules:
            return {f"{imp.module}.{imp.name}"}
        lazy = exports.get(imp.module, {}).get(imp.name)
        if lazy in modules:
            return {imp.module, lazy}
    return {imp.module} & modules.keys()


def module_graph(modules, imports, exports) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for imp in imports:
        graph.add_edges_from((imp.importer, m) for m in imported_modules(imp, modules, exports)
                             if m != imp.importer)
    return graph


def import_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted."""
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def front_end_imports(modules, imports, exports) -> list[Violation]:
    """Imports of a front end (``FRONT_ENDS``: commands, napari, dashboards) from outside it."""
    bad = []
    for imp in imports:
        for target in sorted(imported_modules(imp, modules, exports) | {imp.module}):
            for front in FRONT_ENDS:
                if inside(target, front) and not inside(imp.importer, front):
                    bad.append(Violation(imp.importer, imp.line, target,
                                         f"imports the front end {front}:"))
    return sorted(set(bad), key=str)


def base_imports(modules, imports, exports) -> list[Violation]:
    """Imports by a base package (``BASE``) of anything but itself and the root's utilities."""
    bad = []
    for imp in imports:
        base = next((b for b in BASE if inside(imp.importer, b)), None)
        if base is None:
            continue
        for target in sorted(imported_modules(imp, modules, exports) | {imp.module}):
            utility = (target.count(".") == 1 and _private(target.rpartition(".")[2])
                       or target in ROOT_CONSTANTS)
            if not (inside(target, base) or utility):
                bad.append(Violation(imp.importer, imp.line, target,
                                     f"(in the base package {base}) imports"))
    return sorted(set(bad), key=str)


def unresolved_imports(modules, imports, exports) -> list[Violation]:
    """Imports of a module that does not exist, or of a name a package importing its names on
    first use does not export (found only when the import runs: inside a function, maybe never
    in the tests)."""
    bad = []
    for imp in imports:
        if imp.module not in modules:
            bad.append(Violation(imp.importer, imp.line, imp.module, "imports the missing module"))
        elif (imp.name is not None and imp.module in exports
              and imp.name not in exports[imp.module]
              and f"{imp.module}.{imp.name}" not in modules):
            bad.append(Violation(imp.importer, imp.line, f"{imp.module}.{imp.name}",
                                 "imports the name its package does not export:"))
    return sorted(set(bad), key=str)


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def private_imports(modules, imports) -> list[Violation]:
    """Imports of a private module (``asymflux.X._y``) or a private name (``from asymflux.X.y
    import _z``) from outside the package that holds it (``asymflux.X``; ``asymflux._atomic``
    and the private names of top-level modules are the root package's: usable by all)."""
    bad = []
    for imp in imports:
        here = imp.importer if modules[imp.importer].name == "__init__.py" else \
            imp.importer.rpartition(".")[0]
        full = f"{imp.module}.{imp.name}" if f"{imp.module}.{imp.name}" in modules else imp.module
        parts = full.split(".")
        first = next((i for i, p in enumerate(parts) if _private(p)), None)
        if first is not None:
            if not inside(here, ".".join(parts[:first])):
                bad.append(Violation(imp.importer, imp.line, full, "imports the private module"))
        elif imp.name is not None and _private(imp.name):
            holder = full if modules.get(full, Path()).name == "__init__.py" else \
                full.rpartition(".")[0]
            if not inside(here, holder):
                bad.append(Violation(imp.importer, imp.line, f"{full}.{imp.name}",
                                     "imports the private name"))
    return sorted(set(bad), key=str)


def check_imports(root: Path) -> dict[str, list]:
    """The package at ``root``: its import cycles, and each rule's violations."""
    modules = read_modules(root)
    imports = read_imports(root, modules)
    exports = lazy_exports(modules)
    return {"cycles": import_cycles(module_graph(modules, imports, exports)),
            "front": front_end_imports(modules, imports, exports),
            "base": base_imports(modules, imports, exports),
            "unresolved": unresolved_imports(modules, imports, exports),
            "private": private_imports(modules, imports)}


@pytest.fixture(scope="module")
def checked():
    return check_imports(ROOT)


def test_no_import_cycle(checked):
    cycles = checked["cycles"]
    assert not cycles, "import cycles (strongly connected modules): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_no_front_end_imported_from_outside(checked):
    assert not checked["front"], "\n".join(map(str, checked["front"]))


def test_the_base_packages_stand_alone(checked):
    assert not checked["base"], "\n".join(map(str, checked["base"]))


def test_every_import_resolves(checked):
    assert not checked["unresolved"], "\n".join(map(str, checked["unresolved"]))


def test_no_private_import_across_packages(checked):
    assert not checked["private"], "\n".join(map(str, checked["private"]))


FAKE_TREE = {
    "__init__.py": "",
    "_atomic.py": "def write(): pass\n",
    "tool.py": "_helper = 1\n",
    "core/__init__.py": '_EXPORTS = {"thing": "_impl"}\n',
    "core/_impl.py": "def thing():\n    from asymflux.other.b import b\n    return b\n",
    "core/public.py": "from ._impl import thing\n",
    "core/extra.py": "_hidden = 1\n",
    "other/__init__.py": "",
    "other/b.py": ("from asymflux.core import thing\n"  # lazy: an edge to core._impl (the cycle)
                   "from asymflux.core.extra import _hidden\n"  # private name
                   "from ..core import _impl\n"  # private module, relative
                   "from asymflux._atomic import write\n"  # the root's: allowed
                   "from asymflux.tool import _helper\n"  # a top-level module's: allowed
                   "b = 1\n"),
    "other/c.py": "def f():\n    from asymflux import cli\n",  # a front end, in a function
    "other/d.py": "import asymflux.napari._w\n",  # a front end's private module
    "cli/__init__.py": "from . import main\n",
    "cli/main.py": "from asymflux.core import thing\nfrom asymflux.other import b\n",
    "napari/__init__.py": "",
    "napari/_w.py": "from asymflux.napari import _w\n",
    "io/__init__.py": "from asymflux._atomic import write\nfrom .reader import read\n",
    "io/reader.py": "def read():\n    from asymflux.tool import _helper\n",  # not the root's
    "other/e.py": "def f():\n    from asymflux.core import nothing\n    import asymflux.gone\n",
}


def test_the_import_check_sees_each_kind_of_violation(tmp_path):
    root = tmp_path / "asymflux"
    for rel, text in FAKE_TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    found = check_imports(root)
    assert found["cycles"] == [["asymflux.core._impl", "asymflux.other.b"]]
    assert {(v.importer, v.imported) for v in found["front"]} == {
        ("asymflux.other.c", "asymflux.cli"), ("asymflux.other.d", "asymflux.napari._w")}
    assert {(v.importer, v.imported) for v in found["unresolved"]} == {
        ("asymflux.other.e", "asymflux.core.nothing"), ("asymflux.other.e", "asymflux.gone")}
    assert {(v.importer, v.imported) for v in found["base"]} == {
        ("asymflux.io.reader", "asymflux.tool")}
    assert {(v.importer, v.line, v.imported) for v in found["private"]} == {
        ("asymflux.other.b", 2, "asymflux.core.extra._hidden"),
        ("asymflux.other.b", 3, "asymflux.core._impl"),
        ("asymflux.other.d", 1, "asymflux.napari._w")}
