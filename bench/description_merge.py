"""Merged descriptions: diff-match-patch three-way merge (what the server does) against a text CRDT
(pycrdt, the Python binding of Yjs's Rust port), for the decision in docs/protocol.md.

For descriptions of 1,000 / 5,000 / 10,000 characters of prose, after ``--history`` earlier edits
(typing: a word inserted or deleted at a random place), two users edit concurrently (one rewrites
60 characters near the start, the other appends at the end). Prints, per size:

- dmp merge us: the server's cost of one merge (``collab.domain.textmerge.merge``: two diffs and the
  hunk walk), median of ``--runs``; dmp worst us: both sides replaced the whole text;
- crdt apply us: the cost a CRDT server pays per edit: load the task's stored Y document, apply the
  client's update, encode the document again to store it (it cannot keep it in memory: Lambda);
- stored bytes: what the server keeps per description (text: the text; CRDT: the encoded document,
  which carries the history of deleted characters);
- edit bytes: what one edit sends (text: the whole description; CRDT: the update).

    python -m bench.description_merge [--runs 200] [--history 500]

pycrdt is not a dependency of the project: ``pip install pycrdt`` to include the CRDT columns.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

WORDS = [
    "the",
    "task",
    "board",
    "shows",
    "who",
    "changed",
    "what",
    "and",
    "when",
    "while",
    "two",
    "people",
    "edit",
    "one",
    "card",
    "at",
    "once",
    "deadline",
    "review",
    "ship",
    "release",
    "notes",
    "meeting",
    "owner",
    "status",
    "priority",
    "risk",
    "plan",
    "draft",
]


def prose(n: int, rng: random.Random) -> str:
    out: list[str] = []
    size = 0
    while size < n:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(out)[:n]


def typing_edits(text: str, count: int, rng: random.Random) -> list[tuple[int, int, str]]:
    """``count`` edits as (position, deleted length, inserted text), each valid on the text the
    previous ones left."""
    edits = []
    length = len(text)
    for _ in range(count):
        pos = rng.randint(0, length)
        if rng.random() < 0.5 or length < 10:  # as many deletions as insertions: the size holds
            ins = " " + rng.choice(WORDS)
            edits.append((pos, 0, ins))
            length += len(ins)
        else:
            cut = min(rng.randint(1, 8), length - pos)
            edits.append((pos, cut, ""))
            length -= cut
    return edits


def apply(text: str, edit: tuple[int, int, str]) -> str:
    pos, cut, ins = edit
    return text[:pos] + ins + text[pos + cut :]


def median_us(fn: Any, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def run(size: int, runs: int, history: int, seed: int = 7) -> dict[str, Any]:
    from collab.domain.textmerge import merge

    rng = random.Random(seed)
    text = prose(size, rng)
    for e in typing_edits(text, history, rng):
        text = apply(text, e)
    base = text
    theirs = base[:20] + " a phrase rewritten by Bob " + base[80:]  # 60 characters near the start
    mine = base + " Appended by Ann."
    merged = merge(base, theirs, mine)
    assert merged.conflicts == 0 and "rewritten by Bob" in merged.text and merged.text.endswith("by Ann.")
    # the worst case: both replaced the whole text with other text (the diffs hit their time limit)
    other1, other2 = prose(len(base), random.Random(seed + 1)), prose(len(base), random.Random(seed + 2))
    row: dict[str, Any] = {
        "chars": len(base),
        "dmp_merge_us": round(median_us(lambda: merge(base, theirs, mine), runs), 1),
        "dmp_worst_us": round(median_us(lambda: merge(base, other1, other2), max(3, runs // 20)), 1),
        "text_stored_bytes": len(base.encode()),
        "text_edit_bytes": len(mine.encode()),
    }
    try:
        import pycrdt
    except ImportError:
        return row
    rng = random.Random(seed)
    doc = pycrdt.Doc()
    ytext = doc.get("d", type=pycrdt.Text)
    start = prose(size, rng)
    ytext += start
    for pos, cut, ins in typing_edits(start, history, rng):  # the same history, as CRDT operations
        if cut:
            del ytext[pos : pos + cut]
        if ins:
            ytext.insert(pos, ins)
    assert str(ytext) == base
    stored = doc.get_update()
    # one client's edit (Ann appends), as the update its Y document would send
    client = pycrdt.Doc()
    client.apply_update(stored)
    before = client.get_state()
    client_text = client.get("d", type=pycrdt.Text)
    client_text += " Appended by Ann."
    update = client.get_update(before)

    def server_apply() -> None:
        d = pycrdt.Doc()
        d.apply_update(stored)
        d.apply_update(update)
        d.get_update()
        str(d.get("d", type=pycrdt.Text))

    row.update(
        crdt_apply_us=round(median_us(server_apply, runs), 1),
        crdt_stored_bytes=len(stored),
        crdt_edit_bytes=len(update),
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--history", type=int, default=500)
    args = ap.parse_args()
    rows = [run(n, args.runs, args.history) for n in (1_000, 5_000, 10_000)]
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]
    print(" ".join(f"{c:>18}" for c in cols))
    for r in rows:
        print(" ".join(f"{r.get(c, '-')!s:>18}" for c in cols))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
