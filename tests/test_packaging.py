"""Packaging: environment.yml agrees with pyproject.toml; the code is lint-clean."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_environment", ROOT / "tools" / "make_environment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_environment_yml_is_generated_from_pyproject():
    expected = _load_tool().render()
    actual = (ROOT / "environment.yml").read_text()
    assert actual == expected, "environment.yml is stale: run `make environment`"


def test_every_requirement_appears_in_environment_yml():
    tool = _load_tool()
    text = (ROOT / "environment.yml").read_text()
    for req in tool.requirements():
        name, _ = tool._split(req)
        conda = tool.CONDA_NAMES.get(name, name.split("[")[0])
        assert (conda or name) in text, f"{name} missing from environment.yml"


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff not installed")
    proc = subprocess.run([ruff, "check", "--quiet", str(ROOT / "src"), str(ROOT / "tests"),
                           str(ROOT / "tools")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
