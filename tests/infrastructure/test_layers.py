"""The Docker-free layer builds: cached by content, serialised across processes, loud on failure."""

from __future__ import annotations

import subprocess
import sys
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
    zip_path = layers.dependencies_layer("3.13", build_root=tmp_path, runner=fake_pip(calls), compiler=None)
    [cmd] = calls
    assert cmd[cmd.index("--python-version") + 1] == "3.13"
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in cmd
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert "manylinux2014_aarch64" in platforms and all(p.endswith("_aarch64") for p in platforms)
    assert not [r for r in layers.REQUIREMENTS if r.startswith("boto3")], "boto3 comes with the runtime"
    names = zipfile.ZipFile(zip_path).namelist()
    assert names == ["python/pydantic_core/__init__.py"], "console scripts are dropped"


def test_a_second_build_reuses_the_cache(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    first = layers.dependencies_layer("3.13", build_root=tmp_path, runner=fake_pip(calls), compiler=None)
    second = layers.dependencies_layer("3.13", build_root=tmp_path, runner=fake_pip(calls), compiler=None)
    assert first == second and len(calls) == 1
    other = layers.dependencies_layer("3.12", build_root=tmp_path, runner=fake_pip(calls), compiler=None)
    assert other != first and len(calls) == 2, "the key covers the Python version"


def test_concurrent_builders_install_once(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    runner = fake_pip(calls, delay=0.3)
    results: list[Path] = []

    def build() -> None:
        results.append(layers.dependencies_layer("3.13", build_root=tmp_path, runner=runner, compiler=None))

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
        layers.dependencies_layer("3.13", build_root=tmp_path, runner=runner, compiler=None)
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
    built = layers.collab_layer(compiler=None)
    names = set(zipfile.ZipFile(built).namelist())
    assert {
        "python/collab/__init__.py",
        "python/collab/config.py",
        "python/collab/adapters/postgres/migrate.py",
    } <= names
    assert any(
        n.startswith("python/collab/adapters/postgres/migrations/") and n.endswith(".sql") for n in names
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")], "never the checkout's bytecode"


HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"
TAG = sys.implementation.cache_tag  # "cpython-311"


def test_layers_ship_unchecked_bytecode_for_the_runtime(tmp_path: Path) -> None:
    """Lambda cannot write next to /opt: without shipped bytecode every cold start compiles every
    import. The pycs must load whatever the files' timestamps say (unchecked hash)."""
    source = tmp_path / "src" / "collab"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "boom.py").write_text("def boom():\n    raise RuntimeError('x')\n")
    built = layers.collab_layer(source=source, build_root=tmp_path / "out", python_version=HERE)
    names = set(zipfile.ZipFile(built).namelist())
    assert f"python/collab/__pycache__/boom.{TAG}.pyc" in names
    opt = tmp_path / "opt"
    zipfile.ZipFile(built).extractall(opt)
    pyc = (opt / "python" / "collab" / "__pycache__" / f"boom.{TAG}.pyc").read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b01, "hash-based, source never checked"
    # the source changes after the build (as extracting it in Lambda may): the shipped bytecode still loads
    (opt / "python" / "collab" / "boom.py").write_text("def boom():\n    return 'recompiled'\n")
    probe = "import sys; sys.dont_write_bytecode = True; import collab.boom as b\nprint(repr(b.boom()))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(opt / "python"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "RuntimeError: x" in out.stderr, "the shipped bytecode ran, not the edited source"


def test_the_bytecode_compiler_is_part_of_the_cache_key(tmp_path: Path) -> None:
    source = tmp_path / "src" / "collab"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("X = 1\n")
    plain = layers.collab_layer(source=source, build_root=tmp_path / "out", compiler=None)
    compiled = layers.collab_layer(source=source, build_root=tmp_path / "out", python_version=HERE)
    assert plain != compiled
    assert not [n for n in zipfile.ZipFile(plain).namelist() if n.endswith(".pyc")]


def test_without_an_interpreter_of_the_runtime_version_a_required_build_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src" / "collab"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    monkeypatch.setattr(layers, "bytecode_python", lambda version: None)
    built = layers.collab_layer(source=source, build_root=tmp_path / "a", python_version="3.99")
    assert not [n for n in zipfile.ZipFile(built).namelist() if n.endswith(".pyc")], "warned, built without"
    monkeypatch.setenv(layers.REQUIRE_ENV, "1")
    with pytest.raises(layers.LayerBuildError, match=r"no Python 3\.99 interpreter"):
        layers.collab_layer(source=source, build_root=tmp_path / "b", python_version="3.99")


def test_a_given_interpreter_of_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(layers.PYTHON_ENV, sys.executable)
    layers.bytecode_python.cache_clear()
    try:
        with pytest.raises(layers.LayerBuildError, match=r"is not a Python 3\.99 interpreter"):
            layers.bytecode_python("3.99")
    finally:
        layers.bytecode_python.cache_clear()
