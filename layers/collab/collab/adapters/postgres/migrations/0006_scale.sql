-- Large workspaces and the sweeper at scale (issue 15).
--
-- The member cap is a setting now (LIMIT_MEMBERS_PER_WORKSPACE, default 50, at most 1,000):
-- collab.domain.members.add_member checks it under the workspace row's lock (every membership
-- change takes that lock first, so no race lets one more in). The CHECK stays as the hard ceiling
-- that no setting can pass.
ALTER TABLE workspaces DROP CONSTRAINT workspaces_member_count_check;
ALTER TABLE workspaces ADD CONSTRAINT workspaces_member_count_check CHECK (member_count BETWEEN 0 AND 1000);

-- Revocations the sweeper still has to reconcile with Redis: one row per member removed (user_id)
-- or workspace deleted (user_id NULL), written in the mutation's own transaction. The sweeper
-- closes whatever live connection those left behind (Redis failed during the removal, or a
-- $connect that checked membership just before it) and deletes the rows once a sweep that began a
-- minute after them has succeeded. So each sweep's work grows with the recent revocations, not with
-- every live connection. No foreign key: a deleted workspace's row must outlive the workspace.
CREATE TABLE revocations (
    id            bigserial PRIMARY KEY,
    workspace_id  uuid NOT NULL,
    user_id       text,
    at            timestamptz NOT NULL DEFAULT now()
);
