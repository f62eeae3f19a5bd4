"""The documents name real files: every path in backticks in README.md and docs/*.md, and every
entry of the layout tree in docs/architecture.md, exists in the checkout (globs and ``{a,b}``
alternatives must match at least one file each)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOTS = (
    "layers/",
    "collab_dev/",
    "functions/",
    "infra/",
    "tests/",
    "bench/",
    "web/",
    "docs/",
    ".ci/",
    "packages/",
    "examples/",
)
# written by commands, not committed
GENERATED = (
    "bench/results/",
    ".build/",
    "cdk.out/",
    "packages/collab-client/dist/",
    "examples/react-board/dist/",
)
PART = r"[\w.*{},<>-]+"
NAME = re.compile(rf"^(?:{PART}/)+$|^(?:{PART}/)*{PART}\.(?:py|lua|sql|md|json|js|mjs|ts|tsx|css|html)$")


def _expand(pattern: str) -> list[str]:
    """``{a,b}`` alternatives (one level) as separate patterns."""
    m = re.search(r"\{([^{}]+)\}", pattern)
    if not m:
        return [pattern]
    return [pattern[: m.start()] + alt + pattern[m.end() :] for alt in m.group(1).split(",")]


def _exists(path: str) -> bool:
    path = re.sub(r"<\w+>", "*", path.split("::")[0]).rstrip("/")
    return all(
        any(ROOT.glob(p)) if any(c in p for c in "*?[") else (ROOT / p).exists() for p in _expand(path)
    )


def backticked_paths(text: str) -> list[str]:
    found = re.findall(r"`([^`\s]+)`", text)
    return [p for p in found if p.startswith(ROOTS) and not p.startswith(GENERATED) and "..." not in p]


def tree_paths(text: str) -> list[str]:
    """Paths of the layout tree (the code block under "## The layout"). A line holds names, then
    prose; names after a folder on its own line are that folder's children."""
    block = text.split("## The layout", 1)[1].split("```", 2)[1]
    out: list[str] = []
    parents: list[str] = []  # the folder at each depth
    for line in block.splitlines():
        stripped = line.lstrip("│├└─ ")
        names = []
        for token in stripped.split():
            if not NAME.match(token):
                break
            names.append(token)
        if not names:
            continue
        depth = min((len(line) - len(stripped)) // 4, len(parents))
        parents = parents[:depth]
        base = parents[-1] if parents else ""
        first = base + names[0]
        out.append(first)
        if first.endswith("/"):
            parents.append(first)
            out += [first + name for name in names[1:]]
        else:
            out += [base + name for name in names[1:]]
    return out


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_document_names_exists(doc: Path) -> None:
    missing = [p for p in backticked_paths(doc.read_text()) if not _exists(p)]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_every_entry_of_the_layout_tree_exists() -> None:
    paths = tree_paths((ROOT / "docs" / "architecture.md").read_text())
    assert "layers/collab/collab/ws/message.py" in paths and "collab_dev/emulator/local_gateway.py" in paths
    missing = [p for p in paths if not _exists(p)]
    assert not missing, f"docs/architecture.md's layout names what does not exist: {missing}"


def test_the_walkthrough_names_the_files_in_the_order_a_frame_takes() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    walk = text.split("## What happens on `task.update`", 1)[1].split("\n## ", 1)[0]
    order = [p for p in backticked_paths(walk) if p.endswith(".py")]
    firsts = list(dict.fromkeys(order))
    expected = [
        "functions/message/handler.py",
        "layers/collab/collab/ws/message.py",
        "layers/collab/collab/runtime.py",
        "layers/collab/collab/ws/context.py",
        "layers/collab/collab/protocol/client_frames.py",
        "layers/collab/collab/adapters/redis/store.py",
        "layers/collab/collab/domain/tasks.py",
        "layers/collab/collab/adapters/postgres/database.py",
    ]
    assert firsts[: len(expected)] == expected
    assert "layers/collab/collab/adapters/apigw/http_pool.py" in firsts
