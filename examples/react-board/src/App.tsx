/**
 * The board in React. Live state (tasks, presence, notifications, the connection) comes from the
 * @collab/client hooks; request/response reads (the workspace's name, its members) from TanStack
 * Query over the client's `api()`, which carries the token and refreshes it on a 401.
 * `TaskCard` is memoised on its task: the client keeps a task's object while it is unchanged, so a
 * remote edit re-renders only the card it touched (`window.__renders` counts, for the e2e test).
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { CollabError, FIELD_LIMITS, TASK_STATUS_VALUES } from "@collab/client";
import type { TaskView } from "@collab/client";
import { useCollabClient, useConnection, useNotifications, usePresence, useTasks } from "@collab/client/react";
import { memo, useEffect, useState } from "react";
import type { FormEvent } from "react";

type Status = (typeof TASK_STATUS_VALUES)[number];
const LABEL: Record<Status, string> = { todo: "To do", in_progress: "In progress", done: "Done" };
const renders: Record<string, number> = ((window as unknown as { __renders: Record<string, number> }).__renders = {});

interface Member {
  user_id: string;
  display_name: string;
  role: string;
}

function useWorkspace() {
  const client = useCollabClient();
  return useQuery({
    queryKey: ["workspace", client.workspaceId],
    queryFn: () => client.api<{ id: string; name: string }>("GET", `/workspaces/${client.workspaceId}`),
    enabled: client.workspaceId !== "",
  });
}

function useMembers() {
  const client = useCollabClient();
  return useQuery({
    queryKey: ["members", client.workspaceId],
    queryFn: async () => (await client.api<{ items: Member[] }>("GET", `/workspaces/${client.workspaceId}/members`)).items,
    enabled: client.workspaceId !== "",
  });
}

export function App() {
  const client = useCollabClient();
  const queries = useQueryClient();
  const workspace = useWorkspace();
  // A membership event invalidates the members query: TanStack Query refetches it.
  useEffect(() => client.on("members", () => void queries.invalidateQueries({ queryKey: ["members"] })), [client, queries]);
  return (
    <>
      <header style={styles.top}>
        <h1 style={{ fontSize: 18, margin: 0 }} data-testid="workspace-name">
          {workspace.data?.name ?? "Collab"}
        </h1>
        <ConnectionBadge />
        <span style={{ flex: 1 }} />
        <Presence />
        <NotificationCount />
      </header>
      <main style={{ padding: 16 }}>
        <NewTask />
        <Columns />
      </main>
    </>
  );
}

function ConnectionBadge() {
  const { state, pendingOps, error } = useConnection();
  return (
    <span role="status" aria-live="polite" data-testid="conn-state" data-state={state} style={styles.badge}>
      {state}
      {pendingOps > 0 ? ` · ${pendingOps} unsaved` : ""}
      {error ? ` · ${error.message}` : ""}
    </span>
  );
}

function Presence() {
  const people = usePresence();
  return (
    <ul aria-label="Who is here" style={styles.inline} data-testid="presence-list">
      {people.map((p) => (
        <li key={p.user.id} data-testid="presence-item" data-user-id={p.user.id} data-status={p.status}>
          {p.user.display_name}
          {p.status === "away" ? " (away)" : ""}
        </li>
      ))}
    </ul>
  );
}

function NotificationCount() {
  const { unreadCount } = useNotifications();
  return <span data-testid="notif-count">{unreadCount} unread</span>;
}

function NewTask() {
  const client = useCollabClient();
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    const text = title.trim();
    if (!text) return;
    setTitle("");
    setError(null);
    try {
      await client.createTask({ title: text }); // resolves with the committed task
    } catch (err) {
      setTitle(text); // refused: give the text back to fix
      setError(err instanceof CollabError ? `${err.code}: ${err.message}` : String(err));
    }
  }
  return (
    <form onSubmit={submit} style={{ display: "flex", gap: 8, marginBottom: 16 }}>
      <input
        aria-label="New task title"
        data-testid="new-task-title"
        value={title}
        maxLength={FIELD_LIMITS.title.maxLength}
        onChange={(e) => setTitle(e.target.value)}
        style={{ flex: 1, padding: 8, border: "1px solid #7a869a", borderRadius: 6 }}
      />
      <button type="submit" data-testid="new-task-submit">
        Add
      </button>
      {error ? (
        <p role="alert" data-testid="new-task-error">
          {error}
        </p>
      ) : null}
    </form>
  );
}

function Columns() {
  const tasks = useTasks();
  const members = useMembers();
  const names = new Map((members.data ?? []).map((m) => [m.user_id, m.display_name]));
  return (
    <div style={styles.columns}>
      {TASK_STATUS_VALUES.map((status) => (
        <section key={status} data-testid={`column-${status}`} aria-label={LABEL[status]} style={styles.column}>
          <h2 style={{ fontSize: 13, textTransform: "uppercase", margin: "4px 0 8px" }}>{LABEL[status]}</h2>
          <ul style={styles.cards}>
            {tasks
              .filter((t) => t.status === status)
              .map((t) => (
                <TaskCard key={t.id} task={t} assignee={t.assigned_to ? names.get(t.assigned_to) ?? t.assigned_to : null} />
              ))}
          </ul>
        </section>
      ))}
    </div>
  );
}

const TaskCard = memo(function TaskCard({ task, assignee }: { task: TaskView; assignee: string | null }) {
  renders[task.id] = (renders[task.id] ?? 0) + 1;
  const client = useCollabClient();
  const index = TASK_STATUS_VALUES.indexOf(task.status);
  const move = (step: number) => {
    const next = TASK_STATUS_VALUES[index + step];
    if (next) void client.updateTask(task.id, { status: next });
  };
  return (
    <li data-testid="task-card" data-task-id={task.id} data-pending={String(task.pending)} style={styles.card}>
      <span data-testid="task-title">{task.title}</span>
      <small>
        {task.priority}
        {task.due_date ? ` · due ${task.due_date}` : ""}
        {assignee ? ` · ${assignee}` : ""}
      </small>
      <span>
        <button type="button" data-testid="task-move-left" disabled={index === 0} onClick={() => move(-1)} aria-label={`Move ${task.title} left`}>
          ◀
        </button>
        <button
          type="button"
          data-testid="task-move-right"
          disabled={index === TASK_STATUS_VALUES.length - 1}
          onClick={() => move(1)}
          aria-label={`Move ${task.title} right`}
        >
          ▶
        </button>
      </span>
    </li>
  );
});

const styles = {
  top: { display: "flex", flexWrap: "wrap", gap: 12, alignItems: "center", padding: "10px 16px", borderBottom: "1px solid #dfe1e6" },
  badge: { fontSize: 13, padding: "2px 8px", borderRadius: 999, background: "#e9f2ff", color: "#0055cc" },
  inline: { display: "flex", gap: 8, listStyle: "none", margin: 0, padding: 0 },
  columns: { display: "grid", gridTemplateColumns: "repeat(auto-fit, minmax(220px, 1fr))", gap: 12 },
  column: { background: "#ebecf0", borderRadius: 8, padding: 10 },
  cards: { listStyle: "none", margin: 0, padding: 0, display: "flex", flexDirection: "column", gap: 8 },
  card: { background: "#fff", borderRadius: 6, padding: 10, display: "flex", flexDirection: "column", gap: 6 },
} as const;
