"""The domain: plain functions over the adapters. Each mutation is one Postgres transaction that also
records its activity row and seq (``events.record``); what it committed is published after the
commit (``events.publish``)."""
