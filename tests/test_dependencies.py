"""Every third-party package that aspri/ imports is declared in pyproject.toml, so an install
from the lock never works only by accident of another package's dependencies."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> dict[str, str]:
    """Top-level modules imported anywhere in aspri/, with one file that imports each."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "aspri").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_norm(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in specs}


def test_every_imported_package_is_declared() -> None:
    owners = packages_distributions()
    wanted = declared()
    missing = []
    for module, where in imported_modules().items():
        if module in sys.stdlib_module_names or module == "aspri":
            continue
        dists = {_norm(d) for d in owners.get(module, [])}
        assert dists, f"{where} imports {module}, which no installed package provides"
        if not dists & wanted:
            missing.append(f"{module} ({'/'.join(sorted(dists))}, imported in {where})")
    assert not missing, "declare in pyproject.toml (then make lock): " + "; ".join(missing)
