-- Collaboration (contract v1.3): field provenance, change records for undo/redo and task history.
--
-- tasks.fields: per writable field, who changed it last, at which version and when:
--   {"title": {"by": "<user id>", "version": 7, "at": "<timestamptz>"}, ...}
-- Written in the same UPDATE as the field itself (domain/tasks.py), so it can never disagree with
-- the row. A field absent was last set by the task's creation (created_by, version 1, created_at).
-- Rows changed before this migration start with every field marked as of their last change.
ALTER TABLE tasks ADD COLUMN fields jsonb NOT NULL DEFAULT '{}'::jsonb;
UPDATE tasks SET fields = (
    SELECT jsonb_object_agg(f, jsonb_build_object('by', updated_by, 'version', version, 'at', updated_at))
    FROM unnest(ARRAY['title', 'description', 'status', 'priority', 'due_date', 'assigned_to']) AS f
) WHERE version > 1;

-- activity.changes: what a task change did, field by field ({"title": {"from": .., "to": ..}}),
-- the source of task history and of undo/redo. NULL for events that are not task changes, and for
-- rows written before this migration (their history shows no field diffs).
-- activity.kind: the request that made the change: create | update | delete | undo | redo.
-- activity.target_seq: for undo and redo, the seq of the change they revert or re-apply.
ALTER TABLE activity ADD COLUMN changes jsonb;
ALTER TABLE activity ADD COLUMN kind text
    CHECK (kind IS NULL OR kind IN ('create', 'update', 'delete', 'undo', 'redo'));
ALTER TABLE activity ADD COLUMN target_seq bigint;

-- A task's history, newest first (GET /tasks/{id}/history), and the text a description was
-- edited from (the merge's base): both read a task's rows by seq.
CREATE INDEX activity_task_idx ON activity (workspace_id, task_id, seq) WHERE task_id IS NOT NULL;
-- The latest undo or redo of a change (whether it is undone now).
CREATE INDEX activity_target_idx ON activity (workspace_id, target_seq, seq) WHERE target_seq IS NOT NULL;
