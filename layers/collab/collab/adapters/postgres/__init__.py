"""Postgres: ``database`` (one connection per container, one transaction per call), ``migrate``
and the numbered SQL files in ``migrations/``."""
