"""The local stack behind ``collab dev``: API Gateway's WebSocket API, Management API and HTTP API
on one port, invoking the project's real Lambda handlers (contract section 6, docs/local.md).

``framing``  API Gateway's frame and message size rules, on the raw byte stream (sans-I/O)
``events``   events and context objects shaped exactly as AWS sends them (pure functions)
``lambdas``  the functions of ``functions/<name>/handler.py``, loaded on first invocation
``gateway``  the aiohttp application: routing, time limits, $disconnect, Management and HTTP API
``seed``     the demo workspace, created through the HTTP API handler
``server``   ``collab dev``: services, schema, secret, gateway, demo, clean shutdown
"""
