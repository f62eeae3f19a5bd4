/**
 * Collab browser client: the WebSocket protocol of contract section 3 behind an API a framework can
 * subscribe to.
 *
 *   const client = new CollabClient({ workspaceId, getToken: () => auth.accessToken() });
 *   const stop = client.subscribe(() => render(client.getSnapshot()));
 *   client.start();
 *   const task = await client.updateTask(id, { title: "New title" });
 *
 * What it does for the page:
 * - connects with a fresh single-use ticket (POST /api/ws-tickets) every time, asking `getToken()`
 *   for the access token on every (re)connect and again when the server says `unauthorized` (an
 *   expired token is refreshed, not shown as "access denied"); sends `sync` first (nothing can reach
 *   a connection during $connect), loads tasks over HTTP on the first sync and replays missed events
 *   (by `seq`) on every later one; a reply whose `data.seq` is beyond what it applied (the server
 *   pages long replays), or with `more_notifications: true`, is followed by another `sync`;
 * - refusals are specific and final only when retrying cannot help: `unauthorized` (the token was
 *   refused even after a refresh), `forbidden` (not a member, or no such workspace), `invalid` (a
 *   request the API calls malformed, such as a workspace id that is not a UUID); `start()` or
 *   `reconnectNow()` tries again from any of them;
 * - presence by mode (v1.2): a visible tab in use is `active` and heartbeats every 30 s; a tab hidden
 *   for `hiddenAwayMs` (10 s) or without input for `idleMs` (5 min) is `away` and heartbeats every
 *   `awayHeartbeatMs` (7 min). A switch is sent at once, as a heartbeat naming the mode;
 * - heartbeats are quiet (v1.2: they carry `seq`; the server answers only when there is something to
 *   say): any frame from the server is a sign of life; after `probeAfterMs` of silence, and whenever
 *   the tab comes back, the heartbeat asks for an answer (`probe: true`), and no frame within
 *   `heartbeatTimeoutMs` means a dead socket (the same after sending a change, whose `ack` is due);
 *   the browser's `offline` event drops the socket at once and `online` reconnects at once;
 * - reconnects with exponential backoff and full jitter (first retry within 100 ms, cap ~10 s); the
 *   state stays `offline` across attempts until a socket opens (no flicker);
 * - applies a task event only when its `version` is higher than the one held (deletion is a
 *   tombstone), and syncs when a gap in `seq` is still open after a short grace;
 * - keeps optimistic changes as pending operations (by `request_id`) on top of the server's state,
 *   checked against the schema's limits before they are queued, paced by a token bucket under the
 *   server's frame budget, re-sent with the same `request_id` after a reconnect; each mutation
 *   returns a promise of the committed task (or a `CollabError`);
 * - publishes an immutable snapshot (`getSnapshot()`, `subscribe()`): unchanged tasks keep their
 *   object, unchanged lists keep their array, so memoised views re-render only for what changed.
 */
import { Emitter } from "./emitter.js";
import { CollabError, HttpError } from "./errors.js";
import { DEFAULT_BUDGET, TokenBucket } from "./pacer.js";
import type { Budget } from "./pacer.js";
import { IndexedDbOutbox } from "./outbox.js";
import type { Outbox, OutboxEntry } from "./outbox.js";
import type {
  AckData,
  EditingTarget,
  ErrorBody,
  FieldMark,
  HeartbeatAckData,
  MemberEvent,
  Notification,
  NotificationRead,
  Overwrite,
  PresenceBatchEvent,
  PresenceEditingData,
  PresenceEntry,
  ServerFrame,
  SyncData,
  Task,
  TaskChanges,
  TaskCreate,
  TaskDelete,
  TaskDraft,
  TaskEvent,
  TaskOverwrittenData,
  TaskRedo,
  TaskUndo,
  TaskUpdate,
  UserRef,
} from "./protocol.js";
import { checkChanges, checkDraft } from "./validate.js";

/** API Gateway's frame limit: a larger frame closes the connection (1009), so refuse it here. */
export const MAX_FRAME_BYTES = 32 * 1024;
/** Clients heartbeat every 30 s (contract 3.2); the server drops connections silent for 60 s. */
export const HEARTBEAT_MS = 30_000;
/** An away tab (hidden or idle) heartbeats every 7 minutes (v1.2); the server waits 9.5 for it. */
export const AWAY_HEARTBEAT_MS = 7 * 60_000;
/** A tab hidden this long is away (a quick look at another tab changes nothing). */
export const HIDDEN_AWAY_MS = 10_000;
/** A visible tab without input (pointer, keys, wheel, touch) this long is away. */
export const IDLE_MS = 5 * 60_000;
/** Nothing heard from the server this long: the next heartbeat asks for an answer. */
export const PROBE_AFTER_MS = 10 * 60_000;
/**
 * No frame within this time after a probe or a change (whose `ack` is due): the connection is dead
 * even if the socket looks open. 6 s: a warm handler answers in milliseconds, a cold one in ~2 s.
 */
export const HEARTBEAT_TIMEOUT_MS = 6_000;
/** A WebSocket handshake that takes longer than this is abandoned and retried. */
export const OPEN_TIMEOUT_MS = 10_000;
/** A mutation's promise rejects with `timeout` after this long (the change itself stays queued). */
export const MUTATION_TIMEOUT_MS = 30_000;
/** `internal` refusals are retried this many times before rolling back. */
const MAX_RETRIES = 3;
/** `rate_limited` refusals are retried this many times (each after the server's `retry_after_ms`). */
const MAX_RATE_RETRIES = 10;
/** What counts as input for idle detection (listened to on window, passive). */
const INPUT_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"] as const;

/**
 * - `idle`: not started; `connecting`: the first connection is being made; `syncing`: the socket is
 *   open and the board is catching up; `live`: up to date, changes go out at once;
 * - `offline`: the connection was lost; it is retried (changes are queued meanwhile);
 * - `unauthorized`: the access token was refused even after `getToken()` gave a fresh one;
 * - `forbidden`: the user is not a member of the workspace, or it does not exist;
 * - `invalid`: the API called the request malformed (a workspace id that is not a UUID);
 * - `stopped`: `stop()` was called.
 * `unauthorized`, `forbidden` and `invalid` are not retried on their own; `start()` and
 * `reconnectNow()` try again.
 */
export type ConnectionState =
  | "idle"
  | "connecting"
  | "syncing"
  | "live"
  | "offline"
  | "unauthorized"
  | "forbidden"
  | "invalid"
  | "stopped";

/** States the client does not leave by itself. */
export const TERMINAL_STATES: readonly ConnectionState[] = ["unauthorized", "forbidden", "invalid", "stopped"];

/** Why `getToken()` is called: every (re)connect, and after the server refused the last token. */
export type TokenReason = "connect" | "unauthorized";

/** A task as the user should see it: the committed state with this user's pending changes on top. */
export type TaskView = Readonly<Task> & { readonly pending: boolean };

/** The actions a mutation sends. */
export type MutationAction = "task.create" | "task.update" | "task.delete" | "notification.read" | "task.undo" | "task.redo";

/** v1.3: someone else's editing indicator, shown until `expiresAt` (local clock). */
export interface EditingView {
  readonly user: UserRef;
  readonly task_id: string;
  readonly field: TaskField;
  readonly expiresAt: number;
}

/** A change waiting for its `ack` (also kept in the durable outbox while it waits). */
export interface PendingChange {
  readonly requestId: string;
  readonly action: MutationAction;
  readonly taskId: string | null;
  readonly changes: Readonly<Record<string, unknown>> | null;
  /** Sent on the current connection (false: queued, offline, or waiting for the bucket). */
  readonly sent: boolean;
}

/** One entry of `GET /tasks/{id}/history` (v1.3). */
export interface HistoryEntry {
  readonly seq: number;
  readonly actor: UserRef;
  readonly at: string;
  readonly type: "task.created" | "task.updated" | "task.deleted";
  readonly kind: "create" | "update" | "delete" | "undo" | "redo" | null;
  readonly target_seq?: number | null;
  readonly changes: Readonly<Record<string, { from: unknown; to: unknown }>>;
}

export interface HistoryPage {
  readonly items: readonly HistoryEntry[];
  readonly next_cursor: string | null;
}

