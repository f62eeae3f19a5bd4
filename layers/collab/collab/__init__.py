"""Collab: the real-time collaboration backend of a task board.

Layout (read top to bottom):

- ``config``, ``errors``, ``clock`` - settings, the one error tree, the injectable clock.
- ``protocol``, ``models`` - the wire protocol and the objects it carries (pydantic).
- domain: ``tasks``, ``workspaces``, ``presence``, ``notifications``, ``realtime``, ``sync``.
- adapters: ``db`` (Postgres), ``store`` (Redis), ``gateway`` (API Gateway Management API).
- ``runtime`` builds the adapters once per container; ``functions/*/handler.py`` call into it.
"""

__version__ = "0.1.0"
