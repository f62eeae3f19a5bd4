"""History cursors (collab.domain.history): opaque to clients, read back exactly, and anything the
server did not write names no page (the page is empty, as past a list's end)."""

import base64

import pytest

from collab.domain.history import decode_cursor, encode_cursor


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_every_seq_reads_back_from_its_cursor_which_carries_no_padding():
    """Every length of cursor (each remainder mod 4 of the encoded text) and every last letter."""
    for seq in [*range(0, 3000), 123456, 9876543, 2**31, 2**53, 10**18]:
        cursor = encode_cursor(seq)
        assert "=" not in cursor and decode_cursor(cursor) == seq, seq


@pytest.mark.parametrize(
    ("raw", "seq"),
    [
        ("h" + "1" * 19, int("1" * 19)),  # 20 characters: the longest taken
        ("h" + "1" * 20, None),
        ("h" + "1" * 25, None),
        ("x123", None),  # not ours: no "h"
        ("hx12", None),
        ("h", None),
        ("h-12", None),
    ],
)
def test_only_what_the_server_writes_names_a_seq(raw, seq):
    assert decode_cursor(b64(raw)) == seq


@pytest.mark.parametrize("cursor", ["", "%%%", "bm9wZQ", "a", "aGVsbG8gd29ybGQ", "/w"])
def test_garbage_names_no_page(cursor):
    assert decode_cursor(cursor) is None
