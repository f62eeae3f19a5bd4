"""API Gateway's Management API: ``management`` (post and delete connections, the fan-out), over
``http_pool`` (non-blocking keep-alive HTTP/1.1 from one thread) and ``sigv4`` (request signing)."""
