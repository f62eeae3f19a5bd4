"""The Docker-free layer builds: cached by content, serialised across processes, loud on failure."""

from __future__ import annotations

import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest

from infra import layers

pytestmark = [pytest.mark.infra]


def fake_pip(calls: list[list[str]], *, delay: float = 0.0, returncode: int = 0, stderr: str = ""):
    """Stands in for pip: records the command and writes a plausible site-packages."""

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        time.sleep(delay)
        if returncode == 0:
            site = Path(cmd[cmd.index("--target") + 1])
            (site / "pydantic_core").mkdir(parents=True)
            (site / "pydantic_core" / "__init__.py").write_text("")
            (site / "bin").mkdir()
            (site / "bin" / "tool").write_text("#!/bin/sh\n")
        return subprocess.CompletedProcess(cmd, returncode, stdout="", stderr=stderr)

    return run


def test_pip_targets_lambda_arm64_without_docker(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    zip_path = layers.dependencies_layer("3.14", build_root=tmp_path, runner=fake_pip(calls))
    [cmd] = calls
    assert cmd[cmd.index("--python-version") + 1] == "3.14"
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in cmd
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert "manylinux2014_aarch64" in platforms and all(p.endswith("_aarch64") for p in platforms)
    assert not [r for r in layers.REQUIREMENTS if r.startswith("boto3")], "boto3 comes with the runtime"
    names = zipfile.ZipFile(zip_path).namelist()
    assert names == ["python/pydantic_core/__init__.py"], "console scripts are dropped"


def test_a_second_build_reuses_the_cache(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    first = layers.dependencies_layer("3.14", build_root=tmp_path, runner=fake_pip(calls))
    second = layers.dependencies_layer("3.14", build_root=tmp_path, runner=fake_pip(calls))
    assert first == second and len(calls) == 1
    other = layers.dependencies_layer("3.13", build_root=tmp_path, runner=fake_pip(calls))
    assert other != first and len(calls) == 2, "the key covers the Python version"


def test_concurrent_builders_install_once(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    runner = fake_pip(calls, delay=0.3)
    results: list[Path] = []

    def build() -> None:
        results.append(layers.dependencies_layer("3.14", build_root=tmp_path, runner=runner))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and results[0].is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in (results[0].name, ".lock")]
    assert leftovers == [], "temporary build folders are removed"


def test_pip_failure_fails_the_synth_loudly(tmp_path: Path) -> None:
    runner = fake_pip([], returncode=1, stderr="ERROR: No matching distribution found for pydantic==0")
    with pytest.raises(layers.LayerBuildError, match="No matching distribution"):
        layers.dependencies_layer("3.14", build_root=tmp_path, runner=runner)
    assert not list(tmp_path.glob("*.zip")), "nothing half-built is left to be reused"


def test_collab_layer_copies_the_package_and_is_reproducible(tmp_path: Path) -> None:
    source = tmp_path / "src" / "collab"
    (source / "migrations").mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "migrations" / "0001.sql").write_text("select 1;")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    one = layers.collab_layer(source=source, build_root=tmp_path / "a")
    two = layers.collab_layer(source=source, build_root=tmp_path / "b")
    assert one.read_bytes() == two.read_bytes(), "same input, same bytes, same asset hash"
    assert zipfile.ZipFile(one).namelist() == [
        "python/collab/__init__.py",
        "python/collab/migrations/0001.sql",
    ]
    (source / "__init__.py").write_text("VERSION = 2\n")
    assert layers.collab_layer(source=source, build_root=tmp_path / "a") != one, "an edit makes a new layer"


def test_the_real_collab_package_is_what_ships() -> None:
    built = layers.collab_layer()
    names = set(zipfile.ZipFile(built).namelist())
    assert {"python/collab/__init__.py", "python/collab/config.py", "python/collab/migrate.py"} <= names
    assert any(n.startswith("python/collab/migrations/") and n.endswith(".sql") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
