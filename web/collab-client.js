// @ts-check
/**
 * Collab browser client: the WebSocket protocol of contract section 3, with no build step.
 *
 *   import { CollabClient } from "./collab-client.js";
 *   const client = new CollabClient({ token, workspaceId });
 *   client.addEventListener("tasks", () => render(client.tasks()));
 *   client.start();
 *   client.updateTask(id, { title: "New title" });
 *
 * What it does for the page:
 * - connects with a fresh single-use ticket (POST /api/ws-tickets) every time, sends `sync` first
 *   (nothing can reach a connection during $connect), loads tasks over HTTP on the first sync and
 *   replays missed events (by `seq`) on every later one; a reply whose `data.seq` is beyond what it
 *   applied (the server pages long replays), or with `more_notifications: true`, is followed by
 *   another `sync`;
 * - presence by mode (v1.2): a visible tab in use is `active` and heartbeats every 30 s; a tab hidden
 *   for `hiddenAwayMs` (10 s) or without input for `idleMs` (5 min) is `away` and heartbeats every
 *   `awayHeartbeatMs` (7 min). A switch is sent at once, as a heartbeat naming the mode (peers see
 *   the user away when all their tabs are); coming back is at once, on visibility or input;
 * - heartbeats are quiet (v1.2: they carry `seq`, the last seq applied, and the server answers only
 *   when there is something to say): any frame from the server is a sign of life; after
 *   `probeAfterMs` (10 min) of silence, and whenever the tab comes back, the heartbeat asks for an
 *   answer (`probe: true`), and no frame within `heartbeatTimeoutMs` (10 s) means a dead socket
 *   (the same after sending a change, whose `ack` is due);
 *   an answer whose `seq` is beyond what it applied (it missed an event) is followed by a `sync`;
 *   a probe's answer carries the presence list (away tabs are sent no `presence.updated`);
 * - reconnects with exponential backoff and full jitter (first retry within 100 ms, cap ~10 s);
 * - applies a task event only when its `version` is higher than the one held (deletion is a
 *   tombstone), and syncs when a gap in `seq` is still open after a short grace (concurrent
 *   fan-outs reorder events routinely: the missing ones usually arrive a few ms later);
 * - keeps optimistic changes as pending operations (by `request_id`) on top of the server's
 *   state: remote events move the base, pending fields stay on top until their `ack`, which is
 *   adopted on success and rolls the change back on error; operations made offline are queued
 *   and re-sent with the same `request_id` (the server answers a repeat with the first answer);
 * - tracks presence and notifications (with the unread count).
 *
 * Events (all CustomEvent): `state` {state, reason}, `tasks`, `presence`, `notifications`,
 * `members` {frame}, `rejected` {action, taskId, error}, `servererror` {code, message}.
 */

/** @typedef {import("./protocol").Task} Task */
/** @typedef {import("./protocol").Notification} Notification */
/** @typedef {import("./protocol").PresenceEntry} PresenceEntry */
/** @typedef {import("./protocol").ClientFrame} ClientFrame */
/** @typedef {import("./protocol").ServerFrame} ServerFrame */
/** @typedef {import("./protocol").SyncData} SyncData */
/** @typedef {import("./protocol").AckData} AckData */
/** @typedef {import("./protocol").ErrorBody} ErrorBody */
/** @typedef {Task & {pending: boolean}} TaskView */
/**
 * @typedef {object} PendingOp
 * @property {string} requestId
 * @property {"task.create" | "task.update" | "task.delete" | "notification.read"} action
 * @property {string | null} taskId
 * @property {any} frame
 * @property {boolean} sent
 * @property {number} retries
 * @property {Map<string, string | null>} [previousReadAt]
 */

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
/** No answer to a probe within this time: the connection is dead even if the socket looks open. */
export const HEARTBEAT_TIMEOUT_MS = 10_000;
/** A WebSocket handshake that takes longer than this is abandoned and retried. */
export const OPEN_TIMEOUT_MS = 10_000;
/** Transient refusals (rate_limited, internal) are retried this many times before rolling back. */
const MAX_RETRIES = 3;
/** What counts as input for idle detection (listened to on window, passive). */
const INPUT_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"];

