-- Exactly-once that survives Redis (issue 13), single-use tickets for good, and the indexes that
-- retention pruning and workspace deletion need.

-- The request ledger: the first answer of every mutating request, written in the mutation's own
-- transaction. Key: the user and their request id (WebSocket `request_id`) or idempotency key
-- (HTTP `Idempotency-Key`, prefixed with the route so two routes never share one). `fingerprint`
-- is a hash of what the request asked for: the same key with another body is refused, not replayed.
CREATE TABLE request_ledger (
    user_id       text NOT NULL,
    request_key   text NOT NULL CHECK (length(request_key) BETWEEN 1 AND 300),
    fingerprint   text NOT NULL DEFAULT '',
    status        integer NOT NULL DEFAULT 200,
    answer        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, request_key)
);
CREATE INDEX request_ledger_created_idx ON request_ledger (created_at);

-- WebSocket tickets that opened a connection: a ticket opens one connection, ever, even after
-- Redis lost its state. Rows are pruned once the ticket has expired (it is refused by its exp).
CREATE TABLE used_tickets (
    jti           text PRIMARY KEY CHECK (length(jti) BETWEEN 8 AND 64),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX used_tickets_expires_idx ON used_tickets (expires_at);

-- Retention pruning reads activity and notifications by age; workspace deletion cascades through
-- tasks and notifications by workspace_id (tasks_workspace_idx only covers live tasks).
CREATE INDEX activity_created_idx ON activity (created_at);
CREATE INDEX notifications_created_idx ON notifications (created_at);
CREATE INDEX notifications_workspace_idx ON notifications (workspace_id) WHERE workspace_id IS NOT NULL;
CREATE INDEX tasks_workspace_all_idx ON tasks (workspace_id) WHERE workspace_id IS NOT NULL;

-- Identity: an email is bound to an account only when the token does not say it is unverified,
-- and is never moved off an account whose token verified it (email_verified: true).
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
