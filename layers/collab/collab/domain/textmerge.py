"""Three-way merge of two concurrent edits of one text (a task's description, contract v1.3).

``merge(base, theirs, mine)``: ``base`` is the text both edits started from, ``theirs`` the text
committed meanwhile, ``mine`` the text of the change being applied. Each side's edit is diffed
against ``base`` (diff-match-patch, with its semantic cleanup, so hunks follow words rather than
stray characters) and turned into hunks: a range of ``base`` and what replaces it. Hunks of the two
sides that are apart are both applied, so both people keep their text; two insertions at the same
point are both kept (theirs first, since it committed first: two people typing at the end of the
text). Hunks are judged by the words they touch: where both sides changed the same word(s), that
stretch is a conflict and takes ``mine``, the later write, as per-field last-write-wins would; the
caller reports it in the conflict receipt. Judging by characters would not do: "Body." edited into
"Bob's body." and into "Ann's body." are an insertion after "Bo" and a replacement of "B", apart by
one character, and applying both gives "Ann's bob's body.".

Why a diff3-style merge of hunks rather than ``patch_apply`` of diff-match-patch: ``patch_apply``
fuzzy-matches context and may apply a hunk half over the other side's text; here the outcome is
defined (each stretch of ``base`` changed by one side takes that side's text, by both: mine) and the
conflicts are counted exactly. Why not a text CRDT: docs/protocol.md, "Descriptions that merge".
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_match_patch import diff_match_patch

_dmp = diff_match_patch()
# Seconds per diff; past it a diff is coarser (fewer, larger hunks: more of it last-write-wins), never
# wrong. A wall-clock limit, so it must sit far above what any ordinary edit takes even on a loaded
# host (a descheduled process would otherwise merge the same texts differently): 0.2 s, reached only
# by texts rewritten throughout on both sides; two diffs per merge stay under the runtime role's 1 s
# lock_timeout that other writers of the task wait under.
_dmp.Diff_Timeout = 0.2


@dataclass(frozen=True, slots=True)
class Hunk:
    start: int  # range of base replaced: [start, end); an insertion has start == end
    end: int
    text: str
    mine: bool


@dataclass(frozen=True, slots=True)
class Merged:
    text: str
    conflicts: int  # stretches both sides changed, where mine won


def hunks(base: str, other: str, *, mine: bool) -> list[Hunk]:
    """``other`` as edits of ``base``: ordered, disjoint, separated by unchanged text."""
    diffs = _dmp.diff_main(base, other)
    _dmp.diff_cleanupSemantic(diffs)
    out: list[Hunk] = []
    pos = 0
    start: int | None = None
    text = ""
    for op, chunk in diffs:
        if op == 0:
            if start is not None:
                out.append(Hunk(start, pos, text, mine))
                start, text = None, ""
            pos += len(chunk)
            continue
        if start is None:
            start = pos
        if op < 0:
            pos += len(chunk)
        else:
            text += chunk
    if start is not None:
        out.append(Hunk(start, pos, text, mine))
    return out


def _widen(base: str, h: Hunk) -> tuple[int, int]:
    """The stretch of ``base`` a hunk is judged by: the whole words it touches. An insertion claims
    the word it joins (text typed against a word's edge edits that word); one that joins none, set
    off by white space or at either end of the text, stays a point, so two people adding text in
    different places, or both at the end, never conflict."""
    start, end = h.start, h.end
    if start == end:
        left = start > 0 and not base[start - 1].isspace() and not h.text[:1].isspace()
        right = end < len(base) and not base[end].isspace() and not h.text[-1:].isspace()
        if not (left or right):
            return start, end
    while start > 0 and not base[start - 1].isspace():
        start -= 1
    while end < len(base) and not base[end].isspace():
        end += 1
    return start, end


def _conflicts(start: int, end: int, group_start: int, group_end: int) -> bool:
    """Whether a stretch (starting at or after the group's start) falls within the group's: a point
    strictly inside it, a range overlapping it."""
    if start == end:
        return group_start < start < group_end
    return start < group_end


def merge(base: str, theirs: str, mine: str) -> Merged:
    if theirs in (base, mine):
        return Merged(mine, 0)
    if mine == base:
        return Merged(theirs, 0)
    judged = sorted(
        ((*_widen(base, h), h) for h in hunks(base, theirs, mine=False) + hunks(base, mine, mine=True)),
        key=lambda x: (x[0], x[1], x[2].mine),  # a point before a range at its start; theirs first
    )
    out: list[str] = []
    pos = 0
    conflicts = 0
    i = 0
    while i < len(judged):
        group_start, group_end, first = judged[i]
        group = [first]
        i += 1
        while i < len(judged) and _conflicts(judged[i][0], judged[i][1], group_start, group_end):
            group.append(judged[i][2])
            group_end = max(group_end, judged[i][1])
            i += 1
        if len({h.mine for h in group}) == 1:  # one side's hunks: applied as they are
            for h in group:
                out.append(base[pos : h.start])
                out.append(h.text)
                pos = h.end
            continue
        conflicts += 1  # both changed these words: mine, the later write, wins them
        out.append(base[pos:group_start])
        cursor = group_start
        for h in group:
            if h.mine:
                out.append(base[cursor : h.start])
                out.append(h.text)
                cursor = h.end
        out.append(base[cursor:group_end])
        pos = group_end
    out.append(base[pos:])
    return Merged("".join(out), conflicts)
