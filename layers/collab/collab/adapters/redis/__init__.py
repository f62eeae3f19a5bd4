"""Redis: ``store`` (every piece of Redis state, docs/redis.md), ``keys`` (the key layout and hash
tags), and the Lua scripts in ``scripts/``."""
