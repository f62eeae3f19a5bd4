"""Lambda's Invoke API, for splitting a large fan-out across invocations (collab.domain.fanout)."""
