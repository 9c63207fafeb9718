"""The tests mirror the package and are imported one way: every test folder is a package, shared
helpers live in ``tests/_helpers``, and no test changes ``sys.path`` or imports another test file."""

from __future__ import annotations

import ast
from pathlib import Path

import asymflux

TESTS = Path(__file__).resolve().parent
PACKAGE = Path(asymflux.__file__).parent
HELPERS = "_helpers"  # the one test folder that names no package of asymflux


def _folders() -> list[Path]:
    return sorted({p.parent for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts})


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_test_folder_is_a_package_named_for_a_package_of_asymflux():
    missing = [str(d.relative_to(TESTS)) for d in _folders() if not (d / "__init__.py").is_file()]
    assert not missing, f"test folders without __init__.py: {missing}"
    for d in _folders():
        rel = d.relative_to(TESTS)
        if rel.parts and rel.parts[0] != HELPERS:
            assert (PACKAGE.joinpath(*rel.parts) / "__init__.py").is_file(), (
                f"tests/{rel} names no package of asymflux (put a cross-cutting test at the top level)")


def test_no_test_changes_sys_path_or_imports_another_test_file():
    """Code strings run in a child process (``tests/test_transactions.py``) are not code here."""
    problems = []
    for path in _test_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(
                    node.value, "id", None) == "sys":
                problems.append(f"{path.relative_to(TESTS)}:{node.lineno}: sys.path")
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in filter(None, names):
                top, last = name.split(".")[0], name.split(".")[-1]
                if name != "__future__" and (top.startswith(("_", "test_"))
                                             or (top == "tests" and last.startswith("test_"))):
                    problems.append(f"{path.relative_to(TESTS)}:{node.lineno}: import {name}")
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                problems.append(f"{path.relative_to(TESTS)}:{node.lineno}: relative import "
                                f"(use tests._helpers)")
    assert not problems, problems
