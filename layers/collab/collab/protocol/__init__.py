"""The WebSocket protocol (contract section 3): ``client_frames`` (what clients send, parsed and
validated), ``server_frames`` (what the server sends, as models for the JSON Schema), ``wire`` (server
frames as plain dicts and their JSON text, free of pydantic for the cold-start-critical routes)."""