export interface Connection {
  readonly state: ConnectionState;
  /** Why the client is in this state ("closed (1006)", "network offline", the server's message...). */
  readonly reason: string | null;
  /** The refusal behind `unauthorized`, `forbidden` and `invalid`. */
  readonly error: CollabError | null;
  /** Changes not yet acknowledged by the server. */
  readonly pendingOps: number;
  /** What the browser says about the network (`navigator.onLine`, `online`/`offline` events). */
  readonly online: boolean;
}

/** Everything a view needs, immutable: a new object only when something in it changed. */
export interface Snapshot {
  readonly connection: Connection;
  /** The board: tasks not deleted, committed plus pending. */
  readonly tasks: readonly TaskView[];
  readonly taskById: ReadonlyMap<string, TaskView>;
  /** Who is here, by display name. */
  readonly presence: readonly PresenceEntry[];
  /** Newest first. */
  readonly notifications: readonly Notification[];
  readonly unreadCount: number;
  /** v1.3: others' editing indicators that have not expired. */
  readonly editing: readonly EditingView[];
  /** Changes not yet acknowledged, oldest first. */
  readonly outbox: readonly PendingChange[];
  /** v1.3: the user's own acknowledged changes that `undo()` / `redo()` would act on (newest last). */
  readonly undoStack: readonly number[];
  readonly redoStack: readonly number[];
}

export interface ClientEvents {
  /** Anything in the snapshot changed (coalesced: once per task turn). */
  change: Snapshot;
  state: { state: ConnectionState; reason: string | null; error: CollabError | null };
  tasks: readonly TaskView[];
  presence: readonly PresenceEntry[];
  notifications: readonly Notification[];
  /** An optimistic change was refused and rolled back. */
  rejected: { action: MutationAction; taskId: string | null; error: CollabError };
  /** An `error` frame (a frame the server could not read). */
  servererror: CollabError;
  /** A membership event of the workspace (`member.added`, `member.removed`, `member.role_changed`). */
  members: { frame: MemberEvent };
  /** A change was acknowledged: its `seq` names it for `undo(seq)`. */
  acked: { action: MutationAction; requestId: string; taskId: string | null; seq: number | null; task: Task | null };
  /**
   * v1.3 conflict receipt: this user's `task.update` replaced fields someone else had changed after
   * the version the user saw (`overwrote`), or merged a concurrent description (`merged`).
   */
  overwrote: { task: Task; seq: number | null; overwrote: readonly Overwrite[]; merged: readonly TaskField[] };
  /** v1.3: someone else's change just replaced this user's own recent change (`task.overwritten`). */
  overwritten: TaskOverwrittenData;
  /** v1.3: others' editing indicators changed. */
  editing: readonly EditingView[];
}

export interface ClientOptions {
  /** The workspace to connect to (a UUID). */
  workspaceId: string;
  /** A fixed access token. Give `getToken` instead where tokens expire. */
  token?: string;
  /**
   * The access token, asked for on every (re)connect and when the server refused the last one
   * (`reason: "unauthorized"`: refresh it). May return a promise.
   */
  getToken?: (reason: TokenReason) => string | Promise<string>;
  /** The HTTP API's base URL ("/api" under the local gateway). */
  apiBase?: string;
  /** Heartbeat period of an active tab (30 s). */
  heartbeatMs?: number;
  /** How long a probe or a change may wait for any frame before the socket counts as dead. */
  heartbeatTimeoutMs?: number;
  /** Heartbeat period of an away tab (7 min). */
  awayHeartbeatMs?: number;
  /** A tab hidden this long is away (10 s). */
  hiddenAwayMs?: number;
  /** A visible tab without input this long is away (5 min). */
  idleMs?: number;
  /** Silence from the server this long: the next heartbeat asks for an answer (10 min). */
  probeAfterMs?: number;
  /** Reconnect backoff: a random delay up to min(cap, base * 2^attempt). */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** The first reconnect waits a random [0, firstRetryMs). */
  firstRetryMs?: number;
  /** How long a missing seq may take before a sync asks for it. */
  gapGraceMs?: number;
  /** Send pacing under the server's frame budget. */
  budget?: Budget;
  /** A mutation's promise rejects with `timeout` after this long. */
  mutationTimeoutMs?: number;
  /**
   * Where unacknowledged changes are kept across reloads and closed tabs: an `Outbox`, `true` for
   * IndexedDB (`IndexedDbOutbox`), or `false`/absent for memory only.
   */
  outbox?: Outbox | boolean;
}

interface Settle {
  resolve: (value: Task | null) => void;
  reject: (error: CollabError) => void;
  done: boolean;
}

interface PendingOp {
  requestId: string;
  action: MutationAction;
  taskId: string | null;
  frame: TaskCreate | TaskUpdate | TaskDelete | NotificationRead | TaskUndo | TaskRedo;
  sent: boolean;
  retries: number;
  previousReadAt?: Map<string, string | null>;
  settle: Settle;
}

type Timer = ReturnType<typeof setTimeout>;
type ChangeKind = "tasks" | "presence" | "notifications" | "connection" | "editing";
type OutFrame = { action: string } & Record<string, unknown>;

/** v1.3: an editing indicator is refreshed at most this often while the user types (the server keeps it 15 s). */
export const EDITING_REFRESH_MS = 5_000;
/** v1.3: the server drops an indicator this long after its last refresh. */
export const EDITING_TTL_MS = 15_000;
/** v1.3: how many of the user's own changes the undo stack keeps. */
export const UNDO_DEPTH = 50;

/** The writable fields of a task (v1.3 provenance and editing indicators name one of them). */
export type TaskField = EditingTarget["field"];

/**
 * Who changed `field` of `task` last, at which version and when (v1.3 provenance). A field absent
 * from `task.fields` was set by the creation.
 */
export function fieldMark(task: Task, field: TaskField): FieldMark {
  return task.fields?.[field] ?? { by: task.created_by, version: 1, at: task.created_at };
}

/**
 * A random (v4) UUID for task ids and request ids. `crypto.randomUUID()` exists only in secure
 * contexts (https, localhost); a board opened over plain http from another machine builds the same
 * thing from `crypto.getRandomValues()`, which exists everywhere.
 */
