/**
 * `@collab/client`: the Collab board's browser client. `CollabClient` speaks the WebSocket protocol
 * (contract section 3); the protocol's types are generated from the server's pydantic models.
 * React bindings are the `@collab/client/react` subpath.
 */
export {
  AWAY_HEARTBEAT_MS,
  CollabClient,
  EDITING_REFRESH_MS,
  EDITING_TTL_MS,
  fieldMark,
  HEARTBEAT_MS,
  HEARTBEAT_TIMEOUT_MS,
  HIDDEN_AWAY_MS,
  IDLE_MS,
  MAX_FRAME_BYTES,
  MUTATION_TIMEOUT_MS,
  OPEN_TIMEOUT_MS,
  PROBE_AFTER_MS,
  TERMINAL_STATES,
  tokenClaims,
  UNDO_DEPTH,
  uuid4,
} from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  Connection,
  ConnectionState,
  EditingView,
  HistoryEntry,
  HistoryPage,
  MutationAction,
  PendingChange,
  Snapshot,
  TaskField,
  TaskView,
  TokenReason,
} from "./client.js";
export { IndexedDbOutbox } from "./outbox.js";
export type { Outbox, OutboxEntry } from "./outbox.js";
export { CollabError, HttpError } from "./errors.js";
export type { ErrorCode, ServerErrorCode } from "./errors.js";
export type { Listener } from "./emitter.js";
export { DEFAULT_BUDGET, TokenBucket } from "./pacer.js";
export type { Budget } from "./pacer.js";
export { charCount, checkChanges, checkDraft, fieldProblem } from "./validate.js";
export { FIELD_LIMITS, MAX_NOTIFICATION_IDS, TASK_PRIORITY_VALUES, TASK_STATUS_VALUES } from "./protocol.js";
export type * from "./protocol.js";
