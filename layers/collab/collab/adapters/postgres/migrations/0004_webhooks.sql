-- Webhooks (docs/operations.md): endpoints registered by a workspace's admins, and what was sent.
--
-- delivered_seq is the endpoint's cursor: every event with a smaller or equal seq has been answered
-- 2xx (or skipped as a type it does not want). The worker sends seq delivered_seq + 1 onwards, in
-- order, and moves the cursor only after a 2xx: at-least-once, in seq order, per endpoint.
-- failing_since / attempts / next_attempt_at are the retry state (backoff for 24 h), disabled_at
-- ends it. The secret is kept to sign with; it is shown to the admin once, at creation.
CREATE TABLE webhooks (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id     uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    event_types      text[] NOT NULL DEFAULT '{}',  -- empty: every type
    secret           text NOT NULL,
    created_by       text NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_seq    bigint NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    attempts         integer NOT NULL DEFAULT 0,
    failing_since    timestamptz,
    next_attempt_at  timestamptz,
    last_error       text,
    disabled_at      timestamptz
);
CREATE INDEX webhooks_workspace_idx ON webhooks (workspace_id, created_at);
-- The scheduled tick: enabled endpoints that are behind and due.
CREATE INDEX webhooks_due_idx ON webhooks (next_attempt_at) WHERE disabled_at IS NULL;

-- One row per HTTP attempt (and per redelivery), pruned after 7 days by the tick.
CREATE TABLE webhook_deliveries (
    id           bigserial PRIMARY KEY,
    webhook_id   uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    attempt      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'refused')),
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL DEFAULT 0,
    redelivery   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, id DESC);
