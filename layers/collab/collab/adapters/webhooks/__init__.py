"""Webhooks out: Standard Webhooks ``signing``, the SSRF rules (``addresses``) and the ``sender``."""
