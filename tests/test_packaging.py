"""Every package folder is installed (pyproject lists packages explicitly)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def test_all_package_folders_are_listed():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {v: k for k, v in cfg["package-dir"].items()}
    listed = set(cfg["packages"])
    found = set()
    for top in ("beamc", "compress", "export", "runtime"):
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO).as_posix()
            head, _, rest = rel.partition("/")
            name = mapping.get(head, head)
            found.add(name + ("." + rest.replace("/", ".") if rest else ""))
    assert found - listed == set(), f"add these packages to pyproject.toml: {sorted(found - listed)}"
