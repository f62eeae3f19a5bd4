"""Deploy-time schema migrations: the ``onEvent`` handler of a CloudFormation custom resource.

CDK's Provider framework speaks the CloudFormation protocol; this handler only returns a dict.
Create and Update apply pending migrations (``collab.adapters.postgres.migrate`` is idempotent and
serialised by an advisory lock, so a repeated or concurrent run is harmless). Delete does nothing:
tearing down the stack must never drop data, and the database is snapshotted by its own removal policy.

The physical id never changes, so an Update (a new migration shipped) is never read by
CloudFormation as a replacement, which would send a Delete for the "old" resource.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

PHYSICAL_ID = "collab-schema"
logger = Logger()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_type = event.get("RequestType")
    logger.info("schema custom resource", extra={"request_type": request_type})
    if request_type in ("Create", "Update"):
        # Imported here: a Delete must succeed even when configuration or the database is gone.
        from collab.adapters.postgres.migrate import migrate
        from collab.config import get_settings

        applied = migrate(get_settings().dsn)
        logger.info("migrations applied", extra={"applied": applied})
        return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"Applied": ",".join(applied)}}
    return {"PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID}
