"""Who is calling: access tokens (``tokens``; HS256 or a JWKS) and single-use WebSocket tickets
(``tickets``; verified with the standard library for ``$connect``'s cold start)."""
