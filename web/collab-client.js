// Built from packages/collab-client/src by `node scripts/build.mjs` (esbuild): do not edit.
// The @collab/client package (docs/client.md), bundled for the demo board and `collab dev`.
// src/emitter.ts
var Emitter = class {
  listeners = /* @__PURE__ */ new Map();
  /** Listen to one event; the returned function stops listening. */
  on(name, listener) {
    let set = this.listeners.get(name);
    if (!set) {
      set = /* @__PURE__ */ new Set();
      this.listeners.set(name, set);
    }
    set.add(listener);
    return () => this.off(name, listener);
  }
  /** Stop listening (the same as calling what `on` returned). */
  off(name, listener) {
    this.listeners.get(name)?.delete(listener);
  }
  /** Call each listener; one that throws is reported and does not stop the others. */
  emit(name, detail) {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(detail);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
};

// src/errors.ts
var CollabError = class _CollabError extends Error {
  /** What went wrong, for a program. */
  code;
  /** The field a `validation_error` is about, when known. */
  field;
  /** How long the server asks the client to wait (`rate_limited`). */
  retryAfterMs;
  /** The committed task a refusal carries (a `conflict` or a rolled-back change). */
  task;
  /** The HTTP status, for errors of the HTTP API; null for WebSocket refusals and the client's own. */
  status;
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "CollabError";
    this.code = code;
    this.field = extra.field ?? null;
    this.retryAfterMs = extra.retryAfterMs ?? null;
    this.task = extra.task ?? null;
    this.status = extra.status ?? null;
  }
  /** A server's error body (an `ack` with `ok: false`, or an `error` frame). */
  static fromBody(body) {
    return new _CollabError(body.code, body.message, {
      field: body.field ?? null,
      retryAfterMs: body.retry_after_ms ?? null,
      task: body.task ?? null
    });
  }
};
var HttpError = class extends CollabError {
  constructor(status, code, message, field = null, retryAfterMs = null) {
    super(code, message, { status, field, retryAfterMs });
    this.name = "HttpError";
  }
};

// src/pacer.ts
var DEFAULT_BUDGET = { burst: 20, perMinute: 70 };
var TokenBucket = class {
  constructor(budget, now = () => Date.now()) {
    this.budget = budget;
    this.now = now;
    this.tokens = budget.burst;
    this.updatedAt = now();
    this.perMs = budget.perMinute / 6e4;
  }
  tokens;
  updatedAt;
  perMs;
  refill() {
    const t = this.now();
    this.tokens = Math.min(this.budget.burst, this.tokens + (t - this.updatedAt) * this.perMs);
    this.updatedAt = t;
  }
  /** Take a token if one is there. */
  tryTake() {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
  /** Take a token whether or not one is there (a frame that cannot wait, such as `sync`): later frames wait longer. */
  take() {
    this.refill();
    this.tokens -= 1;
  }
  /** Nothing may be sent for this long (the server said `rate_limited` with `retry_after_ms`). */
  pause(ms) {
    this.refill();
    this.tokens = Math.min(this.tokens, 0) - ms * this.perMs;
  }
  /** Milliseconds until the next token. */
  waitMs() {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.perMs);
  }
};

// src/outbox.ts
var STORE = "ops";
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}
var IndexedDbOutbox = class {
  constructor(name = "collab-outbox") {
    this.name = name;
  }
  _db = null;
  db() {
    this._db ??= new Promise((resolve, reject) => {
      const open = indexedDB.open(this.name, 1);
      open.onupgradeneeded = () => {
        open.result.createObjectStore(STORE, { keyPath: "requestId" });
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error ?? new Error("IndexedDB unavailable"));
    });
    return this._db;
  }
  /** Resolves once the transaction is durable (committed), not merely queued. */
  async write(apply) {
    const db = await this.db();
    await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      apply(tx.objectStore(STORE));
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted"));
    });
  }
  put(entry) {
    return this.write((store) => store.put(entry));
  }
  delete(requestId) {
    return this.write((store) => store.delete(requestId));
  }
  async list(workspaceId, userId) {
    const db = await this.db();
    const all = await done(db.transaction(STORE, "readonly").objectStore(STORE).getAll());
    return all.filter((e) => e.workspaceId === workspaceId && e.userId === userId);
  }
};

// src/protocol.ts
var FIELD_LIMITS = {
  title: { minLength: 1, maxLength: 200, pattern: "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\t\\n \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$", nullable: false },
  description: { minLength: 0, maxLength: 1e4, pattern: "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$", nullable: false },
  assigned_to: { minLength: 1, maxLength: 128, pattern: "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$", nullable: true }
};
var TASK_STATUS_VALUES = ["todo", "in_progress", "done"];
var TASK_PRIORITY_VALUES = ["low", "medium", "high", "urgent"];
var MAX_NOTIFICATION_IDS = 100;

