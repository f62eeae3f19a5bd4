"""Lambda layers built without Docker: third-party wheels for Linux arm64, and the ``collab`` package.

Why not CDK bundling: it needs Docker (absent on our machines and in CI) or a jsii local-bundling
callback per synth. pip can fetch wheels for another platform instead (``--platform`` with
``--only-binary=:all:``), which is all these dependencies need: each ships manylinux aarch64 wheels.

Both layers are zip files under ``.build/layers`` (git-ignored), named by a hash of what goes into
them, so a repeated synth reuses them and never reinstalls. A zip (rather than a folder) keeps CDK's
asset staging to one file copy per synth. Two processes (pytest-xdist workers, a test run beside
``make synth``) may build at once: an exclusive ``fcntl`` lock serialises them, and each zip is
written to a temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / ".build" / "layers"
COLLAB_SOURCE = ROOT / "layers" / "collab" / "collab"

# Pinned so that two machines building the same hash ship the same code. boto3 is left out on
# purpose: every Lambda Python runtime includes it, and it is ~80 MB unzipped.
REQUIREMENTS: tuple[str, ...] = (
    "aws-lambda-powertools==3.37.0",
    "aws-xray-sdk==2.15.0",  # for Powertools Tracer in the sweeper (see docs/performance.md)
    "pydantic==2.14.4",
    "pyjwt[crypto]==2.15.1",
    "psycopg[binary]==3.3.9",
    "redis==8.1.0",
)

# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), so wheels tagged up to
# manylinux_2_34 load there. manylinux2014 alone would hold psycopg-binary back at 3.2 (3.3 ships
# manylinux_2_28 wheels only).
PLATFORMS: tuple[str, ...] = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")

# Bump when the layout of the built zip changes, to invalidate every cached build.
_FORMAT = 1
# Fixed timestamp for zip entries: the same inputs give the same bytes, so CDK's asset hash (and
# therefore the S3 object and the layer version) only change when the content does.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class LayerBuildError(RuntimeError):
    """pip (or copying the package) failed; the message carries pip's own output."""


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv


def dependencies_key(python_version: str) -> str:
    """Cache key of the dependencies layer: requirements, Python version and platform tags."""
    blob = json.dumps(
        {"format": _FORMAT, "requirements": REQUIREMENTS, "python": python_version, "platforms": PLATFORMS},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def collab_key(source: Path = COLLAB_SOURCE) -> str:
    """Cache key of the collab layer: every shipped file's relative path and bytes."""
    digest = hashlib.sha256(f"format={_FORMAT}".encode())
    for path in _package_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def dependencies_layer(python_version: str, *, build_root: Path = BUILD_ROOT, runner: Runner = _run) -> Path:
    """Zip of ``python/`` with the pinned requirements for Lambda arm64; built once per key."""
    target = build_root / f"deps-py{python_version}-{dependencies_key(python_version)}.zip"

    def build(workdir: Path) -> None:
        site = workdir / "python"
        cmd = [
            sys.executable, "-m", "pip", "install",
            "--quiet", "--disable-pip-version-check", "--no-compile",
            "--implementation", "cp",
            "--python-version", python_version,
            "--only-binary=:all:",
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--target", str(site),
            *REQUIREMENTS,
        ]  # fmt: skip
        result = runner(cmd)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-20:])
            raise LayerBuildError(
                f"pip could not build the dependencies layer (exit {result.returncode}):\n{tail}"
            )
        # Console scripts are useless in a layer; they only add size.
        shutil.rmtree(site / "bin", ignore_errors=True)
        if not any(site.glob("pydantic_core")):
            raise LayerBuildError(f"pip reported success but {site} holds no pydantic_core")

    return _build_once(target, build)


def collab_layer(*, source: Path = COLLAB_SOURCE, build_root: Path = BUILD_ROOT) -> Path:
    """Zip of ``python/collab`` copied from ``layers/collab/collab`` (caches and bytecode left out)."""
    if not (source / "__init__.py").is_file():
        raise LayerBuildError(f"{source} is not the collab package")
    target = build_root / f"collab-{collab_key(source)}.zip"

    def build(workdir: Path) -> None:
        dest = workdir / "python" / "collab"
        for path in _package_files(source):
            out = dest / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)

    return _build_once(target, build)


def _package_files(source: Path) -> list[Path]:
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / ".lock"):
        if target.is_file():  # another process built it while we waited for the lock
            return target
        workdir = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=target.parent))
        try:
            build(workdir)
            partial = workdir / "layer.zip"
            _zip_tree(workdir / "python", partial)
            os.replace(partial, target)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return target


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (across processes: xdist workers, parallel synths)."""
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _zip_tree(folder: Path, out: Path) -> None:
    base = folder.parent
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        raise LayerBuildError(f"nothing to package in {folder}")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(base).as_posix(), date_time=_EPOCH)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
