"""docs/architecture.md lists every module of the package (a new module must be placed there)."""

from __future__ import annotations

import re
from pathlib import Path

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
