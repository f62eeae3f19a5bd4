// What a strict TypeScript app gets from "@collab/client" (the built declarations, resolved through
// the package's own `exports`). Each `@ts-expect-error` must be an error: if one compiled, tsc would
// fail with "Unused '@ts-expect-error' directive". `npm run typecheck` (and the e2e suite) runs it.
import { CollabClient, CollabError } from "@collab/client";
import type { ConnectionState, ServerFrame, Snapshot, Task, TaskChanges } from "@collab/client";
import { useConnection, useTask, useTasks } from "@collab/client/react";

const client = new CollabClient({ workspaceId: "w", getToken: async () => "token" });

// Writable fields are typed exactly.
void client.updateTask("id", { title: "x", priority: "high", due_date: "2026-05-01", assigned_to: null });
// @ts-expect-error a misspelt field does not compile
void client.updateTask("id", { titel: "x" });
// @ts-expect-error a bad enum value does not compile
void client.createTask({ title: "x", priority: "critical" });
// @ts-expect-error a draft needs a title
void client.createTask({ priority: "low" });
// @ts-expect-error title cannot be cleared with null (only due_date and assigned_to can)
const cleared: TaskChanges = { title: null };
// @ts-expect-error a read-only field is not writable
void client.updateTask("id", { version: 3 });

// Mutations return the committed task.
async function committed(): Promise<string> {
  const task: Task = await client.updateTask("id", { status: "done" });
  return task.status;
}

// The state is an enum, not a string.
const state: ConnectionState = client.getSnapshot().connection.state;
// @ts-expect-error "denied" is not a state
const wrong: ConnectionState = "denied";

// Events are typed: the detail of each is known.
const off = client.on("rejected", ({ action, error }) => {
  const code: CollabError["code"] = error.code;
  return [action, code];
});
// @ts-expect-error no such event
client.on("tasks-changed", () => undefined);
off();

// Server frames are a discriminated union on `type`.
function seqOf(frame: ServerFrame): number | null {
  switch (frame.type) {
    case "task.updated":
      return frame.seq; // narrowed to TaskEvent
    case "ack":
      return frame.data.seq ?? null; // narrowed to Ack
    default:
      // @ts-expect-error only workspace events carry seq
      return frame.seq;
  }
}

// Snapshots are immutable.
function mutate(s: Snapshot): void {
  // @ts-expect-error readonly array
  s.tasks.push(s.tasks[0]!);
  // @ts-expect-error readonly field
  s.unreadCount = 0;
}

// The React hooks return the snapshot's parts.
function Hooks(): string {
  const tasks = useTasks();
  const one = useTask(tasks[0]?.id);
  const { state: s } = useConnection();
  return `${tasks.length} ${one?.title ?? ""} ${s}`;
}

export { cleared, committed, Hooks, mutate, seqOf, state, wrong };
