"""What goes over the wire to Redis, counted where redis-py packs it: round trips (each write of a
command or a whole pipeline to a socket), commands (scripts count as one) and the keys they name.
Tests assert on these counts instead of timing; benchmarks print them next to their times."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.connection

_KEY_PREFIX = b"collab:"


@dataclass
class Wire:
    round_trips: int = 0
    commands: int = 0
    keys: set[bytes] = field(default_factory=set)
    by_command: dict[str, int] = field(default_factory=dict)

    def note(self, args: tuple[Any, ...]) -> None:
        self.commands += 1
        name = _b(args[0]).upper().decode()
        self.by_command[name] = self.by_command.get(name, 0) + 1
        if name in ("EVALSHA", "EVAL"):
            n = int(args[2])
            self.keys.update(_b(k) for k in args[3 : 3 + n])
        else:
            self.keys.update(b for b in map(_b, args[1:]) if b.startswith(_KEY_PREFIX))


def _b(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    return str(v).encode()


def _serializers() -> list[type]:
    return [
        c
        for name in ("PythonRespSerializer", "HiredisRespSerializer")
        if (c := getattr(redis.connection, name, None))
    ]


@contextlib.contextmanager
def counting() -> Iterator[Wire]:
    """Count every Redis command packed and every round trip sent while the block runs (this process)."""
    wire = Wire()
    real_send = redis.connection.AbstractConnection.send_packed_command
    packers = {cls: cls.pack for cls in _serializers()}

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        wire.round_trips += 1
        real_send(self, command, check_health)

    def wrap(real: Any) -> Any:
        def pack(self: Any, *args: Any) -> Any:
            wire.note(args)
            return real(self, *args)

        return pack

    redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    for cls, real in packers.items():
        cls.pack = wrap(real)  # type: ignore[attr-defined]
    try:
        yield wire
    finally:
        redis.connection.AbstractConnection.send_packed_command = real_send  # type: ignore[method-assign]
        for cls, real in packers.items():
            cls.pack = real  # type: ignore[attr-defined]
