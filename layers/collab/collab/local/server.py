"""``collab dev``: the local stack (services, schema). The WebSocket gateway is added in collab.local."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def serve(host: str = "127.0.0.1", port: int = 8080) -> int:
    from collab import embedded
    from collab.migrate import migrate

    services = None
    db, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not db or not redis_url:
        services = embedded.start(Path(".collab"))
        db, redis_url = db or services.database_url, redis_url or services.redis_url
    applied = migrate(db)
    print(f"postgres: ready ({'migrated ' + ', '.join(applied) if applied else 'schema up to date'})")
    print(f"redis:    ready ({redis_url})")
    print("the local WebSocket gateway is not part of this build yet; nothing is served", file=sys.stderr)
    if services:
        services.stop()
    return 0
