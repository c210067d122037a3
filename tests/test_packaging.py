"""What ships: every package of the source tree is listed for the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_the_tree_ships_in_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "dispatcher").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == on_disk | {"dispatcher.templates"}
    assert setuptools["package-dir"] == {"dispatcher.templates": "templates"}
