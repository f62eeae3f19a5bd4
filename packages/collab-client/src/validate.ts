/**
 * A change checked against the schema's limits before it is sent (generated into protocol.ts from
 * the pydantic models): a title of 205 characters is refused here, with its field, instead of
 * appearing on the board and vanishing when the server refuses it.
 */
import { CollabError } from "./errors.js";
import { FIELD_LIMITS, TASK_PRIORITY_VALUES, TASK_STATUS_VALUES } from "./protocol.js";
import type { TaskChanges, TaskDraft } from "./protocol.js";

type LimitedField = keyof typeof FIELD_LIMITS;
const PATTERNS = new Map<string, RegExp>(
  Object.entries(FIELD_LIMITS).map(([name, limit]) => [name, new RegExp(limit.pattern, "u")]),
);
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Characters as the server counts them (code points, not UTF-16 units). */
export function charCount(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** Why `value` is not a valid `field`, or null. */
export function fieldProblem(field: string, value: unknown): string | null {
  if (field in FIELD_LIMITS) {
    const limit = FIELD_LIMITS[field as LimitedField];
    if (value === null) return limit.nullable ? null : `${field} cannot be empty`;
    if (typeof value !== "string") return `${field} must be text`;
    const n = charCount(value);
    if (n < limit.minLength) return limit.minLength === 1 ? `${field} cannot be empty` : `${field} is too short`;
    if (n > limit.maxLength) return `${field} is at most ${limit.maxLength} characters (this one has ${n})`;
    if (limit.pattern && !PATTERNS.get(field)?.test(value)) {
      return field === "title" ? "title cannot be blank or hold control characters" : `${field} holds control characters`;
    }
    return null;
  }
  switch (field) {
    case "status":
      return (TASK_STATUS_VALUES as readonly unknown[]).includes(value) ? null : `status must be one of ${TASK_STATUS_VALUES.join(", ")}`;
    case "priority":
      return (TASK_PRIORITY_VALUES as readonly unknown[]).includes(value)
        ? null
        : `priority must be one of ${TASK_PRIORITY_VALUES.join(", ")}`;
    case "due_date":
      return value === null || (typeof value === "string" && DATE.test(value) && !Number.isNaN(Date.parse(value)))
        ? null
        : "due_date must be a date (YYYY-MM-DD) or null";
    case "id":
      return null;
    default:
      return `${field} is not a writable field`;
  }
}

function check(fields: Record<string, unknown>): CollabError | null {
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const problem = fieldProblem(field, value);
    if (problem) return new CollabError("validation_error", problem, { field });
  }
  return null;
}

/** The first problem of a new task, or null. */
export function checkDraft(draft: TaskDraft): CollabError | null {
  if (draft.title === undefined) return new CollabError("validation_error", "title is required", { field: "title" });
  return check(draft as unknown as Record<string, unknown>);
}

/** The first problem of a change, or null. */
export function checkChanges(changes: TaskChanges): CollabError | null {
  return check(changes as unknown as Record<string, unknown>);
}
