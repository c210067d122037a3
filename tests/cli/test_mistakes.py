"""Every mistake an operator can make on the command line is one line on stderr and exit
status 2, through the installed command; and the URL spellings of PostgreSQL that people copy
work with the driver dispatcher installs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, Result

# (command, settings, words the one line must hold)
MISTAKES: list[tuple[tuple[str, ...], dict[str, str], tuple[str, ...]]] = [
    (("repos", "list"), {"LOG_LEVEL": "LOUD"}, ("DISPATCHER_LOG_LEVEL", "'LOUD'", "INFO")),
    (("repos", "list"), {"DATABASE_URL": "mysql://me:s3cret@db/x"}, ("'mysql' is not supported",)),
    (("repos", "list"), {"DATABASE_URL": "oracle+cx://db/x"}, ("'oracle' is not supported",)),
    (("db", "upgrade", "0099"), {}, ("revision", "'0099'")),
    (("db", "downgrade", "-5"), {}, ("-5",)),
    (("serve",), {"PORT": "70000"}, ("DISPATCHER_PORT", "65535")),
    (("worker",), {"LEASE_SECONDS": "10"}, ("DISPATCHER_LEASE_SECONDS", "HTTP_TIMEOUT + 1")),
    (("deliveries", "recover", "u", "--since", "soon"), {}, ("--since: 'soon'", "ISO-8601")),
    (("deliveries", "recover", "u", "--since", "2h", "--until", "0"), {}, ("--until: '0'",)),
    (("deliveries", "recover", "u", "--since", "30d"), {}, ("retention window, 14d",)),
    (("deliveries", "recover", "u", "--since", "1h", "--until", "2h"), {}, ("must be before",)),
]
BAD_PORTS = ("70000", "0", "-1", "http")


def test_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cli = CLI(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)

    def attempt(args: tuple[str, ...], settings: dict[str, str]) -> Result:
        env = {f"DISPATCHER_{name}": value for name, value in settings.items()}
        return cli(*args, env=env, check=False)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda case: attempt(case[0], case[1]), MISTAKES))
    for (args, _, words), result in zip(MISTAKES, results, strict=True):
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.splitlines()
        assert line.startswith("dispatcher: ")
        assert all(word in line for word in words), (args, line)
        assert "s3cret" not in line


def test_serve_refuses_a_port_it_cannot_listen_on(tmp_path: Path) -> None:
    cli = CLI(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    for port, result in zip(
        BAD_PORTS, cli.at_once(*[["serve", "--port", port] for port in BAD_PORTS]), strict=True
    ):
        assert result.returncode == 2, (port, result.stderr)
        assert result.stderr.splitlines()[-1].startswith("dispatcher serve: error: argument --port")
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_without_a_driver_use_psycopg(
    scheme: str, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    url = postgres_database().replace("postgresql+psycopg://", f"{scheme}://")
    cli = CLI(url, tmp_path)
    assert "head" in cli("db", "upgrade").stdout
    cli("repos", "add", "acme/web")
    assert "acme/web" in cli("repos", "list").stdout
    assert cli("db", "current").stdout.strip().endswith("(head)")
