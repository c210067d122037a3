"""docker-compose.yml and the Dockerfile, checked without Docker: every command is a real
``dispatcher`` command, every DISPATCHER_* variable a real setting, every copied path real."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.cli import build_parser
from dispatcher.config import Settings

ROOT = Path(__file__).resolve().parents[1]
OUR_SERVICES = ("api", "worker", "scheduler")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def dispatcher_commands(command: list[str] | str) -> list[list[str]]:
    """The ``dispatcher …`` invocations a service command runs (``sh -c "a && exec b"`` too)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        steps = [shlex.split(step) for step in argv[2].split("&&")]
        return [step[1:] if step[:1] == ["exec"] else step for step in steps]
    return [argv]


def parse(argv: list[str]) -> Any:
    assert argv[0] == "dispatcher", argv
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"not a dispatcher command: {shlex.join(argv)}")


def test_the_distributed_shape_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "mailpit", *OUR_SERVICES} <= set(services)
    redis = services["redis"]
    assert "--appendonly yes" in shlex.join(redis["command"])
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "8025:8025" in services["mailpit"]["ports"]


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_service_commands_are_real_dispatcher_commands(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["build"] == "."
    commands = [parse(argv) for argv in dispatcher_commands(service["command"])]
    assert all(callable(args.handler) for args in commands)
    assert [args.command for args in commands] == {
        "api": ["db", "serve"],
        "worker": ["worker"],
        "scheduler": ["scheduler"],
    }[name]
    if name == "api":
        assert commands[1].host == "0.0.0.0"


@pytest.mark.parametrize("name", OUR_SERVICES)
def test_environment_names_real_settings(compose: dict[str, Any], name: str) -> None:
    env = environment(compose["services"][name])
    ours = {key: value for key, value in env.items() if key.startswith("DISPATCHER_")}
    fields = {key.removeprefix("DISPATCHER_").lower(): value for key, value in ours.items()}
    unknown = set(fields) - set(Settings.model_fields)
    assert not unknown, f"not settings: {sorted(unknown)}"
    Settings(**fields)  # type: ignore[arg-type]  # the values validate too
    assert ours["DISPATCHER_BROKER_URL"].startswith("redis://redis:")
    assert ours["DISPATCHER_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert ours["DISPATCHER_SMTP_HOST"] == "mailpit"
    assert ours["DISPATCHER_SMTP_PORT"] == "1025"


def test_workers_scale(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker  # a fixed host port would clash at --scale worker=2
    env = environment(worker)
    assert env["DISPATCHER_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert env["DISPATCHER_WORKER_METRICS_PORT"] in worker["expose"]


def test_dockerfile_builds_from_real_paths(dockerfile: list[tuple[str, str]]) -> None:
    assert dockerfile[0] == ("FROM", "python:3.11-slim")
    assert any(
        kind == "RUN" and re.search(r"pip install .* \.(\s|$)", args) for kind, args in dockerfile
    )
    copied = [args.split() for kind, args in dockerfile if kind == "COPY"]
    sources = [source for parts in copied for source in parts[:-1]]
    assert "templates/" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["dispatcher"] == "dispatcher.cli:main"
    (cmd,) = [args for kind, args in dockerfile if kind == "CMD"]
    parse(yaml.safe_load(cmd))
    assert ("WORKDIR", "/app") in dockerfile


def test_image_installs_with_the_pinned_versions(dockerfile: list[tuple[str, str]]) -> None:
    kinds = [kind for kind, _ in dockerfile]
    (install,) = [args for kind, args in dockerfile if kind == "RUN" and "pip install" in args]
    assert "-c constraints.txt" in install
    copies = [args for kind, args in dockerfile if kind == "COPY"]
    # the templates install with the package: copied before pip runs, not pointed at after
    assert any(copy.startswith("templates/") for copy in copies)
    last_copy = max(index for index, kind in enumerate(kinds) if kind == "COPY")
    assert last_copy < [args for _, args in dockerfile].index(install)
    env = " ".join(args for kind, args in dockerfile if kind == "ENV")
    assert "DISPATCHER_TEMPLATES_DIR" not in env


def test_image_runs_the_default_as_a_user_who_can_write_its_database(
    dockerfile: list[tuple[str, str]],
) -> None:
    env = dict(
        pair.split("=", 1)
        for kind, args in dockerfile
        if kind == "ENV"
        for pair in shlex.split(args)
    )
    url = env["DISPATCHER_DATABASE_URL"]
    Settings(database_url=url)  # a URL dispatcher accepts
    assert url.startswith("sqlite:////")
    data = str(Path(url.removeprefix("sqlite:///")).parent)
    (volume,) = [yaml.safe_load(args) for kind, args in dockerfile if kind == "VOLUME"]
    assert volume == [data]
    (user,) = [args for kind, args in dockerfile if kind == "USER"]
    assert user not in ("root", "0")
    (install,) = [args for kind, args in dockerfile if kind == "RUN" and "useradd" in args]
    assert f"mkdir {data}" in install
    assert re.search(rf"chown {user}(:{user})? {data}\b", install), install
    assert install.index("useradd") < install.index("chown")


def test_image_checks_its_health_on_readyz(
    dockerfile: list[tuple[str, str]], compose: dict[str, Any]
) -> None:
    (check,) = [args for kind, args in dockerfile if kind == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = yaml.safe_load(command)
    assert argv[:2] == ["python", "-c"]
    assert "/readyz" in argv[2] and "DISPATCHER_PORT" in argv[2]
    compile(argv[2], "HEALTHCHECK", "exec")
    # the worker and the scheduler serve no HTTP: the image's check would mark them unhealthy
    for name in ("worker", "scheduler"):
        assert compose["services"][name]["healthcheck"] == {"disable": True}
    assert "/readyz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])
