"""Lambda layers built without Docker: third-party wheels for Linux arm64, and the ``collab`` package.

Why not CDK bundling: it needs Docker (absent on our machines and in CI) or a jsii local-bundling
callback per synth. pip can fetch wheels for another platform instead (``--platform`` with
``--only-binary=:all:``), which is all these dependencies need: each ships manylinux aarch64 wheels.

Both layers ship bytecode compiled for the runtime's Python (``__pycache__/*.cpython-3XX.pyc``,
hash-based and unchecked): ``/opt`` is read-only in Lambda, so without it
every cold start compiles every module it imports from source, which costs more than the imports
themselves (measured in docs/performance.md). Bytecode is version-specific, so it is compiled by an
interpreter of the runtime's X.Y (:func:`bytecode_python`); a machine without one builds layers
without bytecode and says so, and ``COLLAB_REQUIRE_BYTECODE=1`` (set by deploy pipelines) makes that
an error.

Both layers are zip files under ``.build/layers`` (git-ignored), named by a hash of what goes into
them, so a repeated synth reuses them and never reinstalls. A zip (rather than a folder) keeps CDK's
asset staging to one file copy per synth. Two processes (pytest-xdist workers, a test run beside
``make synth``) may build at once: an exclusive ``fcntl`` lock serialises them, and each zip is
written to a temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import functools
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
from typing import Final

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
    "diff-match-patch==20241021",  # the description merge (collab/domain/textmerge.py)
)

# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), so wheels tagged up to
# manylinux_2_34 load there. manylinux2014 alone would hold psycopg-binary back at 3.2 (3.3 ships
# manylinux_2_28 wheels only).
PLATFORMS: tuple[str, ...] = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")

# Bump when the layout of the built zip changes, to invalidate every cached build.
_FORMAT = 2
PYTHON_ENV = "COLLAB_LAMBDA_PYTHON"  # an interpreter of the runtime's version, to compile bytecode
REQUIRE_ENV = "COLLAB_REQUIRE_BYTECODE"  # "1": building a layer without bytecode is an error


class _Auto:
    """Find the compiler with :func:`bytecode_python` (the default)."""


AUTO: Final = _Auto()
# Fixed timestamp for zip entries: the same inputs give the same bytes, so CDK's asset hash (and
# therefore the S3 object and the layer version) only change when the content does.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class LayerBuildError(RuntimeError):
    """pip (or copying the package) failed; the message carries pip's own output."""


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv


@functools.cache
def _version_of(python: str) -> str | None:
    """An interpreter's X.Y, asked once per path (every layer's cache key needs its compiler's)."""
    try:
        out = subprocess.run(  # noqa: S603 - an interpreter path we found or were given
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def bytecode_python(version: str) -> str | None:
    """An interpreter of Python ``version`` ("3.13") to compile the layers' bytecode with:
    ``$COLLAB_LAMBDA_PYTHON``, this interpreter, ``python3.13`` on PATH, or pyenv's; None if none."""
    given = os.environ.get(PYTHON_ENV)
    if given:
        if _version_of(given) != version:
            raise LayerBuildError(f"{PYTHON_ENV}={given} is not a Python {version} interpreter")
        return given
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)]
    for candidate in candidates:
        if candidate and _version_of(candidate) == version:
            return candidate
    return None


