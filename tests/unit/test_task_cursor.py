"""Task list cursors (collab.domain.tasks): the HTTP API takes back only unpadded base64url
(``CURSOR_PATTERN``), so the cursor the server writes must be that for every position: a task
created at a whole second has a shorter timestamp, whose encoding would end in padding."""

import base64
import re
import uuid
from datetime import UTC, datetime

import pytest

from collab.domain.tasks import decode_cursor, encode_cursor
from collab.http.schemas import CURSOR_MAX_LENGTH, CURSOR_PATTERN


@pytest.mark.parametrize("microsecond", [0, 1, 500_000, 999_999])
def test_every_position_has_a_cursor_the_api_takes_back_and_reads_exactly(microsecond):
    created = datetime(2026, 12, 4, 20, 0, 0, microsecond, tzinfo=UTC)
    for i in range(64):  # every last letter of the id
        tid = str(uuid.UUID(int=i * 0x0123456789ABCDEF))
        cursor = encode_cursor(created, tid)
        assert re.fullmatch(CURSOR_PATTERN, cursor) and len(cursor) <= CURSOR_MAX_LENGTH, cursor
        assert decode_cursor(cursor) == (created, tid)


@pytest.mark.parametrize(
    "written",
    [
        "2026-12-04",
        "2026-12-04T12:00",
        "2026-12-04T12:00:00",  # 75 characters once encoded: three short of a multiple of four
        "2026-12-04T12:00:00.5",
        "2026-12-04T12:00:00.125",
        "2026-12-04T12:00:00+00:00",
        "2026-12-04T12:00Z",
    ],
)
def test_a_cursor_of_any_length_that_names_a_position_is_read_as_that_position(written):
    """The document's cursor is any base64url string: one a client wrote that names a position
    (any ISO 8601 time and an id), unpadded at whatever length, is read as that position."""
    tid = str(uuid.UUID(int=12345))
    cursor = base64.urlsafe_b64encode(f"{written}|{tid}".encode()).decode().rstrip("=")
    assert decode_cursor(cursor) == (datetime.fromisoformat(written), tid)