export function uuid4(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40; // version 4
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The claims of a JWT, unverified (for display only: the server verifies). */
export function tokenClaims(token: string): Record<string, unknown> {
  try {
    const part = (token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const claims: unknown = JSON.parse(json);
    return claims && typeof claims === "object" ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The promise itself, marked as handled: a page that does not await a mutation is told of a refusal
 * through the `rejected` event, not by an "unhandled rejection" in the console; one that awaits it
 * still gets the rejection.
 */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

function sameFields(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  return keys.every((k) => x[k] === y[k]);
}

function sameItems<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean = (x, y) => x === y): boolean {
  return a.length === b.length && a.every((x, i) => same(x, b[i] as T));
}

/** The error code an HTTP status means when the body does not say. */
function httpCode(status: number): CollabError["code"] {
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 413) return "payload_too_large";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "internal";
  return "validation_error";
}

/**
 * One user's connection to one workspace. Read with `getSnapshot()`/`subscribe()` (or the React
 * hooks), change with the mutations, listen with `on(event, listener)`. The timing fields are the
 * options of the same names (writable, so a test can shorten them).
 */
export class CollabClient extends Emitter<ClientEvents> {
  readonly workspaceId: string;
  readonly apiBase: string;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  awayHeartbeatMs: number;
  hiddenAwayMs: number;
  idleMs: number;
  probeAfterMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  firstRetryMs: number;
  gapGraceMs: number;
  mutationTimeoutMs: number;
  /** This tab's mode: what its heartbeats announce. */
  mode: "active" | "away" = "active";
  /** The signed-in user, from the token's claims (display only). */
  me: { id: string; name: string } = { id: "", name: "" };
  /** The last contiguous seq applied; null until the first sync. */
  lastSeq: number | null = null;

  private _state: ConnectionState = "idle";
  private _reason: string | null = null;
  private _error: CollabError | null = null;
  private _online: boolean = globalThis.navigator?.onLine ?? true;
  private _token: string | null;
  private readonly _getToken: ((reason: TokenReason) => string | Promise<string>) | null;
  /** Why a fresh token is needed before the next request, or null (the last one will do). */
  private _tokenDue: TokenReason | null = null;
  private readonly _bucket: TokenBucket;

  /** Committed tasks as last seen (tombstones included). */
  private _server = new Map<string, Task>();
  /** Optimistic operations in the order they were made. */
  private _pending: PendingOp[] = [];
  private _presence: ReadonlyMap<string, PresenceEntry> = new Map();
  /**
   * Newest presence change seen per user. Presence events carry no seq and are posted by concurrent
   * invocations, so an older `presence.updated` can arrive after a newer `presence.left`; `last_seen`
   * (server time, ISO with milliseconds: strings sort in time order) orders them, and a `left` is a
   * tombstone that older events cannot undo.
   */
  private _presenceSeen = new Map<string, { at: string; left: boolean }>();
  private _notes: ReadonlyMap<string, Notification> = new Map();
  private _view: Map<string, TaskView> | null = null;
  private _lastView = new Map<string, TaskView>();
  private _snapshot: Snapshot | null = null;
  /** What changed since the snapshot was built, and since listeners were last told. */
  private _dirty = new Set<ChangeKind>();
  private _changedKinds = new Set<ChangeKind>();
  private _notifyQueued = false;
  private readonly _subscribers = new Set<() => void>();
  private _flushWaiters: { resolve: () => void; reject: (e: CollabError) => void; timer: Timer }[] = [];

  /** v1.3: others' editing indicators by user id. */
  private _editing: ReadonlyMap<string, EditingView> = new Map();
  /** v1.3: what this tab is editing, and when it was last sent. */
  private _editingWanted: { task_id: string; field: TaskField } | null = null;
  private _editingSentAt = 0;
  private _editingSentKey: string | null = null;
  /** v1.3: the user's own acknowledged changes (seqs), newest last; and those undone. */
  private _undo: number[] = [];
  private _redo: number[] = [];
  private readonly _outbox: Outbox | null;
  private _outboxRestored = false;
  private _outboxOrder = 0;
  private _outboxWrites: Promise<void> = Promise.resolve();
  /** Seqs applied beyond a gap, waiting for the gap to close. */
  private _ahead = new Set<number>();
  private _ws: WebSocket | null = null;
  private _stopped = true;
  private _connecting = false;
  private _attempt = 0;
  private _syncInFlight = false;
  private _syncAgain = false;
  private _syncSince: number | null = null;
  private _loaded = false;
  /** Ids touched by events while a full load is running. */
  private _touchedDuringLoad: Set<string> | null = null;
  private _presenceWanted: { status: "active" | "away"; viewing: string | null } = { status: "active", viewing: null };
  private _timers: Record<string, Timer> = {};
  private _lastHeardAt = 0;
  private _lastInputAt = Date.now();
  private readonly _onVisibility = (): void => this._visibilityChanged();
  private readonly _onInput = (): void => this._input();
  private readonly _onOnline = (): void => {
    this._online = true;
    this._changed("connection");
    this.reconnectNow();
  };
  private readonly _onOffline = (): void => {
    this._online = false;
    this._changed("connection");
    const ws = this._ws;
    if (ws) {
      ws.close(4003, "network offline");
      this._onSocketClosed(ws, "network offline");
    }
  };

  constructor(options: ClientOptions) {
    super();
    const { token, getToken, workspaceId } = options;
    if (!token && !getToken) throw new TypeError("CollabClient needs a token or getToken");
    this.workspaceId = workspaceId;
    this.apiBase = (options.apiBase ?? "/api").replace(/\/$/, "");
    this.heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    this.awayHeartbeatMs = options.awayHeartbeatMs ?? AWAY_HEARTBEAT_MS;
    this.hiddenAwayMs = options.hiddenAwayMs ?? HIDDEN_AWAY_MS;
    this.idleMs = options.idleMs ?? IDLE_MS;
    this.probeAfterMs = options.probeAfterMs ?? PROBE_AFTER_MS;
    this.backoffBaseMs = options.backoffBaseMs ?? 250;
    this.backoffCapMs = options.backoffCapMs ?? 10_000;
    this.firstRetryMs = options.firstRetryMs ?? 100;
    this.gapGraceMs = options.gapGraceMs ?? 300;
    this.mutationTimeoutMs = options.mutationTimeoutMs ?? MUTATION_TIMEOUT_MS;
    this._bucket = new TokenBucket(options.budget ?? DEFAULT_BUDGET);
    this._getToken = getToken ?? null;
    this._token = token ?? null;
    if (token) this._adoptToken(token);
    const outbox = options.outbox;
    this._outbox = outbox === true ? new IndexedDbOutbox() : outbox ? outbox : null;
    if (!this._outbox) this._outboxRestored = true;
  }

  // -- reading -----------------------------------------------------------------------------------
  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /**
   * The current snapshot: the same object until something changes, so `useSyncExternalStore` (or
   * any `===` check) can tell. Tasks that did not change keep their object across snapshots.
   */
  getSnapshot = (): Snapshot => {
    if (this._snapshot && this._dirty.size === 0) return this._snapshot;
    const prev = this._snapshot;
    const view = this._taskView();
    const tasks = [...view.values()].filter((t) => !t.deleted);
    const presence = [...this._presence.values()].sort((a, b) => a.user.display_name.localeCompare(b.user.display_name));
    const notifications = [...this._notes.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    const connection: Connection = {
      state: this._state,
      reason: this._reason,
      error: this._error,
      pendingOps: this._pending.length,
      online: this._online,
    };
    const now = Date.now();
    const editing = [...this._editing.values()].filter((e) => e.expiresAt > now);
    const outbox: PendingChange[] = this._pending.map((op) => ({
      requestId: op.requestId,
      action: op.action,
      taskId: op.taskId,
      changes:
        op.frame.action === "task.update"
          ? (op.frame.changes as unknown as Record<string, unknown>)
          : op.frame.action === "task.create"
            ? (op.frame.task as unknown as Record<string, unknown>)
            : null,
      sent: op.sent,
    }));
    const live = new Map(tasks.map((t) => [t.id, t]));
    const sameTasks = prev !== null && sameItems(prev.tasks, tasks);
    this._snapshot = Object.freeze({
      connection: prev && sameFields(prev.connection, connection) ? prev.connection : Object.freeze(connection),
      tasks: sameTasks && prev ? prev.tasks : Object.freeze(tasks),
      taskById: sameTasks && prev ? prev.taskById : live,
      presence: prev && sameItems(prev.presence, presence) ? prev.presence : Object.freeze(presence),
      notifications: prev && sameItems(prev.notifications, notifications) ? prev.notifications : Object.freeze(notifications),
      unreadCount: notifications.filter((n) => !n.read_at).length,
      editing: prev && sameItems(prev.editing, editing) ? prev.editing : Object.freeze(editing),
      outbox: prev && sameItems(prev.outbox, outbox, sameFields) ? prev.outbox : Object.freeze(outbox),
      undoStack: prev && sameItems(prev.undoStack, this._undo) ? prev.undoStack : Object.freeze([...this._undo]),
      redoStack: prev && sameItems(prev.redoStack, this._redo) ? prev.redoStack : Object.freeze([...this._redo]),
    });
    this._dirty.clear();
    return this._snapshot;
  };

  /** Call `listener` after every change (coalesced per task turn); returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => {
    this._subscribers.add(listener);
    return () => {
      this._subscribers.delete(listener);
    };
  };

  /** The board as the user should see it: committed state plus pending changes. */
  tasks(): readonly TaskView[] {
    return this.getSnapshot().tasks;
  }

  /** One task as the user should see it, or undefined (unknown or deleted). */
  task(id: string): TaskView | undefined {
    const t = this._taskView().get(id);
    return t && !t.deleted ? t : undefined;
  }

  /** Who is here, by user id (a new map after each change). */
  get presence(): ReadonlyMap<string, PresenceEntry> {
    return this._presence;
  }

  /** Notifications by id (a new map after each change). */
  get notifications(): ReadonlyMap<string, Notification> {
    return this._notes;
  }

  /** Notifications not read yet. */
  get unreadCount(): number {
    let n = 0;
    for (const note of this._notes.values()) if (!note.read_at) n += 1;
    return n;
  }

  /** Operations not yet acknowledged by the server. */
  get pendingOps(): number {
    return this._pending.length;
  }

  /** The same as `pendingOps`. */
  get pendingCount(): number {
    return this._pending.length;
  }

  // -- lifecycle ---------------------------------------------------------------------------------
  /** Connect (or, after a refusal or `stop()`, try again). */
  start(): void {
    if (!this._stopped) {
      if (TERMINAL_STATES.includes(this._state)) this.reconnectNow();
      return;
    }
    this._stopped = false;
    globalThis.addEventListener?.("online", this._onOnline);
    globalThis.addEventListener?.("offline", this._onOffline);
    globalThis.document?.addEventListener("visibilitychange", this._onVisibility);
    for (const type of INPUT_EVENTS) globalThis.addEventListener?.(type, this._onInput, { passive: true, capture: true });
    this._lastInputAt = Date.now();
    this._online = globalThis.navigator?.onLine ?? true;
    this.mode = globalThis.document?.visibilityState === "hidden" ? "away" : "active";
    this._connect();
  }

  /** Close the connection; pending changes stay queued (`start()` sends them). */
  stop(): void {
    this._stopped = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    globalThis.removeEventListener?.("offline", this._onOffline);
    globalThis.document?.removeEventListener("visibilitychange", this._onVisibility);
    for (const type of INPUT_EVENTS) globalThis.removeEventListener?.(type, this._onInput, { capture: true });
    for (const name of Object.keys(this._timers)) this._clear(name);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "client stopped");
    for (const op of this._pending) op.sent = false;
    this._setState("stopped");
  }

  /** Drop the connection and reconnect at once (a fresh token and ticket, then sync). */
  reconnectNow(): void {
    if (this._stopped) return;
    this._attempt = 0;
    this._error = null;
    if (this._ws) {
      const ws = this._ws;
      ws.close(4000, "reconnecting");
      this._onSocketClosed(ws, "reconnecting");
    } else {
      this._clear("reconnect");
      this._connect();
    }
  }

  /** Resolves once every pending change is acknowledged; rejects with `timeout` after `timeoutMs`. */
  flush(timeoutMs: number = this.mutationTimeoutMs): Promise<void> {
    if (this._pending.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this._flushWaiters = this._flushWaiters.filter((w) => w !== waiter);
          reject(new CollabError("timeout", `${this._pending.length} changes still unsaved after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this._flushWaiters.push(waiter);
    });
  }

  // -- mutations ---------------------------------------------------------------------------------
  /**
   * Create a task. Its id is chosen here (or given as `draft.id`), so the page can refer to it
   * before the ack: the optimistic task is in the snapshot at once.
   * @returns the committed task; rejects with a `CollabError` (`validation_error` before sending
   * when the draft breaks the schema's limits; the server's code when it refused; `timeout`).
   */
  createTask(draft: TaskDraft): Promise<Task> {
    const id = draft.id ?? uuid4();
    const problem = checkDraft(draft);
    const request_id = uuid4();
    const frame: TaskCreate = { action: "task.create", request_id, task: { ...draft, id } };
    return this._enqueue("task.create", id, frame, problem) as Promise<Task>;
  }

  /**
   * Change some fields of a task; only the fields given are written (per-field last write wins).
   * `seenVersion` (v1.3) is the task's version as the user saw it when they started the edit (by
   * default the committed version held now): the `ack` then says what the change overwrote
   * (the `overwrote` event), and a description changed meanwhile is merged, not replaced.
   * @returns the committed task.
   */
  updateTask(taskId: string, changes: TaskChanges, options: { seenVersion?: number | null } = {}): Promise<Task> {
    const problem = checkChanges(changes);
    const frame: TaskUpdate = { action: "task.update", request_id: uuid4(), task_id: taskId, changes: { ...changes } };
    const seen = options.seenVersion === undefined ? this._server.get(taskId)?.version : options.seenVersion;
    if (typeof seen === "number" && seen >= 1) frame.seen_version = seen;
    if (Object.keys(changes).length === 0) {
      const held = this._server.get(taskId);
      return held ? Promise.resolve(held) : quiet(Promise.reject(new CollabError("not_found", "no such task")));
    }
    return this._enqueue("task.update", taskId, frame, problem) as Promise<Task>;
  }

  /** Delete a task. @returns the deleted task (its tombstone), when the server sent it. */
  deleteTask(taskId: string): Promise<Task | null> {
    const frame: TaskDelete = { action: "task.delete", request_id: uuid4(), task_id: taskId };
    return this._enqueue("task.delete", taskId, frame, null);
  }

  /**
   * v1.3: revert this user's own change recorded at `seq` (its `ack`'s seq): its fields go back to
   * their values before it; a deletion undone restores the task. Refused with `conflict` (and the
   * current task adopted) when one of those fields changed since. Not optimistic: the board shows
   * the result when the `ack` comes.
   */
  undo(seq: number): Promise<Task | null> {
    const frame: TaskUndo = { action: "task.undo", request_id: uuid4(), seq };
    return this._enqueue("task.undo", null, frame, null);
  }

  /** v1.3: re-apply this user's change at `seq` that they undid (the same rule as `undo`). */
  redo(seq: number): Promise<Task | null> {
    const frame: TaskRedo = { action: "task.redo", request_id: uuid4(), seq };
    return this._enqueue("task.redo", null, frame, null);
  }

  /**
   * Undo the newest of this user's changes not undone yet (Ctrl/Cmd+Z). On success it moves to the
   * redo stack; on a refusal it is dropped. Resolves with null when there is nothing to undo.
   */
  undoLast(): Promise<Task | null> {
    const seq = this._undo.pop();
    if (seq === undefined) return Promise.resolve(null);
    this._changed("connection");
    return quiet(
      this.undo(seq).then((task) => {
        this._redo.push(seq);
        this._changed("connection");
        return task;
      }),
    );
  }

  /** Redo the newest change undone (Shift+Ctrl/Cmd+Z); it goes back on the undo stack. */
  redoLast(): Promise<Task | null> {
    const seq = this._redo.pop();
    if (seq === undefined) return Promise.resolve(null);
    this._changed("connection");
    return quiet(
      this.redo(seq).then((task) => {
        this._undo.push(seq);
        this._changed("connection");
        return task;
      }),
    );
  }

  /** v1.3: a task's changes, newest first (`GET /tasks/{id}/history`); `next_cursor` pages on. */
  history(taskId: string, cursor: string | null = null, limit = 50): Promise<HistoryPage> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.api<HistoryPage>("GET", `/tasks/${taskId}/history?${query.toString()}`);
  }

  /**
   * v1.3: what this user is typing in, or null (blur). Call it on focus and on every input: a
   * change of target is sent at once, the same target again at most every `EDITING_REFRESH_MS`
   * (peers drop it 15 s after the last refresh). These frames have their own budget on the server.
   */
  setEditing(target: { task_id: string; field: TaskField } | null): void {
    const key = target ? `${target.task_id}/${target.field}` : null;
    const now = Date.now();
    this._editingWanted = target ? { task_id: target.task_id, field: target.field } : null;
    if (key === this._editingSentKey && (key === null || now - this._editingSentAt < EDITING_REFRESH_MS)) return;
    this._sendEditing();
  }

  /** Others' editing indicators that have not expired. */
  get editing(): readonly EditingView[] {
    return this.getSnapshot().editing;
  }

  /**
   * Resolves once every change made so far is written to the durable outbox (IndexedDB), so a
   * page may close without losing it.
   */
  persisted(): Promise<void> {
    return this._outboxWrites;
  }

  /** Mark notifications read (optimistically). */
  markRead(ids: readonly string[]): Promise<void> {
    const unread = ids.filter((id) => this._notes.get(id) && !this._notes.get(id)?.read_at);
    if (unread.length === 0) return Promise.resolve();
    const previous = new Map<string, string | null>();
    const now = new Date().toISOString();
    const notes = new Map(this._notes);
    for (const id of unread) {
      const note = notes.get(id);
      if (!note) continue;
      previous.set(id, note.read_at ?? null);
      notes.set(id, { ...note, read_at: now });
    }
    this._notes = notes;
    this._changed("notifications");
    const frame: NotificationRead = { action: "notification.read", request_id: uuid4(), notification_ids: unread };
    return quiet(this._enqueue("notification.read", null, frame, null, previous).then(() => undefined));
  }

  private _sendEditing(): void {
    if (this._state !== "live") return; // sent when the connection is live again (_goLive)
    const target = this._editingWanted;
    const { status, viewing } = this._presenceWanted;
    const frame: OutFrame = { action: "presence.update", status: status === "away" ? "away" : this._announcedMode(), viewing, editing: target };
    if (this._send(frame)) {
      this._editingSentKey = target ? `${target.task_id}/${target.field}` : null;
      this._editingSentAt = Date.now();
    }
  }

  /** What this user is doing; peers get `presence.updated`. Re-sent after every reconnect. */
  setPresence({ status = this._presenceWanted.status, viewing = this._presenceWanted.viewing }: { status?: "active" | "away"; viewing?: string | null }): void {
    this._presenceWanted = { status, viewing };
    const mine = this._presence.get(this.me.id);
    if (mine) this._putPresence(this.me.id, { ...mine, status, viewing });
    if (this._state === "live") this._sendControl({ action: "presence.update", status: this._announcedMode(), viewing });
  }

  /**
   * A call to the HTTP API with the access token. A 401 asks `getToken("unauthorized")` for a fresh
   * token and tries once more. Errors are `HttpError`s (a `CollabError` with `status`).
   */
  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    let response = await this._fetch(method, path, body, await this._currentToken());
    if (response.status === 401 && this._getToken) {
      this._tokenDue = "unauthorized";
      response = await this._fetch(method, path, body, await this._currentToken());
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = ((data as { error?: Partial<ErrorBody> } | null)?.error ?? {}) as Partial<ErrorBody>;
      const retry = Number(response.headers.get("Retry-After"));
      throw new HttpError(
        response.status,
        err.code ?? httpCode(response.status),
        err.message ?? (response.statusText || `HTTP ${response.status}`),
        err.field ?? null,
        err.retry_after_ms ?? (retry > 0 ? retry * 1000 : null),
      );
    }
    return data as T;
  }

  private async _fetch(method: string, path: string, body: unknown, token: string): Promise<Response> {
    try {
      return await fetch(this.apiBase + path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (err) {
      throw new CollabError("network", err instanceof Error ? err.message : String(err));
    }
  }

  /** The token to send: the last one, or a fresh one from `getToken` when it is due. */
  private async _currentToken(): Promise<string> {
    if (this._getToken && (this._token === null || this._tokenDue !== null)) {
      const why: TokenReason = this._tokenDue ?? "connect";
      this._tokenDue = null;
      this._adoptToken(await this._getToken(why));
    }
    return this._token ?? "";
  }

  private _adoptToken(token: string): void {
    this._token = token;
    const claims = tokenClaims(token);
    const id = String(claims.sub ?? "");
    const name = String(claims.name ?? claims.email ?? claims.sub ?? "");
    if (id !== this.me.id || name !== this.me.name) this.me = { id, name };
  }

  // -- connection --------------------------------------------------------------------------------
  private async _connect(): Promise<void> {
    if (this._stopped || this._ws || this._connecting) return; // one attempt at a time
    if (this._state !== "offline") this._setState("connecting"); // retries stay "offline": no flicker
    let ticket: { ticket: string; url: string };
    this._connecting = true;
    try {
      this._tokenDue ??= "connect"; // every (re)connect asks getToken (an expired token is replaced)
      ticket = await this.api("POST", "/ws-tickets", { workspace_id: this.workspaceId });
    } catch (err) {
      this._connecting = false;
      this._refused(err, "ticket");
      return;
    }
    await this._restoreOutbox(); // the token is known now: this user's changes only
    this._connecting = false;
    if (this._stopped || this._ws) return;
    const ws = new WebSocket(ticket.url);
    this._ws = ws;
    this._timers.open = setTimeout(() => {
      if (this._ws === ws && ws.readyState !== WebSocket.OPEN) {
        ws.close();
        this._onSocketClosed(ws, "handshake timeout");
      }
    }, OPEN_TIMEOUT_MS);
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._clear("open");
      this._setState("syncing");
      this._syncInFlight = false;
      this._lastHeardAt = Date.now();
      this._sendSync();
      this._scheduleBeat(ws);
    };
    ws.onmessage = (event: MessageEvent) => {
      if (this._ws !== ws) return;
      let frame: unknown;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      this._lastHeardAt = Date.now(); // any frame is a sign of life: a probe's deadline is met
      this._clear("heartbeatDeadline");
      this._onFrame(frame as ServerFrame);
    };
    ws.onclose = (event: CloseEvent) => this._onSocketClosed(ws, `closed (${event.code})`);
  }

  /**
   * An HTTP refusal while connecting or loading: final when retrying cannot help (401 after a
   * refresh, 403/404, other 4xx), retried with backoff otherwise (network, 429, 5xx).
   */
  private _refused(err: unknown, during: string): void {
    const error = err instanceof CollabError ? err : new CollabError("network", String(err));
    const status = error.status;
    if (status === 401) return this._fail("unauthorized", error, "the access token was refused (expired or revoked)");
    if (status === 403 || status === 404) {
      return this._fail("forbidden", error, status === 404 ? "no such workspace" : "not a member of this workspace");
    }
    if (status !== null && status >= 400 && status < 500 && status !== 429 && status !== 408) {
      return this._fail("invalid", error, error.message);
    }
    this._scheduleReconnect(`${during}: ${error.message}`, error.retryAfterMs ?? 0);
  }

  private _fail(state: "unauthorized" | "forbidden" | "invalid", error: CollabError, reason: string): void {
    const ws = this._ws;
    this._ws = null;
    for (const name of ["open", "heartbeat", "heartbeatDeadline", "behind", "reconnect", "pump"]) this._clear(name);
    if (ws) ws.close(1000, state);
    for (const op of this._pending) op.sent = false;
    this._error = error;
    this._setState(state, reason);
  }

  private _onSocketClosed(ws: WebSocket, reason: string): void {
    if (this._ws !== ws) return;
    this._ws = null;
    for (const name of ["open", "heartbeat", "heartbeatDeadline", "behind", "pump"]) this._clear(name);
    this._syncInFlight = false;
    this._syncAgain = false;
    for (const op of this._pending) op.sent = false; // unanswered: re-sent after the next sync
    if (this._stopped) return;
    this._setState("offline", reason);
    this._scheduleReconnect(reason);
  }

  /**
   * Full jitter: a random delay in [0, min(cap, base * 2^attempt)]; the first retry within
   * `firstRetryMs`, so one dropped socket is back at once while a crowd still spreads out. Never
   * sooner than the server asked (`Retry-After`).
   */
  private _scheduleReconnect(reason: string, atLeastMs = 0): void {
    if (this._stopped) return;
    this._clear("reconnect");
    const ceiling = this._attempt === 0 ? this.firstRetryMs : Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** this._attempt);
    this._attempt = Math.min(this._attempt + 1, 20);
    // Offline by the browser's word: the `online` event reconnects at once, so only try now and then.
    const delay = Math.max(atLeastMs, this._online ? Math.random() * ceiling : this.backoffCapMs);
    if (this._state !== "offline") this._setState("offline", reason);
    this._timers.reconnect = setTimeout(() => {
      delete this._timers.reconnect;
      this._connect();
    }, delay);
  }

  /** The next heartbeat, one period of the current mode from now. */
  private _scheduleBeat(ws: WebSocket): void {
    this._clear("heartbeat");
    const period = this.mode === "away" ? this.awayHeartbeatMs : this.heartbeatMs;
    this._timers.heartbeat = setTimeout(() => this._beat(ws), period);
  }

  /**
   * A heartbeat (v1.2): the last seq applied and this tab's mode. It asks for an answer (`probe`)
   * when asked to, or when nothing was heard for `probeAfterMs`; then any frame within
   * `heartbeatTimeoutMs` will do, and none means the socket is dead. Heartbeats have their own
   * budget on the server, so they do not take from the send bucket.
   */
  private _beat(ws: WebSocket, probe = false): void {
    if (this._ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.mode === "active" && Date.now() - this._lastInputAt >= this.idleMs) {
      this._setMode("away"); // idle: the switch sends this beat
      return;
    }
    this._scheduleBeat(ws);
    probe = probe || Date.now() - this._lastHeardAt >= this.probeAfterMs;
    const frame: OutFrame = { action: "heartbeat", seq: this.lastSeq, mode: this._announcedMode() };
    if (probe) frame.probe = true;
    this._send(frame);
    if (probe) this._expectAnswer(ws);
  }

  /** A frame was sent that the server answers: no frame at all within `heartbeatTimeoutMs` means a dead socket. */
  private _expectAnswer(ws: WebSocket): void {
    if (this._timers.heartbeatDeadline) return;
    this._timers.heartbeatDeadline = setTimeout(() => {
      delete this._timers.heartbeatDeadline;
      if (this._ws === ws) {
        ws.close(4001, "no answer");
        this._onSocketClosed(ws, "no answer from the server");
      }
    }, this.heartbeatTimeoutMs);
  }

  /**
   * Switch this tab's mode: at once, as a heartbeat naming it. Back to active, it probes: after a
   * while hidden, the socket may have died unnoticed.
   */
  private _setMode(mode: "active" | "away"): void {
    if (this.mode === mode) return;
    this.mode = mode;
    const mine = this._presence.get(this.me.id);
    if (mine && mode === "away" && mine.status !== "away") this._putPresence(this.me.id, { ...mine, status: "away" });
    if (this._ws) this._beat(this._ws, mode === "active");
  }

  /** The mode announced: away when the page said so (setPresence). */
  private _announcedMode(): "active" | "away" {
    return this._presenceWanted.status === "away" ? "away" : this.mode;
  }

  private _visibilityChanged(): void {
    if (globalThis.document?.visibilityState === "hidden") {
      if (!this._timers.hidden) {
        this._timers.hidden = setTimeout(() => {
          delete this._timers.hidden;
          this._setMode("away");
        }, this.hiddenAwayMs);
      }
      return;
    }
    this._clear("hidden");
    this._lastInputAt = Date.now();
    this._setMode("active");
  }

  private _input(): void {
    this._lastInputAt = Date.now();
    if (this.mode === "away" && globalThis.document?.visibilityState !== "hidden") this._setMode("active");
  }

  private _clear(name: string): void {
    const timer = this._timers[name];
    if (timer !== undefined) {
      clearTimeout(timer);
      delete this._timers[name];
    }
  }

  private _setState(state: ConnectionState, reason: string | null = null): void {
    if (this._state === state) return;
    this._state = state;
    this._reason = reason;
    if (!TERMINAL_STATES.includes(state) || state === "stopped") this._error = null;
    this._changed("connection");
    this.emit("state", { state, reason, error: this._error });
  }

  /** Send now if the socket is open. A socket that cannot take a frame is dead: reconnect. */
  private _send(frame: OutFrame): boolean {
    const ws = this._ws;
    if (!ws) return false;
    if (ws.readyState !== WebSocket.OPEN) {
      if (ws.readyState >= WebSocket.CLOSING) this._onSocketClosed(ws, "socket closed");
      return false;
    }
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** A frame that cannot wait (sync, presence): it goes at once and takes from the bucket anyway. */
  private _sendControl(frame: OutFrame): boolean {
    const sent = this._send(frame);
    if (sent) this._bucket.take();
    return sent;
  }

  // -- sync --------------------------------------------------------------------------------------
  private _sendSync(): void {
    if (this._syncInFlight) {
      this._syncAgain = true;
      return;
    }
    if (this._sendControl({ action: "sync", since: this.lastSeq })) {
      this._syncInFlight = true;
      this._syncSince = this.lastSeq;
    }
  }

  private async _onSync(data: SyncData): Promise<void> {
    const ws = this._ws;
    const since = this._syncSince;
    const before = this.lastSeq;
    this._setPresenceList(data.presence ?? []);
    if (data.more_presence) void this._loadPresence();
    this._addNotifications(data.notifications ?? []);
    const full = since === null || data.resync;
    if (full) {
      this.lastSeq = data.seq;
      try {
        await this._loadAll();
      } catch (err) {
        this._syncInFlight = false;
        this.lastSeq = before; // nothing was loaded: the next sync must load again
        if (this._ws === ws && ws) {
          const status = err instanceof CollabError ? err.status : null;
          if (status !== null && status >= 400 && status < 500 && status !== 429) {
            this._refused(err, "load");
            return;
          }
          ws.close(4002, "load failed"); // reconnect, and try again
          this._onSocketClosed(ws, "load failed");
        }
        return;
      }
      if (this._ws !== ws) return; // the connection dropped while loading; the next one syncs again
    } else {
      for (const ev of data.events ?? []) this._applyEvent(ev, true);
    }
    this._settleGap();
    this._syncInFlight = false;
    const behind = (this.lastSeq ?? 0) < data.seq;
    if (behind && !full && this.lastSeq === before) {
      // The reply made no progress (should not happen): reload rather than loop.
      this.lastSeq = null;
      this._sendSync();
      return;
    }
    if (behind || this._syncAgain || data.more_notifications) {
      this._syncAgain = false;
      this._sendSync(); // the server paged a long replay or the notifications, or a gap appeared
      return;
    }
    this._goLive();
  }

  private _goLive(): void {
    this._attempt = 0; // a connection that got this far resets the backoff
    this._setState("live");
    if (this._editingWanted) {
      this._editingSentKey = null;
      this._sendEditing(); // the indicator went with the old connection
    }
    const { status, viewing } = this._presenceWanted;
    if (status !== "active" || viewing !== null) {
      this._sendControl({ action: "presence.update", status: this._announcedMode(), viewing });
    } else if (this._ws) {
      this._beat(this._ws); // the mode, at once: a new connection is active, or as its user was
    }
    this._pump();
  }

  /** Load every task over HTTP (first sync, or `resync: true`) and notifications on first load. */
  private async _loadAll(): Promise<void> {
    const touched = new Set<string>();
    this._touchedDuringLoad = touched;
    try {
      const items: Task[] = [];
      let cursor: string | null = null;
      do {
        const query: string = `?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
        const page: { items: Task[]; next_cursor: string | null } = await this.api("GET", `/workspaces/${this.workspaceId}/tasks${query}`);
        items.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor);
      const next = new Map(items.map((t) => [t.id, t]));
      for (const [id, held] of this._server) {
        const fresh = next.get(id);
        if (fresh ? held.version > fresh.version : touched.has(id) || held.deleted) next.set(id, held);
      }
      this._server = next;
      this._invalidate();
    } finally {
      this._touchedDuringLoad = null;
    }
    if (!this._loaded) {
      this._loaded = true;
      try {
        const page = await this.api<{ items?: Notification[] }>("GET", "/notifications?unread=true&limit=50");
        this._addNotifications(page.items ?? []);
      } catch {
        // notifications are a convenience here; the board works without them
      }
    }
  }

  // -- frames ------------------------------------------------------------------------------------
  /** The one place where server frames are dispatched by type (a new frame type gets a case here). */
  private _onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "heartbeat.ack":
        this._onHeartbeatAck(frame.data ?? {});
        break;
      case "sync":
        void this._onSync(frame.data);
        break;
      case "ack":
        this._onAck(frame.data);
        break;
      case "task.created":
      case "task.updated":
      case "task.deleted":
      case "member.added":
      case "member.removed":
      case "member.role_changed":
        this._applyEvent(frame, false);
        break;
      case "presence.joined":
      case "presence.updated":
      case "presence.left":
        this._onPresence(frame.type, frame.data);
        break;
      case "presence.batch": // v1.2: several changes in one frame, in order
        for (const ev of frame.data.events ?? []) this._onPresence(ev.type, ev.data);
        break;
      case "presence.editing": // v1.3
        this._onEditing(frame.data);
        break;
      case "task.overwritten": // v1.3: a notice, no seq
        this._applyTask(frame.data.task);
        this.emit("overwritten", frame.data);
        break;
      case "notification.created":
        this._addNotifications([frame.data.notification]);
        break;
      case "error":
        if (frame.data.code === "unauthorized") this._tokenRefused();
        this.emit("servererror", CollabError.fromBody(frame.data));
        break;
      default:
        break;
    }
  }

  /** The server refused this connection's credentials mid-way: a fresh token and a new connection. */
  private _tokenRefused(): void {
    this._tokenDue = "unauthorized";
    this.reconnectNow();
  }

  /**
   * A quiet heartbeat is answered when it probed or when the client is behind: `seq` is the
   * workspace's latest. Behind (an event missed), it syncs once the gap's grace has passed.
   */
  private _onHeartbeatAck(data: HeartbeatAckData): void {
    if (Array.isArray(data.presence)) {
      this._setPresenceList(data.presence); // a probe's answer
      if (data.more_presence) void this._loadPresence();
    }
    const latest = data.seq;
    if (typeof latest !== "number" || this.lastSeq === null || latest <= this.lastSeq) return;
    this._clear("behind");
    this._timers.behind = setTimeout(() => {
      delete this._timers.behind;
      if (this.lastSeq !== null && this.lastSeq < latest) this._sendSync();
    }, this.gapGraceMs);
  }

  /** The whole list (sync, or a probe's answer: away tabs are sent no presence.updated). */
  private _setPresenceList(list: readonly PresenceEntry[]): void {
    this._presence = new Map(list.map((p) => [p.user.id, p]));
    this._presenceSeen = new Map(list.map((p) => [p.user.id, { at: p.last_seen, left: false }]));
    const editing = new Map<string, EditingView>();
    for (const p of list) {
      const view = p.editing ? this._editingView(p.user, p.editing) : null;
      if (view) editing.set(p.user.id, view);
    }
    this._setEditingMap(editing);
    this._changed("presence");
  }

  /**
   * An indicator as shown: until the server's `expires_at`, but never more than 15 s from now (a
   * local clock behind the server's must not keep a stale one forever).
   */
  private _editingView(user: UserRef, editing: { task_id: string; field: TaskField; expires_at: string }): EditingView | null {
    const at = Date.parse(editing.expires_at);
    const expiresAt = Math.min(Number.isNaN(at) ? Date.now() + EDITING_TTL_MS : at, Date.now() + EDITING_TTL_MS);
    return expiresAt > Date.now() ? { user, task_id: editing.task_id, field: editing.field, expiresAt } : null;
  }

  private _onEditing(data: PresenceEditingData): void {
    const next = new Map(this._editing);
    const view = data.editing ? this._editingView(data.user, data.editing) : null;
    if (view) next.set(data.user.id, view);
    else next.delete(data.user.id);
    this._setEditingMap(next);
  }

  /** Replace the indicators and arm a timer for the next expiry (the snapshot drops expired ones). */
  private _setEditingMap(next: Map<string, EditingView>): void {
    this._editing = next;
    this._clear("editingExpiry");
    const now = Date.now();
    let soonest = Infinity;
    for (const [id, e] of next) {
      if (e.expiresAt <= now) next.delete(id);
      else soonest = Math.min(soonest, e.expiresAt);
    }
    if (soonest !== Infinity) {
      this._timers.editingExpiry = setTimeout(() => {
        delete this._timers.editingExpiry;
        this._setEditingMap(new Map(this._editing));
      }, soonest - now + 5);
    }
    this._changed("editing");
  }

  /**
   * A large workspace's `sync` (or probe answer) carries part of the presence list and
   * `more_presence: true`: the whole list comes over HTTP. On failure the partial list stays.
   */
  private async _loadPresence(): Promise<void> {
    try {
      const page = await this.api<{ items: PresenceEntry[] }>("GET", `/workspaces/${this.workspaceId}/presence`);
      this._setPresenceList(page.items);
    } catch {
      // the partial list from the frame stays; the next sync or probe tries again
    }
  }

  private _putPresence(userId: string, entry: PresenceEntry | null): void {
    const next = new Map(this._presence);
    if (entry) next.set(userId, entry);
    else next.delete(userId);
    this._presence = next;
    this._changed("presence");
  }

  private _onPresence(type: PresenceBatchEvent["type"], data: PresenceEntry): void {
    const seen = this._presenceSeen.get(data.user.id);
    if (type === "presence.left") {
      if (seen && data.last_seen < seen.at) return; // a newer session of theirs is already here
      this._presenceSeen.set(data.user.id, { at: data.last_seen, left: true });
      this._putPresence(data.user.id, null);
      if (this._editing.has(data.user.id)) {
        const next = new Map(this._editing);
        next.delete(data.user.id);
        this._setEditingMap(next);
      }
    } else {
      if (seen && (data.last_seen < seen.at || (seen.left && data.last_seen <= seen.at))) return;
      this._presenceSeen.set(data.user.id, { at: data.last_seen, left: false });
      this._putPresence(data.user.id, data);
    }
  }

  /** A workspace event, live or replayed. Replayed events come in order from `since + 1`. */
  private _applyEvent(frame: TaskEvent | MemberEvent, replayed: boolean): void {
    if (frame.type === "task.created" || frame.type === "task.updated" || frame.type === "task.deleted") {
      this._applyTask((frame as TaskEvent).data.task);
    } else {
      this.emit("members", { frame: frame as MemberEvent });
    }
    if (replayed) {
      if (this.lastSeq === null || frame.seq > this.lastSeq) this.lastSeq = frame.seq;
    } else {
      this._advance(frame.seq);
    }
  }

  /**
   * Move `lastSeq` along a contiguous run. A jump is a gap: concurrent fan-outs deliver events out
   * of order all the time, so wait `gapGraceMs` for the missing seqs before asking with a sync.
   */
  private _advance(seq: number | null | undefined): void {
    if (typeof seq !== "number" || this.lastSeq === null) return; // not tracked before the first sync
    if (seq <= this.lastSeq) return;
    this._ahead.add(seq);
    this._settleGap();
  }

  /** Absorb the seqs that now follow `lastSeq`; arm (or disarm) the gap's sync. */
  private _settleGap(): void {
    if (this.lastSeq === null) {
      this._ahead.clear();
      return;
    }
    for (const s of this._ahead) if (s <= this.lastSeq) this._ahead.delete(s);
    while (this._ahead.delete(this.lastSeq + 1)) this.lastSeq += 1;
    if (this._ahead.size === 0) {
      this._clear("gap");
      return;
    }
    if (!this._timers.gap) {
      this._timers.gap = setTimeout(() => {
        delete this._timers.gap;
        if (this._ahead.size) this._sendSync();
      }, this.gapGraceMs);
    }
  }

  private _applyTask(task: Task): void {
    this._touchedDuringLoad?.add(task.id);
    const held = this._server.get(task.id);
    if (held && task.version <= held.version) return; // older or the same: already have it
    this._server.set(task.id, task);
    this._invalidate();
  }

  private _onAck(data: AckData): void {
    const index = this._pending.findIndex((op) => op.requestId === data.request_id);
    if (index < 0) return; // a repeat's answer for something already settled
    const op = this._pending[index] as PendingOp;
    if (data.ok) {
      this._pending.splice(index, 1);
      this._forget(op);
      if (data.task) this._applyTask(data.task);
      this._advance(data.seq); // our own change's event is not sent to us: its seq comes here
      this._invalidate();
      const seq = typeof data.seq === "number" ? data.seq : null;
      if (seq !== null && (op.action === "task.create" || op.action === "task.update" || op.action === "task.delete")) {
        this._undo.push(seq); // a new change of the user's: undoable, and the redo stack is void
        if (this._undo.length > UNDO_DEPTH) this._undo.shift();
        this._redo = [];
        this._changed("connection");
      }
      this.emit("acked", { action: op.action, requestId: op.requestId, taskId: op.taskId ?? data.task?.id ?? null, seq, task: data.task ?? null });
      if (data.task && ((data.overwrote?.length ?? 0) > 0 || (data.merged?.length ?? 0) > 0)) {
        this.emit("overwrote", { task: data.task, seq, overwrote: data.overwrote ?? [], merged: data.merged ?? [] });
      }
      this._resolve(op, data.task ?? (op.taskId ? this._server.get(op.taskId) ?? null : null));
      this._pump();
      return;
    }
    const body = data.error ?? { code: "internal", message: "refused without a reason" };
    const error = CollabError.fromBody(body);
    if (body.code === "unauthorized") {
      op.sent = false; // re-sent on the next connection, with a fresh token behind it
      this._tokenRefused();
      return;
    }
    const limit = body.code === "rate_limited" ? MAX_RATE_RETRIES : body.code === "internal" ? MAX_RETRIES : 0;
    if (op.retries < limit) {
      op.retries += 1;
      op.sent = false;
      const wait = body.retry_after_ms ?? 1000 * op.retries;
      if (body.code === "rate_limited") this._bucket.pause(wait); // everything waits, not just this one
      this._clear("pump");
      this._timers.pump = setTimeout(() => {
        delete this._timers.pump;
        this._pump();
      }, wait);
      return;
    }
    this._reject(op, error);
  }

  /** Roll an optimistic operation back and tell the page why. */
  private _reject(op: PendingOp, error: CollabError): void {
    this._pending = this._pending.filter((p) => p !== op);
    this._forget(op);
    if (error.task) this._applyTask(error.task);
    if (op.previousReadAt) {
      const notes = new Map(this._notes);
      for (const [id, readAt] of op.previousReadAt) {
        const note = notes.get(id);
        if (note) notes.set(id, { ...note, read_at: readAt });
      }
      this._notes = notes;
      this._changed("notifications");
    }
    this._invalidate();
    this.emit("rejected", { action: op.action, taskId: op.taskId, error });
    this._settleOp(op, null, error);
  }

  private _resolve(op: PendingOp, task: Task | null): void {
    this._settleOp(op, task, null);
  }

  private _settleOp(op: PendingOp, task: Task | null, error: CollabError | null): void {
    if (!op.settle.done) {
      op.settle.done = true;
      if (error) op.settle.reject(error);
      else op.settle.resolve(task);
    }
    if (this._pending.length === 0) {
      const waiters = this._flushWaiters;
      this._flushWaiters = [];
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  }

  private _addNotifications(notes: readonly Notification[]): void {
    if (!notes.length) return;
    const next = new Map(this._notes);
    for (const note of notes) {
      const held = next.get(note.id);
      next.set(note.id, held && held.read_at && !note.read_at ? { ...note, read_at: held.read_at } : note);
    }
    this._notes = next;
    this._changed("notifications");
  }

  // -- durable outbox ----------------------------------------------------------------------------
  /** Write a queued change to the outbox (in order: writes are chained). */
  private _keep(op: PendingOp): void {
    const outbox = this._outbox;
    if (!outbox) return;
    this._outboxOrder = Math.max(this._outboxOrder + 1, Date.now() * 1000);
    const entry: OutboxEntry = {
      requestId: op.requestId,
      workspaceId: this.workspaceId,
      userId: this.me.id,
      order: this._outboxOrder,
      action: op.action,
      taskId: op.taskId,
      frame: op.frame as unknown as Record<string, unknown>,
    };
    this._outboxWrites = this._outboxWrites.then(() => outbox.put(entry)).catch(() => undefined);
  }

  /** Remove an answered change from the outbox. */
  private _forget(op: PendingOp): void {
    const outbox = this._outbox;
    if (!outbox) return;
    this._outboxWrites = this._outboxWrites.then(() => outbox.delete(op.requestId)).catch(() => undefined);
  }

  /**
   * Once per client, before the first connection: the changes a previous page of this user left
   * unanswered go first, in the order they were made, with their `request_id` (the server answers
   * a repeat with the first answer, so a change that had landed lands once).
   */
  private async _restoreOutbox(): Promise<void> {
    const outbox = this._outbox;
    if (this._outboxRestored || !outbox) return;
    this._outboxRestored = true;
    let entries: OutboxEntry[];
    try {
      entries = await outbox.list(this.workspaceId, this.me.id);
    } catch {
      return; // no IndexedDB (private mode): memory only
    }
    const held = new Set(this._pending.map((op) => op.requestId));
    const restored: PendingOp[] = [];
    for (const entry of entries.sort((a, b) => a.order - b.order)) {
      if (held.has(entry.requestId)) continue;
      this._outboxOrder = Math.max(this._outboxOrder, entry.order);
      const settle: Settle = { resolve: () => undefined, reject: () => undefined, done: false };
      restored.push({
        requestId: entry.requestId,
        action: entry.action,
        taskId: entry.taskId,
        frame: entry.frame as unknown as PendingOp["frame"],
        sent: false,
        retries: 0,
        settle,
      });
    }
    if (restored.length) {
      this._pending = [...restored, ...this._pending]; // older than anything made on this page
      this._invalidate();
    }
  }

  // -- optimistic operations ---------------------------------------------------------------------
  private _enqueue(
    action: MutationAction,
    taskId: string | null,
    frame: PendingOp["frame"],
    problem: CollabError | null,
    previousReadAt?: Map<string, string | null>,
  ): Promise<Task | null> {
    let settle: Settle = { resolve: () => undefined, reject: () => undefined, done: false };
    const promise = new Promise<Task | null>((resolve, reject) => {
      settle = { resolve, reject, done: false };
    });
    quiet(promise);
    const op: PendingOp = { requestId: frame.request_id, action, taskId, frame, sent: false, retries: 0, settle };
    if (previousReadAt) op.previousReadAt = previousReadAt;
    const bytes = new TextEncoder().encode(JSON.stringify(frame)).length;
    if (!problem && bytes > MAX_FRAME_BYTES) {
      problem = new CollabError("payload_too_large", `a frame is at most ${MAX_FRAME_BYTES} bytes (this one is ${bytes})`);
    }
    if (problem) {
      this._reject(op, problem);
      return promise;
    }
    this._pending.push(op);
    this._keep(op);
    this._invalidate();
    const timer = setTimeout(() => {
      if (!op.settle.done) {
        op.settle.done = true;
        op.settle.reject(new CollabError("timeout", `no answer within ${this.mutationTimeoutMs} ms (the change stays queued)`));
      }
    }, this.mutationTimeoutMs);
    promise.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    this._pump();
    return promise;
  }

  /**
   * Send the queued changes in order while the bucket has tokens; when it is empty, come back when
   * it has one. Order matters (a create before its update), so one waiting change holds the rest.
   */
  private _pump(): void {
    if (this._state !== "live" || this._timers.pump) return;
    for (const op of this._pending) {
      if (op.sent) continue;
      if (!this._bucket.tryTake()) {
        this._timers.pump = setTimeout(() => {
          delete this._timers.pump;
          this._pump();
        }, this._bucket.waitMs());
        return;
      }
      this._sendOp(op);
      if (!op.sent) return; // the socket is gone: everything waits for the next connection
    }
  }

  private _sendOp(op: PendingOp): void {
    op.sent = this._send(op.frame as unknown as OutFrame);
    if (op.sent) this._changed("connection");
    if (op.sent && this._ws) this._expectAnswer(this._ws); // its ack: a dead socket shows at once
  }

  private _taskView(): Map<string, TaskView> {
    if (this._view) return this._view;
    const draft = new Map<string, Task & { pending: boolean }>();
    for (const [id, task] of this._server) draft.set(id, { ...task, pending: false });
    const now = new Date().toISOString();
    for (const op of this._pending) {
      if (op.frame.action === "task.create") {
        const d = op.frame.task;
        const id = d.id as string;
        if (!draft.has(id)) {
          draft.set(id, {
            id,
            workspace_id: this.workspaceId,
            title: d.title,
            description: d.description ?? "",
            status: d.status ?? "todo",
            priority: d.priority ?? "medium",
            due_date: d.due_date ?? null,
            assigned_to: d.assigned_to ?? null,
            created_by: this.me.id,
            created_at: now,
            updated_by: this.me.id,
            updated_at: now,
            version: 0,
            deleted: false,
            pending: true,
          });
        }
      } else if (op.taskId) {
        const base = draft.get(op.taskId);
        if (!base || base.deleted) continue; // deleted remotely: the pending change has nothing to apply to
        draft.set(
          op.taskId,
          op.frame.action === "task.delete" ? { ...base, deleted: true, pending: true } : { ...base, ...(op.frame as TaskUpdate).changes, pending: true },
        );
      }
    }
    // Stable identity: a task whose fields are all the same keeps the object it had (a pending
    // create keeps its first created_at), so memoised cards do not re-render.
    const view = new Map<string, TaskView>();
    for (const [id, candidate] of draft) {
      const old = this._lastView.get(id);
      if (old && candidate.pending && candidate.version === 0) candidate.created_at = old.created_at;
      if (old && candidate.pending && candidate.version === 0) candidate.updated_at = old.updated_at;
      view.set(id, old && sameFields(old, candidate) ? old : Object.freeze(candidate));
    }
    this._view = view;
    this._lastView = view;
    return view;
  }

  private _invalidate(): void {
    this._view = null;
    this._changed("tasks");
  }

  /** Coalesce changes to one notification per task turn (a replay of 100 events renders once). */
  private _changed(what: ChangeKind): void {
    this._dirty.add(what);
    this._changedKinds.add(what);
    if (!this._notifyQueued) {
      this._notifyQueued = true;
      queueMicrotask(() => this._notify());
    }
  }

  private _notify(): void {
    this._notifyQueued = false;
    const kinds = [...this._changedKinds];
    this._changedKinds.clear();
    const snap = this.getSnapshot();
    for (const kind of kinds) {
      if (kind === "tasks") this.emit("tasks", snap.tasks);
      else if (kind === "presence") this.emit("presence", snap.presence);
      else if (kind === "notifications") this.emit("notifications", snap.notifications);
      else if (kind === "editing") this.emit("editing", snap.editing);
    }
    this.emit("change", snap);
    for (const listener of [...this._subscribers]) listener();
  }
}