def _compiler(version: str | None, compiler: str | _Auto | None) -> str | None:
    if not isinstance(compiler, _Auto):
        return compiler
    found = bytecode_python(version) if version else None
    if found is None and version:
        message = (
            f"no Python {version} interpreter to compile the layers' bytecode with: every cold start"
            f" will compile the modules it imports (set {PYTHON_ENV}, or install python{version})"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            raise LayerBuildError(message)
        _warn_once(message)
    return found


@functools.cache
def _warn_once(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _bytecode_tag(compiler: str | None) -> str | None:
    """What the cache key records of the bytecode: the compiler's X.Y, or None without one."""
    return _version_of(compiler) if compiler else None


def _compile(tree: Path, compiler: str, runner: Runner) -> None:
    """Bytecode for every module under ``tree`` (a layer's ``python/``), as Lambda will use it:
    unchecked hash-based pycs, because the layer is immutable and the zip's timestamps are fixed (a
    timestamp-checked pyc would not match its extracted source and be ignored)."""
    result = runner(
        [
            compiler, "-m", "compileall", "-q", "-j", "0",
            "--invalidation-mode", "unchecked-hash",
            str(tree),
        ]
    )  # fmt: skip
    if result.returncode != 0:
        tail = "\n".join((result.stdout or result.stderr or "").strip().splitlines()[-20:])
        raise LayerBuildError(f"compileall failed (exit {result.returncode}):\n{tail}")


def dependencies_key(python_version: str, bytecode: str | None = None) -> str:
    """Cache key of the dependencies layer: requirements, Python version, platform tags, bytecode."""
    blob = json.dumps(
        {
            "format": _FORMAT,
            "requirements": REQUIREMENTS,
            "python": python_version,
            "platforms": PLATFORMS,
            "bytecode": bytecode,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def collab_key(source: Path = COLLAB_SOURCE, bytecode: str | None = None) -> str:
    """Cache key of the collab layer: every shipped file's relative path and bytes, and bytecode."""
    digest = hashlib.sha256(f"format={_FORMAT};bytecode={bytecode}".encode())
    for path in _package_files(source):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def dependencies_layer(
    python_version: str,
    *,
    build_root: Path = BUILD_ROOT,
    runner: Runner = _run,
    compiler: str | _Auto | None = AUTO,
) -> Path:
    """Zip of ``python/`` with the pinned requirements for Lambda arm64, compiled to bytecode for
    ``python_version`` when an interpreter of it is found; built once per key."""
    python = _compiler(python_version, compiler)
    key = dependencies_key(python_version, _bytecode_tag(python))
    target = build_root / f"deps-py{python_version}-{key}.zip"

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
        if python is not None:
            _compile(site, python, runner)

    return _build_once(target, build)


def collab_layer(
    *,
    source: Path = COLLAB_SOURCE,
    build_root: Path = BUILD_ROOT,
    python_version: str | None = None,
    runner: Runner = _run,
    compiler: str | _Auto | None = AUTO,
) -> Path:
    """Zip of ``python/collab`` copied from ``layers/collab/collab`` (the checkout's caches and
    bytecode left out), compiled for ``python_version`` when it is given and an interpreter found."""
    if not (source / "__init__.py").is_file():
        raise LayerBuildError(f"{source} is not the collab package")
    python = _compiler(python_version, compiler)
    target = build_root / f"collab-{collab_key(source, _bytecode_tag(python))}.zip"

    def build(workdir: Path) -> None:
        dest = workdir / "python" / "collab"
        for path in _package_files(source):
            out = dest / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
        if python is not None:
            _compile(workdir / "python", python, runner)

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
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise LayerBuildError(f"nothing to package in {folder}")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(base).as_posix(), date_time=_EPOCH)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


# -- the layers' requirements for this machine, to run the shipped package as Lambda would -----------
RUNTIME_VERSION = "3.13"  # infra.functions.RUNTIME's version (kept here: this module imports no CDK)


def runtime_site(
    version: str = RUNTIME_VERSION, *, build_root: Path = BUILD_ROOT, build: bool = True
) -> tuple[str, Path]:
    """(interpreter, folder) with the layers' pinned requirements and boto3 (which Lambda's runtime
    carries), installed for THIS machine's platform by an interpreter of the runtime's version, or
    by the current one when none is found: what the layer import test and ``bench.coldstart
    --layer`` put on ``sys.path`` beside the collab layer. ``make`` builds it (``python -m
    infra.layers``); tests pass ``build=False``, since building downloads the wheels."""
    python = bytecode_python(version) or sys.executable
    found = _version_of(python) or f"{sys.version_info[0]}.{sys.version_info[1]}"
    site = build_root / f"runtime-site-py{found}-{dependencies_key(found)}"
    if (site / ".complete").exists():
        return python, site
    if not build:
        raise LayerBuildError(f"{site} is not built: run `make runtime-site` (python -m infra.layers)")
    build_root.mkdir(parents=True, exist_ok=True)
    with exclusive(build_root / ".lock"):
        if not (site / ".complete").exists():
            shutil.rmtree(site, ignore_errors=True)
            pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
            result = _run([*pip, "--target", str(site), *REQUIREMENTS, "boto3"])
            if result.returncode != 0:
                tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-20:])
                raise LayerBuildError(f"pip could not install the runtime's requirements:\n{tail}")
            (site / ".complete").touch()
    return python, site


if __name__ == "__main__":
    interpreter, folder = runtime_site()
    print(f"{folder} (for {interpreter})")
