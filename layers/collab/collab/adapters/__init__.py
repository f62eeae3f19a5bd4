"""Adapters at the edges: Postgres, Redis and the API Gateway Management API. Each translates its
driver's failures into the error tree (``collab.errors``) and holds nothing the domain decides."""
