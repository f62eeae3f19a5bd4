"""API Gateway's WebSocket size rules, checked on the raw byte stream (sans-I/O).

API Gateway accepts frames of at most 32 KB and messages (a frame, or a run of continuation frames
up to FIN) of at most 128 KB; anything larger makes it close the connection with 1009 ("Message too
big"). aiohttp only knows one limit, on the assembled message, so :class:`FrameMeter` reads frame
headers as the bytes arrive and reports the first frame that breaks either rule, before its payload
is buffered. It never touches a socket: feed it bytes, it answers ``None`` or the violation.

Compression is not negotiated (API Gateway does not offer permessage-deflate), so payload lengths
on the wire are the message sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

# API Gateway quotas (not adjustable): "WebSocket frame size 32 KB", "Message payload size 128 KB".
MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024

_CONTINUATION, _TEXT, _BINARY = 0x0, 0x1, 0x2


@dataclass(frozen=True, slots=True)
class TooBig:
    """The first frame that breaks a rule: which rule, and the size it would have reached."""

    rule: str  # "frame" or "message"
    size: int
    at: int = 0  # offset in the chunk just fed where that frame's header began (0: an earlier chunk)


class FrameMeter:
    """Follows the frame boundaries of a client-to-server byte stream and meters data frames."""

    def __init__(self, max_frame: int = MAX_FRAME_BYTES, max_message: int = MAX_MESSAGE_BYTES) -> None:
        self.max_frame = max_frame
        self.max_message = max_message
        self._header = bytearray()  # a header split across reads
        self._skip = 0  # payload bytes of the current frame still to pass
        self._message = 0  # bytes of the message being assembled (data frames up to FIN)

    def feed(self, data: bytes) -> TooBig | None:
        """Meter the next bytes; the first violation is returned (and the meter is then done)."""
        view = memoryview(data)
        pos, end, start = 0, len(view), 0
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            if not self._header:
                start = pos
            need = self._header_len()
            take = min(need - len(self._header), end - pos)
            self._header += view[pos : pos + take]
            pos += take
            if len(self._header) < need or need != self._header_len():
                continue  # the header is incomplete, or its length field just told us it is longer
            verdict = self._on_header(bytes(self._header))
            self._header.clear()
            if verdict is not None:
                return TooBig(verdict.rule, verdict.size, start)
        return None

    def _header_len(self) -> int:
        """Bytes of the current header: 2, plus the extended length, plus the mask key."""
        if len(self._header) < 2:
            return 2
        b1 = self._header[1]
        ext = {126: 2, 127: 8}.get(b1 & 0x7F, 0)
        return 2 + ext + (4 if b1 & 0x80 else 0)

    def _on_header(self, header: bytes) -> TooBig | None:
        fin, opcode, b1 = header[0] & 0x80, header[0] & 0x0F, header[1]
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        self._skip = length
        if opcode not in (_CONTINUATION, _TEXT, _BINARY):
            return None  # control frames (close, ping, pong) are at most 125 bytes by RFC 6455
        if length > self.max_frame:
            return TooBig("frame", length)
        self._message = length if opcode != _CONTINUATION else self._message + length
        if self._message > self.max_message:
            return TooBig("message", self._message)
        if fin:
            self._message = 0
        return None
