"""The documentation says what the code does: README's configuration table and .env.example
name exactly the environment variables ASPRI reads, and the README points at files that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
_NAME = r"[A-Z][A-Z0-9_]*[A-Z0-9]"


def read_by_config() -> set[str]:
    """Every variable ``Settings.from_env`` reads (``_read(e, "NAME", ...)``)."""
    return set(re.findall(rf'_read\(\s*e,\s*"({_NAME})"', (ROOT / "aspri/config.py").read_text()))


def read_elsewhere() -> set[str]:
    """Variables other modules read straight from the environment."""
    found: set[str] = set()
    for path in (ROOT / "aspri").rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(rf'(?:environ\.get|getenv)\(\s*"({_NAME})"', text))
    return found


def readme_table() -> set[str]:
    """The variables in the first column of README's configuration table."""
    section = README.read_text().split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            assert "*" not in first, f"spell every variable out in README's table: {first}"
            names |= set(re.findall(rf"`({_NAME})`", first))
    return names


def env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(rf"^# ({_NAME})=", text, flags=re.MULTILINE))


def test_readme_configuration_table_matches_config_py() -> None:
    config, table = read_by_config(), readme_table()
    missing = sorted(config - table)
    assert not missing, (
        f"aspri/config.py reads {', '.join(missing)}, missing from README.md's configuration "
        "table: add a row (`NAME` | default | meaning)"
    )
    unknown = sorted(table - config - read_elsewhere())
    assert not unknown, (
        f"README.md's configuration table names {', '.join(unknown)}, which ASPRI never reads"
    )


def test_env_example_lists_every_variable() -> None:
    documented, example = readme_table(), env_example()
    missing = sorted(documented - example)
    assert not missing, f".env.example lacks {', '.join(missing)} (as '# NAME=default')"
    unknown = sorted(example - documented - {"ASPRI_IMAGE_TAG"})
    assert not unknown, f".env.example names {', '.join(unknown)}, not in README.md's table"


def test_readme_links_to_files_that_exist() -> None:
    text = README.read_text()
    assert "DESIGN.md" not in text, "DESIGN.md is not in the repository: link docs/architecture.md"
    for target in re.findall(r"\]\((?!https?:|#)([^)#\s]+)", text):
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
