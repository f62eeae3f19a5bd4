"""Summarise a mutmut run per module: ``python tests/mutation_report.py .mutation/mutants``.

mutmut keeps one ``<file>.meta`` per mutated file (exit code per mutant); this prints, per module:
mutants, killed (a test failed), typed (mypy refused the mutant: ``make test`` runs mypy, so it never
lands), timeout (a test hung: detected too), survived (every test passed), no tests (no test runs
that code), not run (filtered out of this run, or not reached yet), and the
score = (killed + typed + timeout) / (killed + typed + timeout + survived + no tests).

One kind of survivor is equivalent by construction and is told apart mechanically: an SQL statement
whose only change is the letter case of its keywords or unquoted identifiers (``select`` for
``SELECT``), which Postgres reads the same (:func:`sql_case_only`; a change inside a quoted literal,
a quoted identifier or a ``%s`` placeholder is not that). Those are counted as **equivalent**, left
out of the score's denominator, and listed apart. Then the other survivors' names, which
``mutmut show NAME`` (run in .mutation/) turns into a diff. docs/testing.md reads it.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tokenize
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # exit code -> "killed", "survived", "timeout", ...

COLUMNS = ("killed", "caught by type check", "timeout", "survived", "no tests", "not checked")
EQUIVALENT = "equivalent (SQL letter case)"
# SQL as this code base writes it: keywords in capitals (messages and names never are), so a string
# whose original holds one of these is a statement or a piece of one (implicit concatenation)
_SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|WITH|RETURNING|FROM|WHERE|SET|PRIMARY KEY|NOT NULL|"
    r"DEFAULT|VALUES|JOIN|ORDER BY|LIMIT|ON CONFLICT|GRANT|REVOKE|TABLE|EXISTS|AND|OR|IS NULL|ANY|"
    r"CASE|WHEN|THEN|ELSE|END|NOT)\b"
)


def sql_case_only(orig_code: str, mutant_code: str) -> bool:
    """True when the two functions differ only in the letter case of SQL outside quotes: every
    token is the same except string literals that read as SQL, and in those every changed character
    is a letter outside '...' and "..." (values and quoted identifiers are case-sensitive) and not a
    placeholder's (``%s``)."""
    try:
        a, b = _tokens(orig_code), _tokens(mutant_code)
    except (tokenize.TokenError, SyntaxError):
        return False
    if len(a) != len(b):
        return False
    changed = False
    for i, ((kind_a, text_a), (kind_b, text_b)) in enumerate(zip(a, b, strict=True)):
        if text_a == text_b:
            continue
        if kind_a == kind_b == tokenize.NAME and i > 0 and a[i - 1][1] == "def":
            continue  # mutmut names the two functions apart (x_f__mutmut_orig, x_f__mutmut_3)
        if kind_a != tokenize.STRING or kind_b != tokenize.STRING or not _case_of_sql(text_a, text_b):
            return False
        changed = True
    return changed


def _tokens(code: str) -> list[tuple[int, str]]:
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT)
    return [
        (t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type not in skip
    ]


def _case_of_sql(a: str, b: str) -> bool:
    if len(a) != len(b) or a.lower() != b.lower() or not _SQL.search(a):
        return False
    body_start = len(a) - len(a.lstrip("rRbBuUfF"))  # the prefix and the Python quote are kept as is
    quote = a[body_start]
    # placeholders (%s, %(name)s) and an f-string's {expressions} keep their case
    kept = {i for m in _KEPT.finditer(a) for i in range(m.start(), m.end())}
    inside: str | None = None  # the SQL quote we are in
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if i > body_start and x in "'\"" and x != quote:
            inside = None if inside == x else (inside or x)
        if x != y and (inside is not None or i <= body_start or i in kept):
            return False
    return True


_KEPT = re.compile(r"%\(\w+\)[sbt]|%[sbt]|\{[^{}]*\}")


def status(code: int | None) -> str:
    return str(status_by_exit_code[code])


def _code_of(name: str) -> tuple[str, str] | None:
    """The original and the mutant function's source, from mutmut's working copy (cwd .mutation)."""
    import libcst as cst
    from mutmut.mutation.diff_apply import (
        find_mutant,
        read_functions_from_index,
        read_mutant_function,
        read_mutants_module,
        read_original_function,
    )

    try:
        path = find_mutant(name).path
        functions = read_functions_from_index(name, path)
        if functions is None:
            module = read_mutants_module(path)
            functions = (read_original_function(module, name), read_mutant_function(module, name))
    except Exception:  # a mutant mutmut cannot find again (a file since changed) is not classified
        return None
    return cst.Module([functions[0]]).code, cst.Module([functions[1]]).code


def classify(name: str) -> str:
    code = _code_of(name)
    return EQUIVALENT if code is not None and sql_case_only(*code) else "survived"


def main(root: str) -> int:
    base = Path(root) / "src" / "collab"
    metas = sorted(base.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {base}")
        return 1
    total: Counter[str] = Counter()
    survivors: list[str] = []
    equivalent: list[str] = []
    print(f"{'module':<28} {'mutants':>7} {'killed':>7} {'typed':>7} {'timeout':>7} {'survived':>8} {'no tests':>8} {'not run':>7} {'sql case':>8} {'score':>7} {'untyped':>7}")  # fmt: skip
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue  # nothing to mutate there (an __init__, a module of constants)
        verdicts = {k: status(c) for k, c in codes.items()}
        for k, v in verdicts.items():
            if v == "survived":
                verdicts[k] = classify(k)
        counts = Counter(verdicts.values())
        survivors += sorted(k for k, v in verdicts.items() if v in ("survived", "no tests"))
        equivalent += sorted(k for k, v in verdicts.items() if v == EQUIVALENT)
        total.update(counts)
        print(_row(str(meta.relative_to(base)).removesuffix(".py.meta"), counts))
    print(_row("all", total))
    if equivalent:
        print(f"\nequivalent, SQL letter case only ({len(equivalent)}): " + ", ".join(equivalent))
    if survivors:
        print(f"\nsurvivors ({len(survivors)}): `mutmut show NAME` in .mutation/ prints the diff")
        for name in survivors:
            print(f"  {name}")
    return 0


def _row(name: str, c: Counter[str]) -> str:
    """score: detected over what was judged, equivalents left out; untyped: the same without the
    mutants mypy refused (as if the type check were not part of `make test`)."""
    n = sum(c.values())
    detected = c["killed"] + c["caught by type check"] + c["timeout"]
    judged = detected + c["survived"] + c["no tests"]
    score = f"{100 * detected / judged:.1f}%" if judged else "-"
    untyped_judged = judged - c["caught by type check"]
    untyped = (
        f"{100 * (detected - c['caught by type check']) / untyped_judged:.1f}%" if untyped_judged else "-"
    )
    other = n - sum(c[k] for k in (*COLUMNS, EQUIVALENT))  # suspicious, segfault, ...: in mutants only
    cells = " ".join(
        f"{c[k]:>{w}}" for k, w in zip((*COLUMNS, EQUIVALENT), (7, 7, 7, 8, 8, 7, 8), strict=True)
    )
    return f"{name:<28} {n:>7} {cells} {score:>7} {untyped:>7}" + (f"  ({other} other)" if other else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".mutation/mutants"))
