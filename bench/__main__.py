"""``python -m bench`` (what ``make bench`` runs): the end-to-end benchmark, ``bench.e2e``.

It drives the local gateway with real WebSocket clients and prints each measure against its target;
arguments are passed through (``python -m bench --help``). The other benchmarks are commands of
their own, since each answers a narrower question:

    python -m bench.task_update      one Lambda's task.update handler: time, CPU per edit and per recipient
    python -m bench.coldstart   each handler's init and first invocation in a fresh interpreter
    python -m bench.memory      Redis bytes per connection, each handler's peak RSS
    python -m bench.cost        AWS cost per million edits, from bench.task_update's durations
    python -m bench.emulator_posts     the local gateway's Management API alone: CPU per POST, fan-out latency
    python -m bench.broadcast   one fan-out alone: the Management API client's time and CPU per post
    python -m bench.sweeper_scale    the minute sweep with 100,000 registered connections, 1% overdue
    python -m bench.large_workspace  a workspace of 500 live members: edit->peer, a reconnect storm's posts
    python -m bench.capacity    1k / 10k / 100k users: rates, AWS limits, the first one hit, the bill
    python -m bench.client_pacing   @collab/client in Chromium: a burst of changes with send pacing off and on
"""

from __future__ import annotations

import sys

from bench import e2e


def main() -> int:
    code = e2e.main(sys.argv[1:])
    print(
        "\nmore: python -m bench.task_update (per-handler time and CPU), python -m bench.coldstart,"
        " python -m bench.memory, python -m bench.cost, python -m bench.emulator_posts,"
        " python -m bench.broadcast, python -m bench.sweeper_scale, python -m bench.large_workspace,"
        " python -m bench.capacity"
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
