"""What each Lambda function may do: the one table the CDK app grants and the local gateway enforces.

In AWS a function's role decides whether a call is allowed; locally nothing did, so a missing grant
(``$disconnect`` posting ``presence.left`` without ``execute-api:ManageConnections``) passed every
test and failed every post in AWS. Now:

* ``infra/functions.py`` turns each row into the function's role (secrets it may read, the
  ``@connections`` ARNs it may call) and its network reach (Redis, the RDS Proxy);
* the local gateway and the test harness sign each function's Management API calls with an access
  key of its own (:func:`credentials_for`) and answer 403 ``AccessDeniedException`` to a function
  whose row does not allow posting (:func:`denied`), as API Gateway answers a role without the grant.

Why here, in ``collab_dev``: the table must be importable without CDK (the local gateway and the
tests read it at run time) and from an installed package (``collab dev`` runs from any directory,
where ``infra/`` is not importable). ``collab_dev`` is installed and never reaches Lambda; this module
imports only the standard library, so the CDK app pays nothing for it. It cannot live in the
``collab`` layer: what a function may do is the deployment's decision, not the runtime's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Permissions:
    posts: bool = False  # execute-api:ManageConnections: POST/GET/DELETE @connections/* of the stage
    postgres: bool = False  # reaches the RDS Proxy; reads the runtime role's credentials secret
    redis: bool = False  # reaches Redis; reads its AUTH token secret
    jwt: bool = False  # reads the JWT signing secret
    # administers the schema: logs in as the RDS master user (through the proxy), creates the
    # runtime and migration roles and sets their passwords from their secrets
    migrates: bool = False
    # lambda:InvokeFunction on these functions (asynchronously: a large fan-out's chunks)
    invokes: tuple[str, ...] = ()

    @property
    def secrets(self) -> frozenset[str]:
        """The secrets this function may read: ``db``, ``redis``, ``jwt``."""
        names = {"db": self.postgres, "redis": self.redis, "jwt": self.jwt}
        if self.migrates:
            names.update({"db-admin": True, "db-migrator": True})
        return frozenset(name for name, allowed in names.items() if allowed)


# Each row is what the function's code paths need, checked by tests/e2e/test_permissions.py, which
# runs every route's paths under enforcement:
# - connect: the ticket (jwt), rate limit and registration (Redis). No Postgres: the membership and the
#   ticket's durable record are the first frame's (message: collab.domain.admission). It never
#   posts: nothing can be posted to a connection while its $connect runs.
# - disconnect: Redis, then presence.left to the peers (posts). No Postgres.
# - heartbeat: Redis; sweeps dead peers of the workspace on the way (DELETE, presence.left: posts).
# - message: everything but the JWT secret.
# - sweeper: Redis and posts (closes dead connections, announces leavers); Postgres to reconcile
#   live connections against memberships and to prune expired rows (retention).
# - api: everything (tickets are signed with the JWT secret; removals close connections).
# - webhooks: Postgres (endpoints, the activity log, attempts), Redis and posts (presence debounce,
#   notifying admins of a disabled endpoint).
# - migrate: Postgres only: as the master user for the roles, then as the migration role.
# - fanout: a chunk of a large fan-out: posts, and Redis to prune gone connections and trace. Every
#   function that fans out to a workspace (events, presence batches) may invoke it.
FANS_OUT = ("fanout",)
PERMISSIONS: dict[str, Permissions] = {
    "connect": Permissions(redis=True, jwt=True),
    "disconnect": Permissions(redis=True, posts=True, invokes=FANS_OUT),
    "heartbeat": Permissions(redis=True, posts=True, invokes=FANS_OUT),
    "message": Permissions(redis=True, postgres=True, posts=True, invokes=FANS_OUT),
    "sweeper": Permissions(redis=True, postgres=True, posts=True, invokes=FANS_OUT),
    "api": Permissions(redis=True, postgres=True, jwt=True, posts=True, invokes=FANS_OUT),
    "webhooks": Permissions(redis=True, postgres=True, posts=True),
    "migrate": Permissions(postgres=True, migrates=True),
    "fanout": Permissions(redis=True, posts=True),
}

_KEY_PREFIX = "AKIALOCAL"  # placeholder access keys of the local functions: AKIALOCALDISCONNECT, ...


def access_key_for(function: str) -> str:
    """The access key the local gateway and the test harness give ``function`` (its role, locally)."""
    return _KEY_PREFIX + function.upper()


def invoke_denied(authorization: str, target: str) -> str | None:
    """The AccessDenied message Lambda would give a function invoking ``target`` without
    ``lambda:InvokeFunction`` on it, or None when the call is allowed (keys that are not a local
    function's, an operator's or a test's, are allowed, as with posts)."""
    function = function_of(authorization)
    if function is None or target in PERMISSIONS[function].invokes:
        return None
    return (
        f"User: arn:aws:sts::123456789012:assumed-role/collab-{function}/collab-{function} is not"
        f" authorized to perform: lambda:InvokeFunction on resource:"
        f" arn:aws:lambda:us-east-1:123456789012:function:collab-{target}"
    )


def credentials_for(function: str) -> tuple[str, str]:
    """(access key, secret key) of ``function``; the secret is a placeholder (signatures are not
    verified locally)."""
    return access_key_for(function), "local-" + function


def function_of(authorization: str) -> str | None:
    """The function that signed a request (from ``Credential=AKID/...`` of its SigV4 header), or
    None for a key that is not a local function's (an operator's, a test's own boto3 client)."""
    at = authorization.find("Credential=")
    if at < 0:
        return None
    key = authorization[at + len("Credential=") :].split("/", 1)[0]
    if not key.startswith(_KEY_PREFIX):
        return None
    name = key[len(_KEY_PREFIX) :].lower()
    return name if name in PERMISSIONS else None


def denied(authorization: str, method: str, connection_id: str, stage: str = "local") -> str | None:
    """The AccessDenied message API Gateway would give, or None when the call is allowed."""
    function = function_of(authorization)
    if function is None or PERMISSIONS[function].posts:
        return None
    return (
        f"User: arn:aws:sts::123456789012:assumed-role/collab-{function}/collab-{function} is not"
        f" authorized to perform: execute-api:ManageConnections on resource:"
        f" arn:aws:execute-api:us-east-1:123456789012:local/{stage}/{method}/@connections/{connection_id}"
    )


def call_as(function: str | None, handler: Callable[..., T], *args: Any) -> T:
    """Call ``handler(*args)`` signing as ``function`` (None: with whatever the environment holds).
    The local gateway and the test harness invoke every project function through this."""
    if function is None or function not in PERMISSIONS:
        return handler(*args)
    from collab.adapters.apigw import sigv4

    token = sigv4.invocation_credentials.set(sigv4.Credentials(*credentials_for(function)))
    try:
        return handler(*args)
    finally:
        sigv4.invocation_credentials.reset(token)


def current_function() -> str | None:
    """The project function whose invocation is running on this thread (set by :func:`call_as`)."""
    from collab.adapters.apigw import sigv4

    creds = sigv4.invocation_credentials.get()
    return None if creds is None else function_of(f"Credential={creds.access_key}/")
