"""Three-way merge of two concurrent edits of one text (a task's description, contract v1.3).

``merge(base, theirs, mine)``: ``base`` is the text both edits started from, ``theirs`` the text
committed meanwhile, ``mine`` the text of the change being applied. Each side's edit is diffed
against ``base`` (diff-match-patch, with its semantic cleanup, so hunks follow words rather than
stray characters) and turned into hunks: a range of ``base`` and what replaces it. Hunks of the two
sides that do not overlap are both applied, so both people keep their text; two insertions at the
same point are both kept (theirs first, since it committed first). Hunks that overlap (both sides
changed the same stretch of text) are a conflict: that stretch takes ``mine``, the later write, as
per-field last-write-wins would, and the caller reports it in the conflict receipt.

Why a diff3-style merge of hunks rather than ``patch_apply`` of diff-match-patch: ``patch_apply``
fuzzy-matches context and may apply a hunk half over the other side's text; here the outcome is
defined (each stretch of ``base`` changed by one side takes that side's text, by both: mine) and the
conflicts are counted exactly. Why not a text CRDT: docs/protocol.md, "Descriptions that merge".
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_match_patch import diff_match_patch

_dmp = diff_match_patch()
_dmp.Diff_Timeout = 0.5  # seconds; a diff past it is coarser (fewer, larger hunks), never wrong


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


def _overlaps(h: Hunk, start: int, end: int) -> bool:
    """Whether ``h`` (which starts at or after ``start``) touches the same text as [start, end).
    Adjacent stretches, and an insertion at either edge of a range, do not."""
    if h.start == h.end:
        return start < h.start < end
    return h.start < end


def merge(base: str, theirs: str, mine: str) -> Merged:
    if theirs in (base, mine):
        return Merged(mine, 0)
    if mine == base:
        return Merged(theirs, 0)
    both = sorted(
        hunks(base, theirs, mine=False) + hunks(base, mine, mine=True),
        key=lambda h: (h.start, h.end, h.mine),  # an insertion before a range at its start; theirs first
    )
    out: list[str] = []
    pos = 0
    conflicts = 0
    i = 0
    while i < len(both):
        group = [both[i]]
        start, end = both[i].start, both[i].end
        i += 1
        while i < len(both) and _overlaps(both[i], start, end):
            group.append(both[i])
            end = max(end, both[i].end)
            i += 1
        out.append(base[pos:start])
        sides = {h.mine for h in group}
        if len(sides) == 1:  # one side's hunk (one side's hunks never overlap each other)
            out.append(group[0].text)
        else:  # both changed this stretch: mine, the later write, wins it
            conflicts += 1
            cursor = start
            for h in (h for h in group if h.mine):
                out.append(base[cursor : h.start])
                out.append(h.text)
                cursor = h.end
            out.append(base[cursor:end])
        pos = end
    out.append(base[pos:])
    return Merged("".join(out), conflicts)
