"""What ships: every package of the source tree is listed for the wheel, and the checkout's
alembic.ini runs the migrations ``dispatcher db`` runs."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

from dispatcher.db import alembic_config

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_the_tree_ships_in_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "dispatcher").rglob("__init__.py")
    }
    templates = {
        f"dispatcher.templates.{folder.name}"
        for folder in (ROOT / "templates").iterdir()
        if folder.is_dir() and folder.name != "__pycache__"
    }
    assert set(setuptools["packages"]) == on_disk | {"dispatcher.templates"} | templates
    assert setuptools["package-dir"] == {"dispatcher.templates": "templates"}


def test_alembic_ini_names_the_migrations_dispatcher_db_runs() -> None:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "alembic.ini")
    ours = alembic_config("sqlite://").get_main_option("script_location")
    assert ini["alembic"]["script_location"] == ours
    assert "sqlalchemy.url" not in ini["alembic"]  # the URL is DISPATCHER_DATABASE_URL's
