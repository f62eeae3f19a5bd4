-- Collab schema v1. Applied by `collab migrate` inside one transaction.
-- Timestamps are server-side (now()), never taken from clients.

CREATE TABLE users (
    id            text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    email         text,
    display_name  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email IS NOT NULL;

-- last_seq is the per-workspace event counter behind `seq`: taking the next seq is an
-- UPDATE ... RETURNING on this row inside the mutation's transaction, so seqs are contiguous
-- and ordered by commit. member_count is kept by trigger and capped by CHECK, so the
-- 50-member limit holds under any concurrency (the row lock serialises concurrent joins).
CREATE TABLE workspaces (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_by    text NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seq      bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    member_count  integer NOT NULL DEFAULT 0 CHECK (member_count BETWEEN 0 AND 50)
);

CREATE TABLE workspace_members (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id       text NOT NULL REFERENCES users (id),
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE FUNCTION workspace_member_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE workspaces SET member_count = member_count + 1 WHERE id = NEW.workspace_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE workspaces SET member_count = member_count - 1 WHERE id = OLD.workspace_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER workspace_members_count
    AFTER INSERT OR DELETE ON workspace_members
    FOR EACH ROW EXECUTE FUNCTION workspace_member_count();

CREATE TABLE tasks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id  uuid REFERENCES workspaces (id) ON DELETE CASCADE,  -- NULL: a personal task
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status        text NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    priority      text NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    due_date      date,
    assigned_to   text REFERENCES users (id),
    created_by    text NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text NOT NULL REFERENCES users (id),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    deleted       boolean NOT NULL DEFAULT false
);
-- Listing a workspace's tasks (cursor: created_at, id) and a user's personal tasks.
CREATE INDEX tasks_workspace_idx ON tasks (workspace_id, created_at, id) WHERE NOT deleted;
CREATE INDEX tasks_personal_idx ON tasks (created_by, created_at, id)
    WHERE workspace_id IS NULL AND NOT deleted;
CREATE INDEX tasks_assigned_idx ON tasks (assigned_to) WHERE assigned_to IS NOT NULL;

-- The activity log: one row per workspace event; (workspace_id, seq) is the replay order.
CREATE TABLE activity (
    workspace_id  uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq >= 1),
    actor_id      text NOT NULL REFERENCES users (id),
    type          text NOT NULL,
    task_id       uuid,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, seq)
);

CREATE TABLE notifications (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text NOT NULL REFERENCES users (id),
    type          text NOT NULL,
    workspace_id  uuid REFERENCES workspaces (id) ON DELETE CASCADE,
    task_id       uuid,
    actor_id      text REFERENCES users (id),
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    read_at       timestamptz
);
-- A user's undelivered notifications (sync) and unread ones (GET /notifications?unread=true).
CREATE INDEX notifications_undelivered_idx ON notifications (user_id, created_at)
    WHERE delivered_at IS NULL;
CREATE INDEX notifications_unread_idx ON notifications (user_id, created_at) WHERE read_at IS NULL;
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at, id);