export class HttpError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * A random (v4) UUID for task ids and request ids. `crypto.randomUUID()` exists only in secure
 * contexts (https, localhost); a board opened over plain http from another machine (`collab dev
 * --host 0.0.0.0`) builds the same thing from `crypto.getRandomValues()`, which exists everywhere.
 */
export function uuid4() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The claims of a JWT, unverified (for display only: the server verifies). */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

export class CollabClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.token access token, sent as a Bearer token to the HTTP API
   * @param {string} options.workspaceId
   * @param {string} [options.apiBase] the HTTP API's base URL ("/api" under the local gateway)
   * @param {number} [options.heartbeatMs]
   * @param {number} [options.heartbeatTimeoutMs] how long a probe may wait for any frame
   * @param {number} [options.awayHeartbeatMs] the heartbeat period of an away tab
   * @param {number} [options.hiddenAwayMs] hidden this long: away
   * @param {number} [options.idleMs] visible without input this long: away
   * @param {number} [options.probeAfterMs] silence from the server this long: the heartbeat probes
   * @param {number} [options.backoffBaseMs]
   * @param {number} [options.backoffCapMs]
   * @param {number} [options.firstRetryMs] the first reconnect waits a random [0, firstRetryMs)
   * @param {number} [options.gapGraceMs] how long a missing seq may take before a sync asks for it
   */
  constructor({
    token,
    workspaceId,
    apiBase = "/api",
    heartbeatMs = HEARTBEAT_MS,
    heartbeatTimeoutMs = HEARTBEAT_TIMEOUT_MS,
    awayHeartbeatMs = AWAY_HEARTBEAT_MS,
    hiddenAwayMs = HIDDEN_AWAY_MS,
    idleMs = IDLE_MS,
    probeAfterMs = PROBE_AFTER_MS,
    backoffBaseMs = 250,
    backoffCapMs = 10_000,
    firstRetryMs = 100,
    gapGraceMs = 300,
  }) {
    super();
    this.token = token;
    this.workspaceId = workspaceId;
    this.apiBase = apiBase.replace(/\/$/, "");
    this.heartbeatMs = heartbeatMs;
    this.heartbeatTimeoutMs = heartbeatTimeoutMs;
    this.awayHeartbeatMs = awayHeartbeatMs;
    this.hiddenAwayMs = hiddenAwayMs;
    this.idleMs = idleMs;
    this.probeAfterMs = probeAfterMs;
    /** @type {"active" | "away"} this tab's mode: what its heartbeats announce */
    this.mode = "active";
    this._lastHeardAt = 0;
    this._lastInputAt = Date.now();
    this._onVisibility = () => this._visibilityChanged();
    this._onInput = () => this._input();
    this.backoffBaseMs = backoffBaseMs;
    this.backoffCapMs = backoffCapMs;
    this.firstRetryMs = firstRetryMs;
    this.gapGraceMs = gapGraceMs;
    /** @type {Set<number>} seqs applied beyond a gap, waiting for the gap to close */
    this._ahead = new Set();
    const claims = tokenClaims(token);
    /** @type {{id: string, name: string}} */
    this.me = { id: String(claims.sub || ""), name: String(claims.name || claims.email || claims.sub || "") };

    /** connecting | syncing | live | offline | denied | stopped */
    this.state = "idle";
    /** @type {number | null} the last contiguous seq applied; null until the first sync */
    this.lastSeq = null;
    /** @type {Map<string, Task>} committed tasks as last seen (tombstones included) */
    this._server = new Map();
    /** @type {PendingOp[]} optimistic operations in the order they were made */
    this._pending = [];
    /** @type {Map<string, PresenceEntry>} by user id */
    this.presence = new Map();
    /**
     * Newest presence change seen per user: {at: last_seen, left}. Presence events carry no seq and
     * are posted by concurrent invocations, so an older `presence.updated` can arrive after a newer
     * `presence.left`; `last_seen` (server time, ISO with milliseconds: strings sort in time order)
     * orders them, and a `left` is a tombstone that older events cannot undo.
     * @type {Map<string, {at: string, left: boolean}>}
     */
    this._presenceSeen = new Map();
    /** @type {Map<string, Notification>} by id */
    this.notifications = new Map();
    /** @type {Map<string, TaskView> | null} */
    this._view = null;

    /** @type {WebSocket | null} */
    this._ws = null;
    this._stopped = true;
    this._connecting = false;
    this._attempt = 0;
    this._syncInFlight = false;
    this._syncAgain = false;
    /** @type {number | null} */
    this._syncSince = null;
    this._loaded = false;
    /** @type {Set<string> | null} ids touched by events while a full load is running */
    this._touchedDuringLoad = null;
    /** @type {{status: "active" | "away", viewing: string | null}} */
    this._presenceWanted = { status: "active", viewing: null };
    /** @type {Record<string, any>} */
    this._timers = {};
    /** @type {Set<string>} */
    this._dirty = new Set();
    this._onOnline = () => this.reconnectNow();
  }

  // -- public API --------------------------------------------------------------------------------
  start() {
    if (!this._stopped) return;
    this._stopped = false;
    globalThis.addEventListener?.("online", this._onOnline);
    globalThis.document?.addEventListener("visibilitychange", this._onVisibility);
    for (const type of INPUT_EVENTS) globalThis.addEventListener?.(type, this._onInput, { passive: true, capture: true });
    this._lastInputAt = Date.now();
    this.mode = globalThis.document?.visibilityState === "hidden" ? "away" : "active";
    this._connect();
  }

  stop() {
    this._stopped = true;
    globalThis.removeEventListener?.("online", this._onOnline);
    globalThis.document?.removeEventListener("visibilitychange", this._onVisibility);
    for (const type of INPUT_EVENTS) globalThis.removeEventListener?.(type, this._onInput, { capture: true });
    for (const name of Object.keys(this._timers)) this._clear(name);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000, "client stopped");
    this._setState("stopped");
  }

  /** Drop the connection and reconnect at once (a fresh ticket, then sync). */
  reconnectNow() {
    if (this._stopped || this.state === "denied") return;
    this._attempt = 0;
    if (this._ws) {
      this._ws.close(4000, "reconnecting");
      this._onSocketClosed(this._ws, "reconnecting");
    } else {
      this._clear("reconnect");
      this._connect();
    }
  }

  /** @returns {TaskView[]} the board as the user should see it: committed state plus pending changes */
  tasks() {
    return [...this._taskView().values()].filter((t) => !t.deleted);
  }

  /** @param {string} id @returns {TaskView | undefined} */
  task(id) {
    const t = this._taskView().get(id);
    return t && !t.deleted ? t : undefined;
  }

  /** @returns {number} */
  get unreadCount() {
    let n = 0;
    for (const note of this.notifications.values()) if (!note.read_at) n += 1;
    return n;
  }

  /** @returns {number} operations not yet acknowledged by the server */
  get pendingCount() {
    return this._pending.length;
  }

  /**
   * Create a task; its id is chosen here, so the page can refer to it before the ack.
   * @param {{title: string, description?: string, status?: string, priority?: string,
   *          due_date?: string | null, assigned_to?: string | null}} fields
   * @returns {string} the new task's id
   */
  createTask(fields) {
    const id = uuid4();
    this._enqueue("task.create", id, { task: { ...fields, id } });
    return id;
  }

  /** @param {string} taskId @param {Record<string, any>} changes any writable fields */
  updateTask(taskId, changes) {
    if (Object.keys(changes).length === 0) return;
    this._enqueue("task.update", taskId, { task_id: taskId, changes: { ...changes } });
  }

  /** @param {string} taskId */
  deleteTask(taskId) {
    this._enqueue("task.delete", taskId, { task_id: taskId });
  }

  /** @param {string[]} ids notifications to mark read (optimistically) */
  markRead(ids) {
    const unread = ids.filter((id) => this.notifications.get(id) && !this.notifications.get(id)?.read_at);
    if (unread.length === 0) return;
    /** @type {Map<string, string | null>} */
    const previous = new Map();
    const now = new Date().toISOString();
    for (const id of unread) {
      const note = /** @type {Notification} */ (this.notifications.get(id));
      previous.set(id, note.read_at ?? null);
      this.notifications.set(id, { ...note, read_at: now });
    }
    const op = this._enqueue("notification.read", null, { notification_ids: unread });
    if (op) op.previousReadAt = previous;
    this._changed("notifications");
  }

  /**
   * What this user is doing; peers get `presence.updated`. Re-sent after every reconnect.
   * @param {{status?: "active" | "away", viewing?: string | null}} presence
   */
  setPresence({ status = this._presenceWanted.status, viewing = this._presenceWanted.viewing }) {
    this._presenceWanted = { status, viewing };
    const mine = this.presence.get(this.me.id);
    if (mine) {
      this.presence.set(this.me.id, /** @type {PresenceEntry} */ ({ ...mine, status, viewing }));
      this._changed("presence");
    }
    if (this.state === "live") this._send({ action: "presence.update", status: this._announcedMode(), viewing });
  }

  /**
   * A call to the HTTP API with the access token.
   * @param {string} method @param {string} path @param {any} [body]
   */
  async api(method, path, body) {
    const response = await fetch(this.apiBase + path, {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      throw new HttpError(response.status, err.code || "http_error", err.message || response.statusText);
    }
    return data;
  }

  // -- connection ----------------------------------------------------------------------------
  async _connect() {
    if (this._stopped || this._ws || this._connecting) return; // one attempt at a time
    this._setState("connecting");
    /** @type {{ticket: string, url: string, expires_at: any}} */
    let ticket;
    this._connecting = true;
    try {
      ticket = await this.api("POST", "/ws-tickets", { workspace_id: this.workspaceId });
    } catch (err) {
      if (err instanceof HttpError && [401, 403, 404].includes(err.status)) {
        this._setState("denied", err.message); // a new ticket will not help: stop retrying
        return;
      }
      this._scheduleReconnect(String(err && err.message));
      return;
    } finally {
      this._connecting = false;
    }
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
      this._lastHeardAt = Date.now(); // any frame is a sign of life: a probe's deadline is met
      this._clear("heartbeatDeadline");
      this._onFrame(frame);
    };
    ws.onclose = (event) => this._onSocketClosed(ws, `closed (${event.code})`);
  }

  /** @param {WebSocket} ws @param {string} reason */
  _onSocketClosed(ws, reason) {
    if (this._ws !== ws) return;
    this._ws = null;
    for (const name of ["open", "heartbeat", "heartbeatDeadline", "behind"]) this._clear(name);
    this._syncInFlight = false;
    this._syncAgain = false;
    for (const op of this._pending) op.sent = false; // unanswered: re-sent after the next sync
    if (this._stopped) return;
    this._setState("offline", reason);
    this._scheduleReconnect(reason);
  }

  /**
   * Full jitter: a random delay in [0, min(cap, base * 2^attempt)]; the first retry within
   * `firstRetryMs`, so one dropped socket is back at once while a crowd still spreads out.
   */
  _scheduleReconnect(reason) {
    if (this._stopped) return;
    this._clear("reconnect");
    const ceiling =
      this._attempt === 0
        ? this.firstRetryMs
        : Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** this._attempt);
    this._attempt = Math.min(this._attempt + 1, 20);
    const delay = Math.random() * ceiling;
    if (this.state !== "offline") this._setState("offline", reason);
    this._timers.reconnect = setTimeout(() => this._connect(), delay);
  }

  /** The next heartbeat, one period of the current mode from now. @param {WebSocket} ws */
  _scheduleBeat(ws) {
    this._clear("heartbeat");
    const period = this.mode === "away" ? this.awayHeartbeatMs : this.heartbeatMs;
    this._timers.heartbeat = setTimeout(() => this._beat(ws), period);
  }

  /**
   * A heartbeat (v1.2): the last seq applied and this tab's mode. It asks for an answer (`probe`)
   * when asked to, or when nothing was heard for `probeAfterMs`; then any frame within
   * `heartbeatTimeoutMs` will do, and none means the socket is dead.
   * @param {WebSocket} ws @param {boolean} [probe]
   */
  _beat(ws, probe = false) {
    if (this._ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.mode === "active" && Date.now() - this._lastInputAt >= this.idleMs) {
      this._setMode("away"); // idle: the switch sends this beat
      return;
    }
    this._scheduleBeat(ws);
    probe = probe || Date.now() - this._lastHeardAt >= this.probeAfterMs;
    /** @type {any} */
    const frame = { action: "heartbeat", seq: this.lastSeq, mode: this._announcedMode() };
    if (probe) frame.probe = true;
    this._send(frame);
    if (probe) this._expectAnswer(ws);
  }

  /**
   * A frame was sent that the server answers (a probe, a change): no frame at all within
   * `heartbeatTimeoutMs` means the socket is dead, however open it looks. @param {WebSocket} ws
   */
  _expectAnswer(ws) {
    if (this._timers.heartbeatDeadline) return;
    this._timers.heartbeatDeadline = setTimeout(() => {
      delete this._timers.heartbeatDeadline;
      if (this._ws === ws) {
        ws.close(4001, "no answer");
        this._onSocketClosed(ws, "heartbeat timeout");
      }
    }, this.heartbeatTimeoutMs);
  }

  /**
   * Switch this tab's mode: at once, as a heartbeat naming it (the server moves the connection's
   * deadline; peers see the user away once all their tabs are). Back to active, it probes: after
   * a while hidden, the socket may have died unnoticed.
   * @param {"active" | "away"} mode
   */
  _setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    const mine = this.presence.get(this.me.id);
    if (mine && mode === "away" && mine.status !== "away") {
      this.presence.set(this.me.id, /** @type {PresenceEntry} */ ({ ...mine, status: "away" }));
      this._changed("presence");
    }
    if (this._ws) this._beat(this._ws, mode === "active");
  }

  /** @returns {"active" | "away"} the mode announced: away when the page said so (setPresence) */
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

  /** @param {string} name */
  _clear(name) {
    const timer = this._timers[name];
    if (timer !== undefined) {
      clearTimeout(timer);
      clearInterval(timer);
      delete this._timers[name];
    }
  }

  /** @param {string} state @param {string} [reason] */
  _setState(state, reason) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, reason } }));
  }

  /** @param {any} frame @returns {boolean} sent */
  _send(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // -- sync ------------------------------------------------------------------------------------
  _sendSync() {
    if (this._syncInFlight) {
      this._syncAgain = true;
      return;
    }
    if (this._send({ action: "sync", since: this.lastSeq })) {
      this._syncInFlight = true;
      this._syncSince = this.lastSeq;
    }
  }

  /** @param {SyncData} data */
  async _onSync(data) {
    const ws = this._ws;
    const since = this._syncSince;
    const before = this.lastSeq;
    this._setPresenceList(data.presence || []);
    if (data.more_presence) this._loadPresence();
    this._addNotifications(data.notifications || []);
    const full = since === null || data.resync;
    if (full) {
      this.lastSeq = data.seq;
      try {
        await this._loadAll();
      } catch (err) {
        this._syncInFlight = false;
        this.lastSeq = before; // nothing was loaded: the next sync must load again
        if (err instanceof HttpError && [401, 403, 404].includes(err.status)) {
          this.stop();
          this._setState("denied", err.message);
          return;
        }
        if (this._ws === ws && ws) {
          ws.close(4002, "load failed"); // reconnect, and try again
          this._onSocketClosed(ws, "load failed");
        }
        return;
      }
      if (this._ws !== ws) return; // the connection dropped while loading; the next one syncs again
    } else {
      for (const ev of data.events || []) this._applyEvent(ev, true);
    }
    this._settleGap();
    this._syncInFlight = false;
    const behind = /** @type {number} */ (this.lastSeq) < data.seq;
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

  _goLive() {
    this._attempt = 0; // a connection that got this far resets the backoff
    this._setState("live");
    const { status, viewing } = this._presenceWanted;
    if (status !== "active" || viewing !== null) {
      this._send({ action: "presence.update", status: this._announcedMode(), viewing });
    } else if (this._ws) {
      this._beat(this._ws); // the mode, at once: a new connection is active, or as its user was
    }
    for (const op of this._pending) if (!op.sent) this._sendOp(op);
  }

  /** Load every task over HTTP (first sync, or `resync: true`) and notifications on first load. */
  async _loadAll() {
    this._touchedDuringLoad = new Set();
    try {
      /** @type {Task[]} */
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
        const touched = this._touchedDuringLoad.has(id);
        if (fresh ? held.version > fresh.version : touched || held.deleted) next.set(id, held);
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
        this._addNotifications(page.items || []);
      } catch {
        // notifications are a convenience here; the board works without them
      }
    }
  }

  // -- frames ----------------------------------------------------------------------------------
  /** @param {any} frame */
  _onFrame(frame) {
    const data = frame.data || {};
    switch (frame.type) {
      case "heartbeat.ack":
        this._onHeartbeatAck(data);
        break;
      case "sync":
        this._onSync(data);
        break;
      case "ack":
        this._onAck(data);
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
        this._onPresence(frame.type, data);
        break;
      case "presence.batch": // v1.2: several changes in one frame, in order
        for (const ev of data.events || []) this._onPresence(ev.type, ev.data);
        break;
      case "notification.created":
        this._addNotifications([data.notification]);
        break;
      case "error":
        this.dispatchEvent(new CustomEvent("servererror", { detail: data }));
        break;
      default:
        break;
    }
  }

  /**
   * A quiet heartbeat is answered when it probed or when the client is behind: `seq` is the
   * workspace's latest. Behind (an event missed), it syncs once the gap's grace has passed, as for
   * a gap (the missing event may be in flight). @param {any} data
   */
  _onHeartbeatAck(data) {
    if (Array.isArray(data.presence)) this._setPresenceList(data.presence); // a probe's answer
    if (data.more_presence) this._loadPresence();
    const latest = data.seq;
    if (typeof latest !== "number" || this.lastSeq === null || latest <= this.lastSeq) return;
    this._clear("behind");
    this._timers.behind = setTimeout(() => {
      delete this._timers.behind;
      if (this.lastSeq !== null && this.lastSeq < latest) this._sendSync();
    }, this.gapGraceMs);
  }

  /**
   * A large workspace's presence list is longer than a WebSocket reply's share (v1.2: the reply holds
   * its active users first and says `more_presence`): the whole list comes over HTTP. On failure the
   * partial list stays until the next sync or probe.
   */
  async _loadPresence() {
    try {
      const page = await this.api("GET", `/workspaces/${this.workspaceId}/presence`);
      this._setPresenceList(page.items || []);
    } catch (err) {
      this._changed("presence");
    }
  }

  /** The whole list (sync, or a probe's answer: away tabs are sent no presence.updated). @param {PresenceEntry[]} list */
  _setPresenceList(list) {
    this.presence = new Map(list.map((p) => [p.user.id, p]));
    this._presenceSeen = new Map(list.map((p) => [p.user.id, { at: p.last_seen, left: false }]));
    this._changed("presence");
  }

  /** @param {string} type @param {any} data a presence entry */
  _onPresence(type, data) {
    const seen = this._presenceSeen.get(data.user.id);
    if (type === "presence.left") {
      if (seen && data.last_seen < seen.at) return; // a newer session of theirs is already here
      this._presenceSeen.set(data.user.id, { at: data.last_seen, left: true });
      this.presence.delete(data.user.id);
    } else {
      if (seen && (data.last_seen < seen.at || (seen.left && data.last_seen <= seen.at))) return;
      this._presenceSeen.set(data.user.id, { at: data.last_seen, left: false });
      this.presence.set(data.user.id, data);
    }
    this._changed("presence");
  }

  /**
   * A workspace event, live or replayed. Replayed events come in order from `since + 1`.
   * @param {any} frame @param {boolean} replayed
   */
  _applyEvent(frame, replayed) {
    if (frame.type.startsWith("task.")) this._applyTask(frame.data.task);
    else this.dispatchEvent(new CustomEvent("members", { detail: { frame } }));
    if (replayed) {
      if (this.lastSeq === null || frame.seq > this.lastSeq) this.lastSeq = frame.seq;
    } else {
      this._advance(frame.seq);
    }
  }

  /**
   * Move `lastSeq` along a contiguous run. A jump is a gap: concurrent fan-outs deliver events out
   * of order all the time, so wait `gapGraceMs` for the missing seqs before asking for them with a
   * sync (syncing at once made every peer sync on every reorder, which swamps a busy server).
   */
  _advance(seq) {
    if (typeof seq !== "number" || this.lastSeq === null) return; // not tracked before the first sync
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

  /** @param {Task} task */
  _applyTask(task) {
    this._touchedDuringLoad?.add(task.id);
    const held = this._server.get(task.id);
    if (held && task.version <= held.version) return; // older or the same: already have it
    this._server.set(task.id, task);
    this._invalidate();
  }

  /** @param {AckData} data */
  _onAck(data) {
    const index = this._pending.findIndex((op) => op.requestId === data.request_id);
    if (index < 0) return; // a repeat's answer for something already settled
    const op = this._pending[index];
    if (data.ok) {
      this._pending.splice(index, 1);
      if (data.task) this._applyTask(data.task);
      this._advance(data.seq); // our own change's event is not sent to us: its seq comes here
      this._invalidate();
      return;
    }
    const error = /** @type {ErrorBody} */ (data.error);
    if ((error.code === "rate_limited" || error.code === "internal") && op.retries < MAX_RETRIES) {
      op.retries += 1;
      op.sent = false;
      const wait = error.retry_after_ms ?? 1000 * op.retries;
      setTimeout(() => {
        if (this.state === "live" && !op.sent && this._pending.includes(op)) this._sendOp(op);
      }, wait);
      return;
    }
    this._reject(op, error);
  }

  /** Roll an optimistic operation back and tell the page why. @param {PendingOp} op @param {any} error */
  _reject(op, error) {
    this._pending = this._pending.filter((p) => p !== op);
    if (error.task) this._applyTask(error.task);
    if (op.previousReadAt) {
      for (const [id, readAt] of op.previousReadAt) {
        const note = this.notifications.get(id);
        if (note) this.notifications.set(id, { ...note, read_at: readAt });
      }
      this._changed("notifications");
    }
    this._invalidate();
    this.dispatchEvent(
      new CustomEvent("rejected", { detail: { action: op.action, taskId: op.taskId, error } }),
    );
  }

  /** @param {Notification[]} notes */
  _addNotifications(notes) {
    if (!notes.length) return;
    for (const note of notes) {
      const held = this.notifications.get(note.id);
      this.notifications.set(note.id, held && held.read_at && !note.read_at ? { ...note, read_at: held.read_at } : note);
    }
    this._changed("notifications");
  }

  // -- optimistic operations -------------------------------------------------------------------
  /**
   * @param {PendingOp["action"]} action @param {string | null} taskId @param {Record<string, any>} fields
   * @returns {PendingOp | null}
   */
  _enqueue(action, taskId, fields) {
    const requestId = uuid4();
    const frame = { action, request_id: requestId, ...fields };
    /** @type {PendingOp} */
    const op = { requestId, action, taskId, frame, sent: false, retries: 0 };
    if (new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
      this._reject(op, { code: "payload_too_large", message: `a frame is at most ${MAX_FRAME_BYTES} bytes` });
      return null;
    }
    this._pending.push(op);
    this._invalidate();
    if (this.state === "live") this._sendOp(op);
    return op;
  }

  /** @param {PendingOp} op */
  _sendOp(op) {
    op.sent = this._send(op.frame);
    if (op.sent && this._ws) this._expectAnswer(this._ws); // its ack: a dead socket shows at once
  }

  /** @returns {Map<string, TaskView>} */
  _taskView() {
    if (this._view) return this._view;
    /** @type {Map<string, TaskView>} */
    const view = new Map();
    for (const [id, task] of this._server) view.set(id, { ...task, pending: false });
    const now = new Date().toISOString();
    for (const op of this._pending) {
      if (op.action === "task.create") {
        const draft = op.frame.task;
        if (!view.has(draft.id)) {
          view.set(draft.id, {
            id: draft.id,
            workspace_id: this.workspaceId,
            title: draft.title,
            description: draft.description ?? "",
            status: draft.status ?? "todo",
            priority: draft.priority ?? "medium",
            due_date: draft.due_date ?? null,
            assigned_to: draft.assigned_to ?? null,
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
        const base = view.get(op.taskId);
        if (!base || base.deleted) continue; // deleted remotely: the pending change has nothing to apply to
        view.set(
          op.taskId,
          op.action === "task.delete"
            ? { ...base, deleted: true, pending: true }
            : { ...base, ...op.frame.changes, pending: true },
        );
      }
    }
    this._view = view;
    return view;
  }

  _invalidate() {
    this._view = null;
    this._changed("tasks");
  }

  /** Coalesce change events to one per task (a replay of 100 events renders once). @param {string} what */
  _changed(what) {
    if (this._dirty.size === 0) {
      queueMicrotask(() => {
        const dirty = [...this._dirty];
        this._dirty.clear();
        for (const name of dirty) this.dispatchEvent(new CustomEvent(name));
      });
    }
    this._dirty.add(what);
  }
}
