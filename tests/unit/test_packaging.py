"""The package layout: every subpackage is shipped (the public names: test_public_api.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = config["package-dir"]
    listed = set(config["packages"])
    found = set()
    for package, directory in mapping.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            parts = [p for p in relative.parts if p != "."]
            name = ".".join([package, *parts])
            # Subpackages of a mapped package that are themselves mapped are found twice.
            found.add(name)
    missing = {n for n in found if not any(n == m for m in listed)}
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
