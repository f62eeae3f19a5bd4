"""Task list cursors (collab.domain.tasks): the HTTP API takes back only unpadded base64url
(``CURSOR_PATTERN``), so the cursor the server writes must be that for every position: a task
created at a whole second has a shorter timestamp, whose encoding would end in padding."""

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
