"""Summarise a mutmut run per module: ``python tests/mutation_report.py .mutation/mutants``.

mutmut keeps one ``<file>.meta`` per mutated file (exit code per mutant); this prints, per module:
mutants, killed (a test failed), typed (mypy refused the mutant: ``make test`` runs mypy, so it never
lands), timeout (a test hung: detected too), survived (every test passed), no tests (no test runs
that code), not run (filtered out of this run, or not reached yet), and the
score = (killed + typed + timeout) / (killed + typed + timeout + survived + no tests). Then the survivors' names,
which ``mutmut show NAME`` (run in .mutation/) turns into a diff. docs/testing.md reads it.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # exit code -> "killed", "survived", "timeout", ...

COLUMNS = ("killed", "caught by type check", "timeout", "survived", "no tests", "not checked")


def status(code: int | None) -> str:
    return str(status_by_exit_code[code])


def main(root: str) -> int:
    base = Path(root) / "src" / "collab"
    metas = sorted(base.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {base}")
        return 1
    total: Counter[str] = Counter()
    survivors: list[str] = []
    print(f"{'module':<28} {'mutants':>7} {'killed':>7} {'typed':>7} {'timeout':>7} {'survived':>8} {'no tests':>8} {'not run':>7} {'score':>7}")  # fmt: skip
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue  # nothing to mutate there (an __init__, a module of constants)
        counts = Counter(status(c) for c in codes.values())
        survivors += sorted(k for k, c in codes.items() if status(c) in ("survived", "no tests"))
        total.update(counts)
        print(_row(str(meta.relative_to(base)).removesuffix(".py.meta"), counts))
    print(_row("all", total))
    if survivors:
        print(f"\nsurvivors ({len(survivors)}): `mutmut show NAME` in .mutation/ prints the diff")
        for name in survivors:
            print(f"  {name}")
    return 0


def _row(name: str, c: Counter[str]) -> str:
    n = sum(c.values())
    detected = c["killed"] + c["caught by type check"] + c["timeout"]
    judged = detected + c["survived"] + c["no tests"]
    score = f"{100 * detected / judged:.1f}%" if judged else "-"
    other = n - sum(c[k] for k in COLUMNS)  # suspicious, segfault, ...: counted in mutants only
    cells = " ".join(f"{c[k]:>{w}}" for k, w in zip(COLUMNS, (7, 7, 7, 8, 8, 7), strict=True))
    return f"{name:<28} {n:>7} {cells} {score:>7}" + (f"  ({other} other)" if other else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".mutation/mutants"))