// src/validate.ts
var PATTERNS = new Map(
  Object.entries(FIELD_LIMITS).map(([name, limit]) => [name, new RegExp(limit.pattern, "u")])
);
var DATE = /^\d{4}-\d{2}-\d{2}$/;
function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}
function fieldProblem(field, value) {
  if (field in FIELD_LIMITS) {
    const limit = FIELD_LIMITS[field];
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
      return TASK_STATUS_VALUES.includes(value) ? null : `status must be one of ${TASK_STATUS_VALUES.join(", ")}`;
    case "priority":
      return TASK_PRIORITY_VALUES.includes(value) ? null : `priority must be one of ${TASK_PRIORITY_VALUES.join(", ")}`;
    case "due_date":
      return value === null || typeof value === "string" && DATE.test(value) && !Number.isNaN(Date.parse(value)) ? null : "due_date must be a date (YYYY-MM-DD) or null";
    case "id":
      return null;
    default:
      return `${field} is not a writable field`;
  }
}
function check(fields) {
  for (const [field, value] of Object.entries(fields)) {
    if (value === void 0) continue;
    const problem = fieldProblem(field, value);
    if (problem) return new CollabError("validation_error", problem, { field });
  }
  return null;
}
function checkDraft(draft) {
  if (draft.title === void 0) return new CollabError("validation_error", "title is required", { field: "title" });
  return check(draft);
}
function checkChanges(changes) {
  return check(changes);
}

// src/client.ts
var MAX_FRAME_BYTES = 32 * 1024;
var HEARTBEAT_MS = 3e4;
var AWAY_HEARTBEAT_MS = 7 * 6e4;
var HIDDEN_AWAY_MS = 1e4;
var IDLE_MS = 5 * 6e4;
var PROBE_AFTER_MS = 10 * 6e4;
var HEARTBEAT_TIMEOUT_MS = 6e3;
var OPEN_TIMEOUT_MS = 1e4;
var MUTATION_TIMEOUT_MS = 3e4;
var MAX_RETRIES = 3;
var MAX_RATE_RETRIES = 10;
var INPUT_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"];
var TERMINAL_STATES = ["unauthorized", "forbidden", "invalid", "stopped"];
var EDITING_REFRESH_MS = 5e3;
var EDITING_TTL_MS = 15e3;
var UNDO_DEPTH = 50;
function fieldMark(task, field) {
  return task.fields?.[field] ?? { by: task.created_by, version: 1, at: task.created_at };
}
function uuid4() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] ?? 0) & 15 | 64;
  b[8] = (b[8] ?? 0) & 63 | 128;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
