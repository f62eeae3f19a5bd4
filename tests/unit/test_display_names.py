"""What peers see as a user's name (``collab.domain.users.display_name_of``): the token's name, else
its email, else the user id; control characters (C0, DEL, C1) dropped, spaces trimmed, 100
characters at most, and never empty."""

from __future__ import annotations

import pytest

from collab.auth.tokens import Identity
from collab.domain.users import display_name_of


@pytest.mark.parametrize(
    ("identity", "shown"),
    [
        (Identity("u1", email="ann@example.test", name="Ann"), "Ann"),
        (Identity("u1", email="ann@example.test"), "ann@example.test"),
        (Identity("u1", email="ann@example.test", name=""), "ann@example.test"),
        (Identity("u1"), "u1"),
        (Identity("u1", name="  Ann  "), "Ann"),
        (Identity("u1", name="A\x00n\x1fn\x7f\x80\x9f"), "Ann"),
        (Identity("u1", name="\x1b[31mAnn\x1b[0m"), "[31mAnn[0m"),  # ESC goes, the rest is text
        (Identity("u1", name="Zoë \u00a0Z"), "Zoë \u00a0Z"),  # U+00A0 is not a control character
        (Identity("u1", name="x" * 101), "x" * 100),
        (Identity("u1", name=" " + "y" * 100), "y" * 100),  # trimmed first, then cut
    ],
)
def test_the_shown_name(identity: Identity, shown: str) -> None:
    assert display_name_of(identity) == shown


def test_a_name_of_only_control_characters_or_spaces_falls_back_to_the_user_id_cut_to_100() -> None:
    assert display_name_of(Identity("u1", name="\x01\x02 \t")) == "u1"
    assert display_name_of(Identity("v" * 128, name="\x7f")) == "v" * 100
