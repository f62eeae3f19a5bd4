"""Collab: the real-time collaboration backend of a task board - what Lambda runs (the layer).

Packages by role (docs/architecture.md draws them and follows a ``task.update`` through them):

- ``ws``, ``http`` - entry points: one module per WebSocket route; the HTTP API's routers.
- ``domain`` - tasks, workspaces, members, users, notifications, presence, sync, events, access.
- ``protocol`` - the WebSocket frames (client frames, server frames, their JSON text); ``models`` -
  the objects they and the HTTP API carry.
- ``auth`` - access tokens and WebSocket tickets.
- ``adapters`` - ``postgres`` (connection, migrations), ``redis`` (store, keys, Lua scripts),
  ``apigw`` (the Management API client, its HTTP/1.1 pool, SigV4).
- ``config``, ``errors``, ``clock``, ``observability``; ``runtime`` builds the adapters once per
  container for ``functions/*/handler.py``.
"""

__version__ = "0.1.0"
