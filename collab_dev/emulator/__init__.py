"""API Gateway on one machine: the WebSocket API, the Management API and the HTTP API on one port,
invoking the project's real Lambda handlers (contract section 6, docs/local.md).

``frame_limits``       API Gateway's frame and message size rules, on the raw byte stream (sans-I/O)
``lambda_events``      events and context objects shaped exactly as AWS sends them (pure functions)
``lambda_loader``      the functions of ``functions/<name>/handler.py``, loaded on first invocation
``local_gateway``      the aiohttp application: routing, time limits, $disconnect, the HTTP API
``management_server``  the Management API's own HTTP/1.1 server on the same port
``worker_pool``        the functions in worker processes, each a Lambda container (``collab dev --workers``)
"""
