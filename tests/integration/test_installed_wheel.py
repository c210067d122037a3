"""The wheel, installed into a fresh venv outside the checkout, delivers a test e-mail and a
Slack message: its templates and migrations come from the installed package, not from a
checkout. The venv borrows the test venv's dependencies through a .pth file (no download), and
the test checks that the ``dispatcher`` it imports is the wheel's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.conftest import Receiver, wait_until
from tests.integration.test_embedded import run, serving
from tests.smtpserver import Mailbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What a build needs, as the Dockerfile copies it: nothing else of the checkout comes along.
SOURCES = ("pyproject.toml", "README.md", "dispatcher", "templates")
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet")
WHERE = "import dispatcher.config as c; print(c.__file__, c.packaged_templates_dir())"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    (work / "source").mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, work / "source" / name, ignore=ignore)
        else:
            shutil.copy2(source, work / "source" / name)
    built = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), "./source"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (path,) = (work / "dist").glob("dispatcher-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its bin directory."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    installed = subprocess.run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    # Only after the install, so pip never sees (nor touches) the test venv's packages.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "bin"


def installed_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DISPATCHER_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update({f"DISPATCHER_{key.upper()}": value for key, value in settings.items()})
    return env


def test_the_wheel_holds_every_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        "dispatcher/templates/" + path.relative_to(ROOT / "templates").as_posix()
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert templates <= names
    assert "dispatcher/migrations/script.py.mako" in names
    assert {
        "dispatcher/console/static/console.css",
        "dispatcher/console/static/console.js",
    } <= names
    assert any(name.startswith("dispatcher/migrations/versions/0001") for name in names)


def test_installed_wheel_delivers_email_and_slack(
    venv: Path,
    tmp_path: Path,
    receiver: Receiver,
    smtp_server: tuple[int, Mailbox],
) -> None:
    smtp_port, mailbox = smtp_server
    env = installed_env(
        tmp_path,
        allowed_networks="127.0.0.0/8",
        port=str(free_port()),
        smtp_host="127.0.0.1",
        smtp_port=str(smtp_port),
        log_level="WARNING",
    )
    command = str(venv / "dispatcher")
    where = subprocess.run(
        [str(venv / "python"), "-c", WHERE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    module, templates = where.stdout.split()
    assert Path(module).is_relative_to(venv.parent), "imported the checkout, not the wheel"
    assert Path(templates) == Path(module).parent / "templates"

    token = run(
        env,
        "tokens",
        "create",
        "--scope",
        "repo:admin",
        "--repo",
        "acme/*",
        command=command,
        cwd=tmp_path,
    ).strip()
    run(env, "repos", "add", "acme/web", command=command, cwd=tmp_path)
    # e-mail goes only to confirmed addresses: confirm this one with the installed command
    run(env, "emails", "authorize", "acme/web", "ops@example.com", command=command, cwd=tmp_path)
    base = f"http://127.0.0.1:{env['DISPATCHER_PORT']}"
    with (
        serving(env, tmp_path / "serve.log", command=command),
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api,
    ):
        assert api.get("/readyz").json() == {"status": "ok"}
        console = api.get("/console/", headers={"Authorization": ""})
        assert console.status_code == 401 and 'name="token"' in console.text
        assert api.get("/console/static/console.css").status_code == 200
        for method, config in (
            ("email", {"email": "ops@example.com"}),
            ("slack", {"url": receiver.url("/slack")}),
        ):
            created = api.post(
                "/api/v1/repository/acme/web/notification/",
                json={"event": "repo_push", "method": method, "config": config, "eventConfig": {}},
            )
            assert created.status_code == 201, created.text
            uuid = created.json()["uuid"]
            tested = api.post(f"/api/v1/repository/acme/web/notification/{uuid}/test")
            assert tested.status_code == 201, tested.text

        (slack,) = receiver.wait_for(1)
        assert "acme/web" in slack.json()["text"]
        wait_until(lambda: len(mailbox.messages) == 1)
        (mail,) = mailbox.messages
        assert "acme/web" in mail["Subject"]
        assert (tmp_path / "dispatcher.db").exists()  # the default database, in the cwd
