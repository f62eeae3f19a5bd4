"""The request ledger's fingerprint: what a key was first used for (collab.domain.ledger)."""

from __future__ import annotations

import hashlib

from collab.domain.ledger import fingerprint


def test_a_fingerprint_is_the_first_128_bits_of_the_sha256_of_its_parts_each_ended_by_a_nul() -> None:
    expected = hashlib.sha256(b"POST\x00/tasks\x00{}\x00").hexdigest()[:32]
    assert fingerprint("POST", "/tasks", b"{}") == expected
    assert len(expected) == 32


def test_parts_are_kept_apart() -> None:
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert fingerprint("a", "") != fingerprint("a")


def test_text_and_its_utf8_bytes_are_the_same_part() -> None:
    assert fingerprint("café") == fingerprint("café".encode())


def test_a_lone_surrogate_in_a_body_is_fingerprinted_not_refused() -> None:
    """JSON may carry "\\ud800"; json.loads gives a str Python cannot encode strictly."""
    lone = "\ud800"
    assert fingerprint(lone) == hashlib.sha256(b"\xed\xa0\x80\x00").hexdigest()[:32]
    assert fingerprint(lone) != fingerprint("\ud801")