function tokenClaims(token) {
  try {
    const part = (token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join("")
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}
function quiet(promise) {
  promise.catch(() => void 0);
  return promise;
}
function sameFields(a, b) {
  const x = a;
  const y = b;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  return keys.every((k) => x[k] === y[k]);
}
function sameItems(a, b, same = (x, y) => x === y) {
  return a.length === b.length && a.every((x, i) => same(x, b[i]));
}
function httpCode(status) {
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 413) return "payload_too_large";
  if (status === 429) return "rate_limited";
  if (status >= 500) return "internal";
  return "validation_error";
}
var CollabClient = class extends Emitter {
  workspaceId;
  apiBase;
  heartbeatMs;
  heartbeatTimeoutMs;
  awayHeartbeatMs;
  hiddenAwayMs;
  idleMs;
  probeAfterMs;
  backoffBaseMs;
  backoffCapMs;
  firstRetryMs;
  gapGraceMs;
  mutationTimeoutMs;
  /** This tab's mode: what its heartbeats announce. */
  mode = "active";
  /** The signed-in user, from the token's claims (display only). */
  me = { id: "", name: "" };
  /** The last contiguous seq applied; null until the first sync. */
  lastSeq = null;
  _state = "idle";
  _reason = null;
  _error = null;
  _online = globalThis.navigator?.onLine ?? true;
  _token;
  _getToken;
  /** Why a fresh token is needed before the next request, or null (the last one will do). */
  _tokenDue = null;
  _bucket;
  /** Committed tasks as last seen (tombstones included). */
  _server = /* @__PURE__ */ new Map();
  /** Optimistic operations in the order they were made. */
  _pending = [];
  _presence = /* @__PURE__ */ new Map();
  /**
   * Newest presence change seen per user. Presence events carry no seq and are posted by concurrent
   * invocations, so an older `presence.updated` can arrive after a newer `presence.left`; `last_seen`
   * (server time, ISO with milliseconds: strings sort in time order) orders them, and a `left` is a
   * tombstone that older events cannot undo.
   */
  _presenceSeen = /* @__PURE__ */ new Map();
  _notes = /* @__PURE__ */ new Map();
  _view = null;
  _lastView = /* @__PURE__ */ new Map();
  _snapshot = null;
  /** What changed since the snapshot was built, and since listeners were last told. */
  _dirty = /* @__PURE__ */ new Set();
  _changedKinds = /* @__PURE__ */ new Set();
  _notifyQueued = false;
  _subscribers = /* @__PURE__ */ new Set();
  _flushWaiters = [];
  /** v1.3: others' editing indicators by user id. */
  _editing = /* @__PURE__ */ new Map();
  /** v1.3: what this tab is editing, and when it was last sent. */
  _editingWanted = null;
  _editingSentAt = 0;
  _editingSentKey = null;
  /** v1.3: the user's own acknowledged changes (seqs), newest last; and those undone. */
  _undo = [];
  _redo = [];
  _outbox;
  _outboxRestored = false;
  _outboxOrder = 0;
  _outboxWrites = Promise.resolve();
  /** Seqs applied beyond a gap, waiting for the gap to close. */
  _ahead = /* @__PURE__ */ new Set();
  _ws = null;
  _stopped = true;
  _connecting = false;
  _attempt = 0;
  _syncInFlight = false;
  _syncAgain = false;
  _syncSince = null;
  _loaded = false;
  /** Ids touched by events while a full load is running. */
  _touchedDuringLoad = null;
  _presenceWanted = { status: "active", viewing: null };
  _timers = {};
  _lastHeardAt = 0;
  _lastInputAt = Date.now();
  _onVisibility = () => this._visibilityChanged();
  _onInput = () => this._input();
  _onOnline = () => {
    this._online = true;
    this._changed("connection");
    this.reconnectNow();
  };
  _onOffline = () => {
    this._online = false;
    this._changed("connection");
    const ws = this._ws;
    if (ws) {
      ws.close(4003, "network offline");
      this._onSocketClosed(ws, "network offline");
    }
  };
  constructor(options) {
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
    this.backoffCapMs = options.backoffCapMs ?? 1e4;
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
  get state() {
    return this._state;
  }
  /**
   * The current snapshot: the same object until something changes, so `useSyncExternalStore` (or
   * any `===` check) can tell. Tasks that did not change keep their object across snapshots.
   */
  getSnapshot = () => {
    if (this._snapshot && this._dirty.size === 0) return this._snapshot;
    const prev = this._snapshot;
    const view = this._taskView();
    const tasks = [...view.values()].filter((t) => !t.deleted);
    const presence = [...this._presence.values()].sort((a, b) => a.user.display_name.localeCompare(b.user.display_name));
    const notifications = [...this._notes.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    const connection = {
      state: this._state,
      reason: this._reason,
      error: this._error,
      pendingOps: this._pending.length,
      online: this._online
    };
    const now = Date.now();
    const editing = [...this._editing.values()].filter((e) => e.expiresAt > now);
    const outbox = this._pending.map((op) => ({
      requestId: op.requestId,
      action: op.action,
      taskId: op.taskId,
      changes: op.frame.action === "task.update" ? op.frame.changes : op.frame.action === "task.create" ? op.frame.task : null,
      sent: op.sent
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
      redoStack: prev && sameItems(prev.redoStack, this._redo) ? prev.redoStack : Object.freeze([...this._redo])
    });
    this._dirty.clear();
    return this._snapshot;
  };
  /** Call `listener` after every change (coalesced per task turn); returns the unsubscribe function. */
  subscribe = (listener) => {
    this._subscribers.add(listener);
    return () => {
      this._subscribers.delete(listener);
    };
  };
  /** The board as the user should see it: committed state plus pending changes. */
  tasks() {
    return this.getSnapshot().tasks;
  }
  /** One task as the user should see it, or undefined (unknown or deleted). */
  task(id) {
    const t = this._taskView().get(id);
    return t && !t.deleted ? t : void 0;
  }
  /** Who is here, by user id (a new map after each change). */
  get presence() {
    return this._presence;
  }
  /** Notifications by id (a new map after each change). */
  get notifications() {
    return this._notes;
  }
  /** Notifications not read yet. */
  get unreadCount() {
    let n = 0;
    for (const note of this._notes.values()) if (!note.read_at) n += 1;
    return n;
  }
  /** Operations not yet acknowledged by the server. */
  get pendingOps() {
    return this._pending.length;
  }
  /** The same as `pendingOps`. */
  get pendingCount() {
    return this._pending.length;
  }
  // -- lifecycle ---------------------------------------------------------------------------------
  /** Connect (or, after a refusal or `stop()`, try again). */
  start() {
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
  stop() {
    this._stopped = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    globalThis.removeEventListener?.("offline", this._onOffline);
    globalThis.document?.removeEventListener("visibilitychange", this._onVisibility);
    for (const type of INPUT_EVENTS) globalThis.removeEventListener?.(type, this._onInput, { capture: true });
    for (const name of Object.keys(this._timers)) this._clear(name);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1e3, "client stopped");
    for (const op of this._pending) op.sent = false;
    this._setState("stopped");
  }
  /** Drop the connection and reconnect at once (a fresh token and ticket, then sync). */
  reconnectNow() {
    if (this._stopped) return;
    this._attempt = 0;
    this._error = null;
    if (this._ws) {
      const ws = this._ws;
      ws.close(4e3, "reconnecting");
      this._onSocketClosed(ws, "reconnecting");
    } else {
      this._clear("reconnect");
      this._connect();
    }
  }
  /** Resolves once every pending change is acknowledged; rejects with `timeout` after `timeoutMs`. */
  flush(timeoutMs = this.mutationTimeoutMs) {
    if (this._pending.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this._flushWaiters = this._flushWaiters.filter((w) => w !== waiter);
          reject(new CollabError("timeout", `${this._pending.length} changes still unsaved after ${timeoutMs} ms`));
        }, timeoutMs)
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
  createTask(draft) {
    const id = draft.id ?? uuid4();
    const problem = checkDraft(draft);
    const request_id = uuid4();
    const frame = { action: "task.create", request_id, task: { ...draft, id } };
    return this._enqueue("task.create", id, frame, problem);
  }
  /**
   * Change some fields of a task; only the fields given are written (per-field last write wins).
   * `seenVersion` (v1.3) is the task's version as the user saw it when they started the edit (by
   * default the committed version held now): the `ack` then says what the change overwrote
   * (the `overwrote` event), and a description changed meanwhile is merged, not replaced.
   * @returns the committed task.
   */
  updateTask(taskId, changes, options = {}) {
    const problem = checkChanges(changes);
    const frame = { action: "task.update", request_id: uuid4(), task_id: taskId, changes: { ...changes } };
    const seen = options.seenVersion === void 0 ? this._server.get(taskId)?.version : options.seenVersion;
    if (typeof seen === "number" && seen >= 1) frame.seen_version = seen;
    if (Object.keys(changes).length === 0) {
      const held = this._server.get(taskId);
      return held ? Promise.resolve(held) : quiet(Promise.reject(new CollabError("not_found", "no such task")));
    }
    return this._enqueue("task.update", taskId, frame, problem);
  }
  /** Delete a task. @returns the deleted task (its tombstone), when the server sent it. */
  deleteTask(taskId) {
    const frame = { action: "task.delete", request_id: uuid4(), task_id: taskId };
    return this._enqueue("task.delete", taskId, frame, null);
  }
  /**
   * v1.3: revert this user's own change recorded at `seq` (its `ack`'s seq): its fields go back to
   * their values before it; a deletion undone restores the task. Refused with `conflict` (and the
   * current task adopted) when one of those fields changed since. Not optimistic: the board shows
   * the result when the `ack` comes.
   */
  undo(seq) {
    const frame = { action: "task.undo", request_id: uuid4(), seq };
    return this._enqueue("task.undo", null, frame, null);
  }
  /** v1.3: re-apply this user's change at `seq` that they undid (the same rule as `undo`). */
  redo(seq) {
    const frame = { action: "task.redo", request_id: uuid4(), seq };
    return this._enqueue("task.redo", null, frame, null);
  }
  /**
   * Undo the newest of this user's changes not undone yet (Ctrl/Cmd+Z). On success it moves to the
   * redo stack; on a refusal it is dropped. Resolves with null when there is nothing to undo.
   */
  undoLast() {
    const seq = this._undo.pop();
    if (seq === void 0) return Promise.resolve(null);
    this._changed("connection");
    return quiet(
      this.undo(seq).then((task) => {
        this._redo.push(seq);
        this._changed("connection");
        return task;
      })
    );
  }
  /** Redo the newest change undone (Shift+Ctrl/Cmd+Z); it goes back on the undo stack. */
  redoLast() {
    const seq = this._redo.pop();
    if (seq === void 0) return Promise.resolve(null);
    this._changed("connection");
    return quiet(
      this.redo(seq).then((task) => {
        this._undo.push(seq);
        this._changed("connection");
        return task;
      })
    );
  }
  /** v1.3: a task's changes, newest first (`GET /tasks/{id}/history`); `next_cursor` pages on. */
  history(taskId, cursor = null, limit = 50) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.api("GET", `/tasks/${taskId}/history?${query.toString()}`);
  }
  /**
   * v1.3: what this user is typing in, or null (blur). Call it on focus and on every input: a
   * change of target is sent at once, the same target again at most every `EDITING_REFRESH_MS`
   * (peers drop it 15 s after the last refresh). These frames have their own budget on the server.
   */
  setEditing(target) {
    const key = target ? `${target.task_id}/${target.field}` : null;
    const now = Date.now();
    this._editingWanted = target ? { task_id: target.task_id, field: target.field } : null;
    if (key === this._editingSentKey && (key === null || now - this._editingSentAt < EDITING_REFRESH_MS)) return;
    this._sendEditing();
  }
  /** Others' editing indicators that have not expired. */
  get editing() {
    return this.getSnapshot().editing;
  }
  /**
   * Resolves once every change made so far is written to the durable outbox (IndexedDB), so a
   * page may close without losing it.
   */
  persisted() {
    return this._outboxWrites;
  }
  /** Mark notifications read (optimistically). */
  markRead(ids) {
    const unread = ids.filter((id) => this._notes.get(id) && !this._notes.get(id)?.read_at);
    if (unread.length === 0) return Promise.resolve();
    const previous = /* @__PURE__ */ new Map();
    const now = (/* @__PURE__ */ new Date()).toISOString();
    const notes = new Map(this._notes);
    for (const id of unread) {
      const note = notes.get(id);
      if (!note) continue;
      previous.set(id, note.read_at ?? null);
      notes.set(id, { ...note, read_at: now });
    }
    this._notes = notes;
    this._changed("notifications");
    const frame = { action: "notification.read", request_id: uuid4(), notification_ids: unread };
    return quiet(this._enqueue("notification.read", null, frame, null, previous).then(() => void 0));
  }
  _sendEditing() {
    if (this._state !== "live") return;
    const target = this._editingWanted;
    const { status, viewing } = this._presenceWanted;
    const frame = { action: "presence.update", status: status === "away" ? "away" : this._announcedMode(), viewing, editing: target };
    if (this._send(frame)) {
      this._editingSentKey = target ? `${target.task_id}/${target.field}` : null;
      this._editingSentAt = Date.now();
    }
  }
  /** What this user is doing; peers get `presence.updated`. Re-sent after every reconnect. */
  setPresence({ status = this._presenceWanted.status, viewing = this._presenceWanted.viewing }) {
    this._presenceWanted = { status, viewing };
    const mine = this._presence.get(this.me.id);
    if (mine) this._putPresence(this.me.id, { ...mine, status, viewing });
    if (this._state === "live") this._sendControl({ action: "presence.update", status: this._announcedMode(), viewing });
  }
  /**
   * A call to the HTTP API with the access token. A 401 asks `getToken("unauthorized")` for a fresh
   * token and tries once more. Errors are `HttpError`s (a `CollabError` with `status`).
   */
  async api(method, path, body) {
    let response = await this._fetch(method, path, body, await this._currentToken());
    if (response.status === 401 && this._getToken) {
      this._tokenDue = "unauthorized";
      response = await this._fetch(method, path, body, await this._currentToken());
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = data?.error ?? {};
      const retry = Number(response.headers.get("Retry-After"));
      throw new HttpError(
        response.status,
        err.code ?? httpCode(response.status),
        err.message ?? (response.statusText || `HTTP ${response.status}`),
        err.field ?? null,
        err.retry_after_ms ?? (retry > 0 ? retry * 1e3 : null)
      );
    }
    return data;
  }
  async _fetch(method, path, body, token) {
    try {
      return await fetch(this.apiBase + path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...body === void 0 ? {} : { "Content-Type": "application/json" } },
        body: body === void 0 ? null : JSON.stringify(body)
      });
    } catch (err) {
      throw new CollabError("network", err instanceof Error ? err.message : String(err));
    }
  }
  /** The token to send: the last one, or a fresh one from `getToken` when it is due. */
  async _currentToken() {
    if (this._getToken && (this._token === null || this._tokenDue !== null)) {
      const why = this._tokenDue ?? "connect";
      this._tokenDue = null;
      this._adoptToken(await this._getToken(why));
    }
    return this._token ?? "";
  }
  _adoptToken(token) {
    this._token = token;
    const claims = tokenClaims(token);
    const id = String(claims.sub ?? "");
    const name = String(claims.name ?? claims.email ?? claims.sub ?? "");
    if (id !== this.me.id || name !== this.me.name) this.me = { id, name };
  }
  // -- connection --------------------------------------------------------------------------------
  async _connect() {
    if (this._stopped || this._ws || this._connecting) return;
    if (this._state !== "offline") this._setState("connecting");
    let ticket;
    this._connecting = true;
    try {
      this._tokenDue ??= "connect";
      ticket = await this.api("POST", "/ws-tickets", { workspace_id: this.workspaceId });
    } catch (err) {
      this._connecting = false;
      this._refused(err, "ticket");
      return;
    }
    await this._restoreOutbox();
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
    ws.onmessage = (event) => {
      if (this._ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      this._lastHeardAt = Date.now();
      this._clear("heartbeatDeadline");
      this._onFrame(frame);
    };
    ws.onclose = (event) => this._onSocketClosed(ws, `closed (${event.code})`);
  }
  /**
   * An HTTP refusal while connecting or loading: final when retrying cannot help (401 after a
   * refresh, 403/404, other 4xx), retried with backoff otherwise (network, 429, 5xx).
   */
  _refused(err, during) {
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
  _fail(state, error, reason) {
    const ws = this._ws;
    this._ws = null;
    for (const name of ["open", "heartbeat", "heartbeatDeadline", "behind", "reconnect", "pump"]) this._clear(name);
    if (ws) ws.close(1e3, state);
    for (const op of this._pending) op.sent = false;
    this._error = error;
    this._setState(state, reason);
  }
  _onSocketClosed(ws, reason) {
    if (this._ws !== ws) return;
    this._ws = null;
    for (const name of ["open", "heartbeat", "heartbeatDeadline", "behind", "pump"]) this._clear(name);
    this._syncInFlight = false;
    this._syncAgain = false;
    for (const op of this._pending) op.sent = false;
    if (this._stopped) return;
    this._setState("offline", reason);
    this._scheduleReconnect(reason);
  }
  /**
   * Full jitter: a random delay in [0, min(cap, base * 2^attempt)]; the first retry within
   * `firstRetryMs`, so one dropped socket is back at once while a crowd still spreads out. Never
   * sooner than the server asked (`Retry-After`).
   */
  _scheduleReconnect(reason, atLeastMs = 0) {
    if (this._stopped) return;
    this._clear("reconnect");
    const ceiling = this._attempt === 0 ? this.firstRetryMs : Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** this._attempt);
    this._attempt = Math.min(this._attempt + 1, 20);
    const delay = Math.max(atLeastMs, this._online ? Math.random() * ceiling : this.backoffCapMs);
    if (this._state !== "offline") this._setState("offline", reason);
    this._timers.reconnect = setTimeout(() => {
      delete this._timers.reconnect;
      this._connect();
    }, delay);
  }
  /** The next heartbeat, one period of the current mode from now. */
  _scheduleBeat(ws) {
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
  _beat(ws, probe = false) {
    if (this._ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.mode === "active" && Date.now() - this._lastInputAt >= this.idleMs) {
      this._setMode("away");
      return;
    }
    this._scheduleBeat(ws);
    probe = probe || Date.now() - this._lastHeardAt >= this.probeAfterMs;
    const frame = { action: "heartbeat", seq: this.lastSeq, mode: this._announcedMode() };
    if (probe) frame.probe = true;
    this._send(frame);
    if (probe) this._expectAnswer(ws);
  }
  /** A frame was sent that the server answers: no frame at all within `heartbeatTimeoutMs` means a dead socket. */
  _expectAnswer(ws) {
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
  _setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    const mine = this._presence.get(this.me.id);
    if (mine && mode === "away" && mine.status !== "away") this._putPresence(this.me.id, { ...mine, status: "away" });
    if (this._ws) this._beat(this._ws, mode === "active");
  }
  /** The mode announced: away when the page said so (setPresence). */
  _announcedMode() {
    return this._presenceWanted.status === "away" ? "away" : this.mode;
  }
  _visibilityChanged() {
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
  _input() {
    this._lastInputAt = Date.now();
    if (this.mode === "away" && globalThis.document?.visibilityState !== "hidden") this._setMode("active");
  }
  _clear(name) {
    const timer = this._timers[name];
    if (timer !== void 0) {
      clearTimeout(timer);
      delete this._timers[name];
    }
  }
  _setState(state, reason = null) {
    if (this._state === state) return;
    this._state = state;
    this._reason = reason;
    if (!TERMINAL_STATES.includes(state) || state === "stopped") this._error = null;
    this._changed("connection");
    this.emit("state", { state, reason, error: this._error });
  }
  /** Send now if the socket is open. A socket that cannot take a frame is dead: reconnect. */
  _send(frame) {
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
  _sendControl(frame) {
    const sent = this._send(frame);
    if (sent) this._bucket.take();
    return sent;
  }
  // -- sync --------------------------------------------------------------------------------------
  _sendSync() {
    if (this._syncInFlight) {
      this._syncAgain = true;
      return;
    }
    if (this._sendControl({ action: "sync", since: this.lastSeq })) {
      this._syncInFlight = true;
      this._syncSince = this.lastSeq;
    }
  }
  async _onSync(data) {
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
        this.lastSeq = before;
        if (this._ws === ws && ws) {
          const status = err instanceof CollabError ? err.status : null;
          if (status !== null && status >= 400 && status < 500 && status !== 429) {
            this._refused(err, "load");
            return;
          }
          ws.close(4002, "load failed");
          this._onSocketClosed(ws, "load failed");
        }
        return;
      }
      if (this._ws !== ws) return;
    } else {
      for (const ev of data.events ?? []) this._applyEvent(ev, true);
    }
    this._settleGap();
    this._syncInFlight = false;
    const behind = (this.lastSeq ?? 0) < data.seq;
    if (behind && !full && this.lastSeq === before) {
      this.lastSeq = null;
      this._sendSync();
      return;
    }
    if (behind || this._syncAgain || data.more_notifications) {
      this._syncAgain = false;
      this._sendSync();
      return;
    }
    this._goLive();
  }
  _goLive() {
    this._attempt = 0;
    this._setState("live");
    if (this._editingWanted) {
      this._editingSentKey = null;
      this._sendEditing();
    }
    const { status, viewing } = this._presenceWanted;
    if (status !== "active" || viewing !== null) {
      this._sendControl({ action: "presence.update", status: this._announcedMode(), viewing });
    } else if (this._ws) {
      this._beat(this._ws);
    }
    this._pump();
  }
  /** Load every task over HTTP (first sync, or `resync: true`) and notifications on first load. */
  async _loadAll() {
    const touched = /* @__PURE__ */ new Set();
    this._touchedDuringLoad = touched;
    try {
      const items = [];
      let cursor = null;
      do {
        const query = `?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
        const page = await this.api("GET", `/workspaces/${this.workspaceId}/tasks${query}`);
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
        const page = await this.api("GET", "/notifications?unread=true&limit=50");
        this._addNotifications(page.items ?? []);
      } catch {
      }
    }
  }
  // -- frames ------------------------------------------------------------------------------------
  /** The one place where server frames are dispatched by type (a new frame type gets a case here). */
  _onFrame(frame) {
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
      case "presence.batch":
        for (const ev of frame.data.events ?? []) this._onPresence(ev.type, ev.data);
        break;
      case "presence.editing":
        this._onEditing(frame.data);
        break;
      case "task.overwritten":
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
  _tokenRefused() {
    this._tokenDue = "unauthorized";
    this.reconnectNow();
  }
  /**
   * A quiet heartbeat is answered when it probed or when the client is behind: `seq` is the
   * workspace's latest. Behind (an event missed), it syncs once the gap's grace has passed.
   */
  _onHeartbeatAck(data) {
    if (Array.isArray(data.presence)) {
      this._setPresenceList(data.presence);
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
  _setPresenceList(list) {
    this._presence = new Map(list.map((p) => [p.user.id, p]));
    this._presenceSeen = new Map(list.map((p) => [p.user.id, { at: p.last_seen, left: false }]));
    const editing = /* @__PURE__ */ new Map();
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
  _editingView(user, editing) {
    const at = Date.parse(editing.expires_at);
    const expiresAt = Math.min(Number.isNaN(at) ? Date.now() + EDITING_TTL_MS : at, Date.now() + EDITING_TTL_MS);
    return expiresAt > Date.now() ? { user, task_id: editing.task_id, field: editing.field, expiresAt } : null;
  }
  _onEditing(data) {
    const next = new Map(this._editing);
    const view = data.editing ? this._editingView(data.user, data.editing) : null;
    if (view) next.set(data.user.id, view);
    else next.delete(data.user.id);
    this._setEditingMap(next);
  }
  /** Replace the indicators and arm a timer for the next expiry (the snapshot drops expired ones). */
  _setEditingMap(next) {
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
  async _loadPresence() {
    try {
      const page = await this.api("GET", `/workspaces/${this.workspaceId}/presence`);
      this._setPresenceList(page.items);
    } catch {
    }
  }
  _putPresence(userId, entry) {
    const next = new Map(this._presence);
    if (entry) next.set(userId, entry);
    else next.delete(userId);
    this._presence = next;
    this._changed("presence");
  }
  _onPresence(type, data) {
    const seen = this._presenceSeen.get(data.user.id);
    if (type === "presence.left") {
      if (seen && data.last_seen < seen.at) return;
      this._presenceSeen.set(data.user.id, { at: data.last_seen, left: true });
      this._putPresence(data.user.id, null);
      if (this._editing.has(data.user.id)) {
        const next = new Map(this._editing);
        next.delete(data.user.id);
        this._setEditingMap(next);
      }
    } else {
      if (seen && (data.last_seen < seen.at || seen.left && data.last_seen <= seen.at)) return;
      this._presenceSeen.set(data.user.id, { at: data.last_seen, left: false });
      this._putPresence(data.user.id, data);
    }
  }
  /** A workspace event, live or replayed. Replayed events come in order from `since + 1`. */
  _applyEvent(frame, replayed) {
    if (frame.type === "task.created" || frame.type === "task.updated" || frame.type === "task.deleted") {
      this._applyTask(frame.data.task);
    } else {
      this.emit("members", { frame });
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
  _advance(seq) {
    if (typeof seq !== "number" || this.lastSeq === null) return;
    if (seq <= this.lastSeq) return;
    this._ahead.add(seq);
    this._settleGap();
  }
  /** Absorb the seqs that now follow `lastSeq`; arm (or disarm) the gap's sync. */
  _settleGap() {
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
  _applyTask(task) {
    this._touchedDuringLoad?.add(task.id);
    const held = this._server.get(task.id);
    if (held && task.version <= held.version) return;
    this._server.set(task.id, task);
    this._invalidate();
  }
  _onAck(data) {
    const index = this._pending.findIndex((op2) => op2.requestId === data.request_id);
    if (index < 0) return;
    const op = this._pending[index];
    if (data.ok) {
      this._pending.splice(index, 1);
      this._forget(op);
      if (data.task) this._applyTask(data.task);
      this._advance(data.seq);
      this._invalidate();
      const seq = typeof data.seq === "number" ? data.seq : null;
      if (seq !== null && (op.action === "task.create" || op.action === "task.update" || op.action === "task.delete")) {
        this._undo.push(seq);
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
      op.sent = false;
      this._tokenRefused();
      return;
    }
    const limit = body.code === "rate_limited" ? MAX_RATE_RETRIES : body.code === "internal" ? MAX_RETRIES : 0;
    if (op.retries < limit) {
      op.retries += 1;
      op.sent = false;
      const wait = body.retry_after_ms ?? 1e3 * op.retries;
      if (body.code === "rate_limited") this._bucket.pause(wait);
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
  _reject(op, error) {
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
  _resolve(op, task) {
    this._settleOp(op, task, null);
  }
  _settleOp(op, task, error) {
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
  _addNotifications(notes) {
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
  _keep(op) {
    const outbox = this._outbox;
    if (!outbox) return;
    this._outboxOrder = Math.max(this._outboxOrder + 1, Date.now() * 1e3);
    const entry = {
      requestId: op.requestId,
      workspaceId: this.workspaceId,
      userId: this.me.id,
      order: this._outboxOrder,
      action: op.action,
      taskId: op.taskId,
      frame: op.frame
    };
    this._outboxWrites = this._outboxWrites.then(() => outbox.put(entry)).catch(() => void 0);
  }
  /** Remove an answered change from the outbox. */
  _forget(op) {
    const outbox = this._outbox;
    if (!outbox) return;
    this._outboxWrites = this._outboxWrites.then(() => outbox.delete(op.requestId)).catch(() => void 0);
  }
  /**
   * Once per client, before the first connection: the changes a previous page of this user left
   * unanswered go first, in the order they were made, with their `request_id` (the server answers
   * a repeat with the first answer, so a change that had landed lands once).
   */
  async _restoreOutbox() {
    const outbox = this._outbox;
    if (this._outboxRestored || !outbox) return;
    this._outboxRestored = true;
    let entries;
    try {
      entries = await outbox.list(this.workspaceId, this.me.id);
    } catch {
      return;
    }
    const held = new Set(this._pending.map((op) => op.requestId));
    const restored = [];
    for (const entry of entries.sort((a, b) => a.order - b.order)) {
      if (held.has(entry.requestId)) continue;
      this._outboxOrder = Math.max(this._outboxOrder, entry.order);
      const settle = { resolve: () => void 0, reject: () => void 0, done: false };
      restored.push({
        requestId: entry.requestId,
        action: entry.action,
        taskId: entry.taskId,
        frame: entry.frame,
        sent: false,
        retries: 0,
        settle
      });
    }
    if (restored.length) {
      this._pending = [...restored, ...this._pending];
      this._invalidate();
    }
  }
  // -- optimistic operations ---------------------------------------------------------------------
  _enqueue(action, taskId, frame, problem, previousReadAt) {
    let settle = { resolve: () => void 0, reject: () => void 0, done: false };
    const promise = new Promise((resolve, reject) => {
      settle = { resolve, reject, done: false };
    });
    quiet(promise);
    const op = { requestId: frame.request_id, action, taskId, frame, sent: false, retries: 0, settle };
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
      () => clearTimeout(timer)
    );
    this._pump();
    return promise;
  }
  /**
   * Send the queued changes in order while the bucket has tokens; when it is empty, come back when
   * it has one. Order matters (a create before its update), so one waiting change holds the rest.
   */
  _pump() {
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
      if (!op.sent) return;
    }
  }
  _sendOp(op) {
    op.sent = this._send(op.frame);
    if (op.sent) this._changed("connection");
    if (op.sent && this._ws) this._expectAnswer(this._ws);
  }
  _taskView() {
    if (this._view) return this._view;
    const draft = /* @__PURE__ */ new Map();
    for (const [id, task] of this._server) draft.set(id, { ...task, pending: false });
    const now = (/* @__PURE__ */ new Date()).toISOString();
    for (const op of this._pending) {
      if (op.frame.action === "task.create") {
        const d = op.frame.task;
        const id = d.id;
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
            pending: true
          });
        }
      } else if (op.taskId) {
        const base = draft.get(op.taskId);
        if (!base || base.deleted) continue;
        draft.set(
          op.taskId,
          op.frame.action === "task.delete" ? { ...base, deleted: true, pending: true } : { ...base, ...op.frame.changes, pending: true }
        );
      }
    }
    const view = /* @__PURE__ */ new Map();
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
  _invalidate() {
    this._view = null;
    this._changed("tasks");
  }
  /** Coalesce changes to one notification per task turn (a replay of 100 events renders once). */
  _changed(what) {
    this._dirty.add(what);
    this._changedKinds.add(what);
    if (!this._notifyQueued) {
      this._notifyQueued = true;
      queueMicrotask(() => this._notify());
    }
  }
  _notify() {
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
};
export {
  AWAY_HEARTBEAT_MS,
  CollabClient,
  CollabError,
  DEFAULT_BUDGET,
  EDITING_REFRESH_MS,
  EDITING_TTL_MS,
  FIELD_LIMITS,
  HEARTBEAT_MS,
  HEARTBEAT_TIMEOUT_MS,
  HIDDEN_AWAY_MS,
  HttpError,
  IDLE_MS,
  IndexedDbOutbox,
  MAX_FRAME_BYTES,
  MAX_NOTIFICATION_IDS,
  MUTATION_TIMEOUT_MS,
  OPEN_TIMEOUT_MS,
  PROBE_AFTER_MS,
  TASK_PRIORITY_VALUES,
  TASK_STATUS_VALUES,
  TERMINAL_STATES,
  TokenBucket,
  UNDO_DEPTH,
  charCount,
  checkChanges,
  checkDraft,
  fieldMark,
  fieldProblem,
  tokenClaims,
  uuid4
};
