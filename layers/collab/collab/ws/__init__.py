"""The WebSocket routes, one module each (``connect``, ``disconnect``, ``heartbeat``, ``message``,
``sweeper``), called by ``functions/<route>/handler.py``; ``context`` holds what they share."""
