// @ts-check
/**
 * The demo board: columns by status, a task editor, presence, notifications, connection state.
 *
 * Everything users typed (titles, descriptions, names) reaches the page through `h()` below, which
 * only ever creates text nodes and sets attributes: never innerHTML. The board is re-rendered from
 * the client's snapshot on every change (a few hundred cards at most), so there is no DOM diffing;
 * the focused control is found again after each redraw (by task id and role), so a remote change
 * never drops keyboard focus.
 *
 * Keyboard: Tab reaches every card and control; Enter or Space on a card opens the editor (a modal
 * dialog: focus stays inside, Escape closes it, focus returns to the card); Alt+Arrow Left/Right
 * (or the card's buttons) moves a card between columns; the notifications panel opens with its
 * button, takes focus, and closes with Escape. The connection badge is a live region.
 *
 * URL: `/?token=<access token>&workspace=<workspace id>` (`collab dev` prints ready-made links).
 */
// "/collab-client.js" (not "./"): served by `collab dev`, and mapped by web/tsconfig.json to the
// package's source, so `tsc -p web` checks this file against the real types.
import { CollabClient, FIELD_LIMITS, checkChanges, checkDraft, fieldMark } from "/collab-client.js";

/** @typedef {import("/collab-client.js").TaskView} TaskView */
/** @typedef {import("/collab-client.js").ConnectionState} ConnectionState */
/** @typedef {import("/collab-client.js").TaskField} TaskField */
/** @typedef {import("/collab-client.js").HistoryEntry} HistoryEntry */
/** @typedef {import("/collab-client.js").Task} Task */
/** @typedef {import("./protocol").PresenceEntry} PresenceEntry */
/** @typedef {import("./protocol").Notification} Notification */

const STATUSES = /** @type {const} */ (["todo", "in_progress", "done"]);
const STATUS_LABEL = { todo: "To do", in_progress: "In progress", done: "Done" };
const PRIORITY_RANK = { urgent: 0, high: 1, medium: 2, low: 3 };
/** @type {Record<ConnectionState, string>} */
const STATE_LABEL = {
  idle: "Starting…",
  connecting: "Connecting…",
  syncing: "Syncing…",
  live: "Live",
  offline: "Offline, reconnecting…",
  unauthorized: "Signed out",
  forbidden: "No access",
  invalid: "Invalid link",
  stopped: "Stopped",
};
/** What a final state means for the user, and what to do. */
const STATE_NOTICE = {
  unauthorized: "Your sign-in has expired or was revoked. Sign in again, then press Retry.",
  forbidden: "You are not a member of this workspace (or it no longer exists). Ask its owner to add you.",
  invalid: "This link does not name a valid workspace. Open one of the links `collab dev` printed.",
};
/** @type {TaskField[]} */
const EDITABLE = ["title", "description", "status", "priority", "due_date", "assigned_to"];
/** @type {Record<string, string>} */
const FIELD_LABEL = { title: "title", description: "description", status: "status", priority: "priority", due_date: "due date", assigned_to: "assignee", deleted: "deleted" };
const TOAST_MS = 6000;
/** Toasts that offer an action (Undo, Put mine back) stay longer. */
const ACTION_TOAST_MS = 15000;
/** @type {Record<string, string>} */
const KIND_VERB = { create: "created it", update: "changed", delete: "deleted it", undo: "undid", redo: "redid" };

/** "just now", "2 min ago", "3 h ago", "4 days ago". @param {string} iso */
function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/**
 * Create an element. Strings among `children` become text nodes; `props` become attributes, except
 * `on*` (listeners) and a few DOM properties. There is deliberately no way to set innerHTML.
 * @param {string} tag @param {Record<string, any>} [props] @param {...(Node | string | null | undefined | false)} children
 */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "selected" || key === "tabIndex") /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** @param {string} selector @returns {any} */
const $ = (selector) => document.querySelector(selector);

/** @param {string} name */
function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/);
  return ((parts[0]?.[0] || "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

/** @param {string} text */
function hue(text) {
  let n = 0;
  for (const ch of String(text)) n = (n * 31 + (ch.codePointAt(0) ?? 0)) % 360;
  return n;
}

/** @param {string} userId @param {string} name @param {string} [extraClass] */
function avatar(userId, name, extraClass = "") {
  return h("span", { class: `avatar ${extraClass}`, style: `--hue: ${hue(userId)}`, title: name, "aria-hidden": "true" }, initials(name));
}

/**
 * Show a message for a few seconds. The same message again merges into the one shown (with a
 * count) instead of stacking: 7 identical refusals are one toast "×7".
 * @param {string} text @param {"info" | "error"} [kind]
 */
function toast(text, kind = "info", action = /** @type {{label: string, run: () => void} | null} */ (null)) {
  const box = $(".toasts");
  const same = action ? undefined : [...box.children].find((el) => el.dataset.text === text);
  const el = same ?? h("div", { class: `toast ${kind}`, "data-testid": "toast", "data-text": text, "data-count": "0" });
  const count = Number(el.dataset.count) + 1;
  el.dataset.count = String(count);
  const button = action
    ? h(
        "button",
        {
          type: "button",
          class: "toast-action",
          "data-testid": "toast-action",
          onclick: () => {
            el.remove();
            action.run();
          },
        },
        action.label,
      )
    : null;
  el.replaceChildren(text, count > 1 ? h("span", { class: "times", "data-testid": "toast-count" }, ` ×${count}`) : "", button ?? "");
  if (!same) box.append(el);
  clearTimeout(Number(el.dataset.timer));
  el.dataset.timer = String(setTimeout(() => el.remove(), action ? ACTION_TOAST_MS : TOAST_MS));
}

/** @param {(string | Node)[]} lines */
function notice(...lines) {
  const box = $("[data-testid=notice]");
  box.replaceChildren(...lines.map((line) => h("p", {}, line)));
  box.hidden = false;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const workspaceId = params.get("workspace");
  if (!token) {
    setBadge("stopped", "No token");
    notice(
      "This page needs an access token: open one of the links `collab dev` printed,",
      "or add ?token=<access token>&workspace=<workspace id> to the address.",
    );
    return;
  }
  if (!workspaceId) {
    await chooseWorkspace(token);
    return;
  }
  new Board(new CollabClient({ token, workspaceId, outbox: true })).start();
}

/** @param {string} state @param {string} label */
function setBadge(state, label) {
  const el = $("[data-testid=conn-state]");
  el.dataset.state = state;
  el.textContent = label;
}

/** No workspace in the URL: list the user's workspaces as links (or say there are none). @param {string} token */
async function chooseWorkspace(token) {
  const probe = new CollabClient({ token, workspaceId: "" });
  try {
    /** @type {{items: {id: string, name: string}[]}} */
    const page = await probe.api("GET", "/workspaces");
    setBadge("stopped", "No workspace chosen");
    if (page.items.length === 0) {
      notice(
        "You are not a member of any workspace yet.",
        "Create one over the API (POST /api/workspaces), or ask a workspace's owner to add you.",
      );
      return;
    }
    const links = page.items.map((w) => {
      const url = new URL(location.href);
      url.searchParams.set("workspace", w.id);
      return h("li", {}, h("a", { href: url.toString() }, w.name));
    });
    notice("Choose a workspace:", h("ul", {}, ...links));
  } catch (err) {
    setBadge("unauthorized", "Signed out");
    notice(`Could not list workspaces: ${err instanceof Error ? err.message : err}`);
  }
}

class Board {
  /** @param {CollabClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, {user_id: string, display_name: string, role: string}>} */
    this.members = new Map();
    /** @type {string | null} */
    this.openTaskId = null;
    /** @type {Set<string>} editor fields the user changed since opening */
    this.dirty = new Set();
    /** @type {Map<string, number>} per editor field: the task version shown when the user started editing it (v1.3 seen_version) */
    this.seenAt = new Map();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.blurTimer = undefined;
    /** @type {number | null} the version whose history the task panel shows */
    this.historyVersion = null;
    /** @type {any} */ (window).collab = { client, board: this }; // for the console and the e2e tests
  }

  start() {
    const c = this.client;
    $("[data-testid=board]").hidden = false;
    c.on("state", () => this.renderState());
    c.on("tasks", () => {
      this.renderBoard();
      this.refreshEditor();
      this.renderPresence();
      this.renderState();
    });
    c.on("presence", () => {
      this.renderPresence();
      this.renderBoard();
    });
    c.on("notifications", () => this.renderNotifications());
    c.on("members", () => this.loadMembers());
    c.on("rejected", ({ error, action }) => {
      if ((action === "task.undo" || action === "task.redo") && error.code === "conflict" && error.task) {
        const mark = this.latestOtherMark(error.task);
        const verb = action === "task.undo" ? "undo" : "redo";
        toast(mark ? `Can't ${verb}: ${this.nameOf(mark.by)} changed the ${FIELD_LABEL[mark.field]} since` : `Can't ${verb}: it changed since`, "error");
        return;
      }
      const what = {
        "task.create": "New task",
        "task.update": "Change",
        "task.delete": "Delete",
        "notification.read": "Mark read",
        "task.undo": "Undo",
        "task.redo": "Redo",
      }[action];
      toast(`${what} refused: ${error.message}`, "error");
    });
    c.on("overwrote", ({ seq, overwrote, merged }) => {
      const undo = seq === null ? null : { label: "Undo", run: () => void c.undo(seq) };
      for (const o of overwrote) {
        if (o.field === "description" && o.hunks) toast(`Some of ${o.by.display_name}'s words were replaced`, "info", undo);
        else toast(`You overwrote ${o.by.display_name}'s ${FIELD_LABEL[o.field]} (${this.show(o.field, o.value)})`, "info", undo);
      }
      if (merged.includes("description") && !overwrote.some((o) => o.field === "description")) {
        toast("Your description was merged with a concurrent edit", "info");
      }
    });
    c.on("overwritten", ({ task, by, fields }) => {
      for (const f of fields) {
        const now = /** @type {any} */ (task)[f.field];
        const text =
          f.field === "description" && f.hunks
            ? `${by.display_name} replaced some of your words in the description`
            : `${by.display_name} changed the ${FIELD_LABEL[f.field]} you set (${this.show(f.field, f.value)} → ${this.show(f.field, now)})`;
        toast(text, "info", {
          label: "Put mine back",
          run: () => void c.updateTask(task.id, { [f.field]: f.value }, { seenVersion: c.task(task.id)?.version ?? task.version }),
        });
      }
    });
    c.on("editing", () => this.renderBoard());
    document.addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => this.undoKeys(e));
    c.on("servererror", (error) => toast(`Server: ${error.message}`, "error"));
    this.bindForms();
    this.loadWorkspace();
    this.loadMembers();
    this.renderState();
    c.start();
  }

  async loadWorkspace() {
    try {
      /** @type {{name: string}} */
      const ws = await this.client.api("GET", `/workspaces/${this.client.workspaceId}`);
      $("[data-testid=board-title]").textContent = ws.name;
      document.title = `${ws.name} · Collab`;
    } catch {
      // the connection state shows what is wrong
    }
  }

  async loadMembers() {
    try {
      /** @type {{items: {user_id: string, display_name: string, role: string}[]}} */
      const page = await this.client.api("GET", `/workspaces/${this.client.workspaceId}/members`);
      this.members = new Map(page.items.map((m) => [m.user_id, m]));
    } catch {
      return;
    }
    this.renderAssigneeOptions();
    this.renderBoard();
  }

  /**
   * Ctrl/Cmd+Z: undo the user's newest change; Shift+Ctrl/Cmd+Z (or Ctrl+Y): redo. Inside a text
   * field the browser's own text undo applies instead.
   * @param {KeyboardEvent} e
   */
  undoKeys(e) {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
    const key = e.key.toLowerCase();
    if (key !== "z" && key !== "y") return;
    const target = /** @type {HTMLElement | null} */ (e.target);
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    e.preventDefault();
    if (key === "y" || e.shiftKey) void this.client.redoLast();
    else void this.client.undoLast();
  }

  /** The newest field change by someone other than this user, or null. @param {Task} task */
  latestOtherMark(task) {
    /** @type {{field: string, by: string, version: number} | null} */
    let best = null;
    for (const [field, mark] of Object.entries(task.fields ?? {})) {
      if (mark && mark.by !== this.client.me.id && (!best || mark.version > best.version)) best = { field, by: mark.by, version: mark.version };
    }
    return best;
  }

  /** A field's value as the board shows it. @param {string} field @param {unknown} value */
  show(field, value) {
    if (value === null || value === undefined || value === "") return "none";
    if (field === "status") return STATUS_LABEL[/** @type {keyof typeof STATUS_LABEL} */ (value)] ?? String(value);
    if (field === "assigned_to") return this.nameOf(String(value));
    if (field === "deleted") return value ? "deleted" : "restored";
    const text = String(value);
    return text.length > 40 ? `${text.slice(0, 39)}…` : text;
  }

  /** @param {string | null | undefined} userId */
  nameOf(userId) {
    if (!userId) return "";
    const member = this.members.get(userId);
    if (member) return member.display_name || userId;
    const present = this.client.presence.get(userId);
    return present ? present.user.display_name : userId;
  }

  // -- rendering -------------------------------------------------------------------------------
  renderState() {
    const { state, pendingOps, online } = this.client.getSnapshot().connection;
    const el = $("[data-testid=conn-state]");
    el.dataset.state = state;
    el.dataset.pending = String(pendingOps);
    const label = state === "offline" && !online ? "Offline (no network)" : STATE_LABEL[state];
    el.textContent = label;
    if (pendingOps) el.append(h("span", { class: "pending" }, ` · ${pendingOps} unsaved`));
    this.renderOutbox();
    const final = /** @type {keyof typeof STATE_NOTICE} */ (state);
    const retry = $("[data-testid=conn-retry]");
    retry.hidden = !(final in STATE_NOTICE || state === "offline");
    if (final in STATE_NOTICE) notice(STATE_NOTICE[final]);
    else $("[data-testid=notice]").hidden = true;
  }

  /** What is waiting to be saved (kept in IndexedDB: it survives a reload or a closed tab). */
  renderOutbox() {
    const { outbox } = this.client.getSnapshot();
    const box = $("[data-testid=outbox]");
    box.hidden = outbox.length === 0;
    $("[data-testid=outbox-list]").replaceChildren(
      ...outbox.map((op) => {
        const title = op.taskId ? this.client.task(op.taskId)?.title ?? "a task" : "";
        const what =
          op.action === "task.update"
            ? `“${title}”: ${Object.keys(op.changes ?? {}).map((f) => FIELD_LABEL[f] ?? f).join(", ")}`
            : op.action === "task.create"
              ? `new task “${String(op.changes?.title ?? "")}”`
              : op.action === "task.delete"
                ? `delete “${title}”`
                : op.action.replace("task.", "").replace("notification.read", "mark read");
        return h("li", { "data-testid": "outbox-item", "data-request-id": op.requestId, "data-sent": String(op.sent) }, what, op.sent ? " (sending)" : " (waiting)");
      }),
    );
  }

  /** Where keyboard focus is on the board, by task id and control, to find it again after a redraw. */
  focusedOnBoard() {
    const el = /** @type {HTMLElement | null} */ (document.activeElement);
    const cardEl = el?.closest?.("[data-testid=task-card]");
    if (!el || !cardEl) return null;
    return { taskId: /** @type {HTMLElement} */ (cardEl).dataset.taskId, control: el === cardEl ? null : el.dataset.testid };
  }

  /** @param {{taskId?: string, control: string | null | undefined} | null} where */
  restoreFocus(where) {
    if (!where || document.activeElement !== document.body) return;
    const cardEl = $(`[data-testid=task-card][data-task-id="${where.taskId}"]`);
    if (!cardEl) return;
    const control = where.control ? cardEl.querySelector(`[data-testid=${where.control}]`) : null;
    (control && !control.disabled ? control : cardEl).focus();
  }

  renderBoard() {
    const where = this.focusedOnBoard();
    const tasks = this.client.tasks();
    /** @type {Map<string, PresenceEntry[]>} */
    const viewers = new Map();
    for (const p of this.client.presence.values()) {
      if (p.viewing && p.user.id !== this.client.me.id) {
        viewers.set(p.viewing, [...(viewers.get(p.viewing) || []), p]);
      }
    }
    /** @type {Map<string, string[]>} task id -> "Bob is editing the title" */
    const editing = new Map();
    for (const e of this.client.getSnapshot().editing) {
      if (e.user.id === this.client.me.id) continue;
      editing.set(e.task_id, [...(editing.get(e.task_id) || []), `${e.user.display_name} is editing the ${FIELD_LABEL[e.field]}`]);
    }
    for (const status of STATUSES) {
      const column = $(`[data-testid=column-${status}]`);
      const cards = tasks
        .filter((t) => t.status === status)
        .slice()
        .sort(
          (a, b) =>
            PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
            String(a.created_at).localeCompare(String(b.created_at)) ||
            a.id.localeCompare(b.id),
        )
        .map((t) => this.card(t, viewers.get(t.id) || [], editing.get(t.id) || []));
      column.querySelector(".cards").replaceChildren(...cards);
      column.querySelector(".count").textContent = String(cards.length);
    }
    this.restoreFocus(where);
  }

  /** @param {TaskView} t @param {number} step */
  move(t, step) {
    const next = STATUSES[STATUSES.indexOf(t.status) + step];
    if (next) this.client.updateTask(t.id, { status: next });
  }

  /** @param {TaskView} t @param {PresenceEntry[]} viewers @param {string[]} editing */
  card(t, viewers, editing) {
    const index = STATUSES.indexOf(t.status);
    const move = (/** @type {number} */ step) => {
      const target = STATUSES[index + step];
      return h(
        "button",
        {
          type: "button",
          class: "move",
          "data-testid": step < 0 ? "task-move-left" : "task-move-right",
          "aria-label": target ? `Move “${t.title}” to ${STATUS_LABEL[target]}` : undefined,
          disabled: !target,
          onclick: (/** @type {Event} */ e) => {
            e.stopPropagation();
            this.move(t, step);
          },
          onkeydown: (/** @type {KeyboardEvent} */ e) => e.stopPropagation(), // a button's own Enter/Space
        },
        step < 0 ? "◀" : "▶",
      );
    };
    const due = t.due_date ? h("time", { class: "due", "data-testid": "task-due", datetime: t.due_date }, `Due ${t.due_date}`) : null;
    return h(
      "li",
      {
        class: "card",
        "data-testid": "task-card",
        "data-task-id": t.id,
        "data-pending": String(t.pending),
        "data-priority": t.priority,
        tabIndex: 0, // a list item that takes focus (not a button: it holds the move buttons)
        "aria-keyshortcuts": "Enter Space Alt+ArrowLeft Alt+ArrowRight",
        title: "Enter: edit · Alt+Arrow keys: move",
        onclick: () => this.openEditor(t.id),
        onkeydown: (/** @type {KeyboardEvent} */ e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault(); // the key must not reach the editor's form (it would submit at once)
            this.openEditor(t.id);
          } else if (e.altKey && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
            e.preventDefault();
            this.move(t, e.key === "ArrowLeft" ? -1 : 1);
          }
        },
      },
      h("span", { class: "title", "data-testid": "task-title" }, t.title),
      ...editing.map((text) => h("span", { class: "editing", "data-testid": "task-editing" }, text)),
      h(
        "div",
        { class: "card-meta" },
        h("span", { class: `priority p-${t.priority}` }, t.priority),
        due,
        t.assigned_to
          ? h(
              "span",
              { class: "assignee", "data-testid": "task-assignee" },
              avatar(t.assigned_to, this.nameOf(t.assigned_to), "small"),
              this.nameOf(t.assigned_to),
            )
          : null,
        viewers.length
          ? h(
              "span",
              { class: "viewers", "data-testid": "task-viewers", title: "Looking at it now" },
              "viewing",
              ...viewers.map((p) => avatar(p.user.id, p.user.display_name, "tiny")),
            )
          : null,
        h("span", { class: "spacer" }),
        move(-1),
        move(1),
      ),
    );
  }

  renderPresence() {
    const entries = this.client.getSnapshot().presence;
    const items = entries.map((p) => {
      const me = p.user.id === this.client.me.id;
      const task = p.viewing ? this.client.task(p.viewing) : undefined;
      const doing = task ? `viewing “${task.title}”` : p.status === "away" ? "away" : "on the board";
      return h(
        "li",
        {
          class: `presence-item ${p.status}`,
          "data-testid": "presence-item",
          "data-user-id": p.user.id,
          "data-status": p.status,
          "data-viewing": p.viewing || "",
          title: `${p.user.display_name}${me ? " (you)" : ""}: ${doing}`,
        },
        avatar(p.user.id, p.user.display_name),
        h(
          "span",
          { class: "who" },
          h("span", { class: "name" }, p.user.display_name + (me ? " (you)" : "")),
          h("span", { class: "doing", "data-testid": "presence-doing" }, doing),
        ),
      );
    });
    $("[data-testid=presence-list]").replaceChildren(...items);
  }

  renderNotifications() {
    const c = this.client;
    const { notifications, unreadCount } = c.getSnapshot();
    const badge = $("[data-testid=notif-count]");
    badge.textContent = String(unreadCount);
    badge.dataset.count = String(unreadCount);
    const focused = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.notificationId;
    $("[data-testid=notif-list]").replaceChildren(
      ...notifications.map((n) =>
        h(
          "li",
          { class: n.read_at ? "read" : "unread", "data-testid": "notif-item", "data-read": String(Boolean(n.read_at)) },
          h(
            "button",
            {
              type: "button",
              class: "notif-open",
              "data-testid": "notif-open",
              "data-notification-id": n.id,
              onclick: () => this.openNotification(n),
            },
            h("span", { class: "text" }, this.describe(n)),
            h("time", { datetime: n.created_at }, new Date(n.created_at).toLocaleString()),
            n.read_at ? "" : h("span", { class: "sr-only" }, " (unread)"),
          ),
        ),
      ),
    );
    if (focused) $(`[data-notification-id="${focused}"]`)?.focus();
    $("[data-testid=notif-empty]").hidden = notifications.length > 0;
  }

  /** Mark it read and open its task, if it has one that still exists. @param {Notification} n */
  openNotification(n) {
    this.client.markRead([n.id]);
    if (n.task_id && this.client.task(n.task_id)) {
      this.closeNotifications(false);
      this.openEditor(n.task_id);
    } else if (n.task_id) {
      toast("That task no longer exists.");
    }
  }

  /** @param {Notification} n */
  describe(n) {
    const p = /** @type {Record<string, any>} */ (n.payload || {});
    const who = this.nameOf(n.actor_id) || "Someone";
    const title = p.title ?? p.task?.title ?? (n.task_id ? this.client.task(n.task_id)?.title : undefined);
    const what = title ? `“${title}”` : "a task";
    switch (n.type) {
      case "task.assigned":
        return `${who} assigned you ${what}`;
      case "task.unassigned":
        return `${who} unassigned you from ${what}`;
      case "task.changed":
        return `${who} changed ${what}`;
      case "task.deleted":
        return `${who} deleted ${what}`;
      case "member.added":
        return `${who} added you to a workspace`;
      case "member.removed":
        return `${who} removed you from a workspace`;
      case "member.role_changed":
        return `${who} changed your role${p.role ? ` to ${p.role}` : ""}`;
      default:
        return `${who}: ${n.type}`;
    }
  }

  renderAssigneeOptions() {
    const select = $("[data-testid=edit-assignee]");
    const current = select.value;
    const members = [...this.members.values()].sort((a, b) => a.display_name.localeCompare(b.display_name));
    select.replaceChildren(
      h("option", { value: "" }, "Unassigned"),
      ...members.map((m) => h("option", { value: m.user_id }, m.display_name || m.user_id)),
    );
    select.value = current;
  }

  // -- editor, forms, panels -------------------------------------------------------------------
  bindForms() {
    const c = this.client;
    $("[data-testid=new-task-title]").maxLength = FIELD_LIMITS.title.maxLength;
    $("[data-testid=edit-title]").maxLength = FIELD_LIMITS.title.maxLength;
    $("[data-testid=edit-description]").maxLength = FIELD_LIMITS.description.maxLength;
    $("[data-testid=new-task-form]").addEventListener("submit", (/** @type {Event} */ e) => {
      e.preventDefault();
      const input = $("[data-testid=new-task-title]");
      const title = input.value.trim();
      if (!title) return;
      const problem = checkDraft({ title });
      if (problem) {
        toast(problem.message, "error"); // the text stays in the field to be fixed
        return;
      }
      c.createTask({ title });
      input.value = "";
    });
    const form = $("[data-testid=editor-form]");
    for (const name of EDITABLE) {
      const field = form.elements.namedItem(name);
      const touched = () => {
        if (!this.seenAt.has(name)) this.markSeen(name); // focus usually marked it: what the user saw then
        this.dirty.add(name);
        if (this.openTaskId && (name === "title" || name === "description")) c.setEditing({ task_id: this.openTaskId, field: name });
      };
      field.addEventListener("input", touched);
      field.addEventListener("change", touched);
      field.addEventListener("focus", () => {
        clearTimeout(this.blurTimer);
        if (!this.dirty.has(name)) this.markSeen(name);
        if (this.openTaskId) c.setEditing({ task_id: this.openTaskId, field: name });
      });
      // Blur clears the indicator unless another field takes focus at once (Tab from the title to
      // the description is one frame, not a "stopped" and a "started" that could cross on the way).
      field.addEventListener("blur", () => {
        clearTimeout(this.blurTimer);
        this.blurTimer = setTimeout(() => c.setEditing(null), 150);
      });
    }
    form.addEventListener("submit", (/** @type {Event} */ e) => {
      e.preventDefault();
      this.save();
    });
    const dialog = $("[data-testid=task-editor]");
    dialog.addEventListener("cancel", (/** @type {Event} */ e) => {
      e.preventDefault(); // Escape: close our way (presence, focus back to the card)
      this.closeEditor();
    });
    dialog.addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => this.trapFocus(e, dialog));
    $("[data-testid=edit-close]").addEventListener("click", () => this.closeEditor());
    $("[data-testid=edit-delete]").addEventListener("click", () => {
      if (!this.openTaskId) return;
      c.deleteTask(this.openTaskId);
      this.closeEditor();
    });
    const bell = $("[data-testid=notif-button]");
    bell.addEventListener("click", () => ($("[data-testid=notif-panel]").hidden ? this.openNotifications() : this.closeNotifications(true)));
    $("[data-testid=notif-panel]").addEventListener("keydown", (/** @type {KeyboardEvent} */ e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.closeNotifications(true);
      }
    });
    $("[data-testid=notif-close]").addEventListener("click", () => this.closeNotifications(true));
    $("[data-testid=notif-mark-all]").addEventListener("click", () => {
      c.markRead([...c.notifications.values()].filter((n) => !n.read_at).map((n) => n.id));
    });
    $("[data-testid=conn-retry]").addEventListener("click", () => c.start());
  }

  /** Tab and Shift+Tab cycle inside the dialog (the modal dialog makes the page inert; this keeps the cycle tidy). @param {KeyboardEvent} e @param {HTMLElement} dialog */
  trapFocus(e, dialog) {
    if (e.key !== "Tab") return;
    const focusable = [...dialog.querySelectorAll("input, textarea, select, button")].filter(
      (el) => !(/** @type {any} */ (el).disabled),
    );
    const first = /** @type {HTMLElement} */ (focusable[0]);
    const last = /** @type {HTMLElement} */ (focusable[focusable.length - 1]);
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  }

  openNotifications() {
    $("[data-testid=notif-panel]").hidden = false;
    $("[data-testid=notif-button]").setAttribute("aria-expanded", "true");
    ($("[data-testid=notif-open]") ?? $("[data-testid=notif-close]")).focus();
  }

  /** @param {boolean} returnFocus */
  closeNotifications(returnFocus) {
    $("[data-testid=notif-panel]").hidden = true;
    $("[data-testid=notif-button]").setAttribute("aria-expanded", "false");
    if (returnFocus) $("[data-testid=notif-button]").focus();
  }

  /** The version shown now is what the user edits from (v1.3 `seen_version`). @param {string} name */
  markSeen(name) {
    const task = this.openTaskId ? this.client.task(this.openTaskId) : undefined;
    if (task && task.version > 0) this.seenAt.set(name, task.version);
  }

  /** @param {string} id */
  openEditor(id) {
    if (!this.client.task(id)) return;
    this.openTaskId = id;
    this.dirty.clear();
    this.seenAt.clear();
    this.historyVersion = null;
    this.showError(null);
    const dialog = $("[data-testid=task-editor]");
    if (!dialog.open) dialog.showModal();
    this.refreshEditor();
    // viewing first: the focus sends an editing indicator, a whole presence.update that must name
    // the task viewed too (two frames may be handled in either order)
    this.client.setPresence({ viewing: id });
    $("[data-testid=edit-title]").focus();
  }

  closeEditor() {
    const id = this.openTaskId;
    if (!id) return;
    this.openTaskId = null;
    this.dirty.clear();
    this.seenAt.clear();
    clearTimeout(this.blurTimer);
    this.client.setPresence({ viewing: null }); // before the indicator's frame, which carries viewing too
    this.client.setEditing(null);
    $("[data-testid=task-editor]").close();
    const cardEl = $(`[data-testid=task-card][data-task-id="${id}"]`);
    (cardEl ?? $("[data-testid=new-task-title]")).focus(); // focus back where the user was
  }

  /** @param {string | null} message */
  showError(message) {
    const el = $("[data-testid=edit-error]");
    el.textContent = message ?? "";
    el.hidden = !message;
  }

  /** Show the open task's current state in the fields the user has not touched. */
  refreshEditor() {
    const id = this.openTaskId;
    if (!id) return;
    const task = this.client.task(id);
    if (!task) {
      this.closeEditor();
      toast("This task was deleted.");
      return;
    }
    const form = $("[data-testid=editor-form]");
    for (const name of EDITABLE) {
      if (this.dirty.has(name)) continue;
      form.elements.namedItem(name).value = /** @type {any} */ (task)[name] ?? "";
    }
    const viewers = [...this.client.presence.values()].filter((p) => p.viewing === id && p.user.id !== this.client.me.id);
    $("[data-testid=editor-viewers]").replaceChildren(...viewers.map((p) => avatar(p.user.id, p.user.display_name, "small")));
    $("[data-testid=edit-meta]").textContent =
      `Created by ${this.nameOf(task.created_by)} · version ${task.version}` + (task.pending ? " · saving…" : "");
    this.renderProvenance(task);
    if (task.version > 0 && task.version !== this.historyVersion) {
      this.historyVersion = task.version;
      void this.loadHistory(id, null);
    }
  }

  /** "Bob changed the status 2 min ago", per field changed since the creation (v1.3). @param {TaskView} task */
  renderProvenance(task) {
    const changed = EDITABLE.filter((f) => task.fields?.[f]).map((f) => ({ field: f, mark: fieldMark(task, f) }));
    changed.sort((a, b) => b.mark.version - a.mark.version);
    $("[data-testid=edit-provenance]").replaceChildren(
      ...changed.map(({ field, mark }) =>
        h(
          "li",
          { "data-testid": "provenance-item", "data-field": field },
          `${this.nameOf(mark.by)} changed the ${FIELD_LABEL[field]} `,
          h("time", { datetime: mark.at, title: new Date(mark.at).toLocaleString() }, ago(mark.at)),
        ),
      ),
    );
  }

  /**
   * The task's history (v1.3), newest first; "Older" loads the next page.
   * @param {string} id @param {string | null} cursor
   */
  async loadHistory(id, cursor) {
    /** @type {import("/collab-client.js").HistoryPage} */
    let page;
    try {
      page = await this.client.history(id, cursor, 20);
    } catch {
      return; // offline or gone: the list keeps what it showed
    }
    if (this.openTaskId !== id) return;
    const list = $("[data-testid=history-list]");
    const items = page.items.map((e) => this.historyItem(e));
    if (cursor) {
      list.querySelector("[data-testid=history-more]")?.closest("li")?.remove();
      list.append(...items);
    } else {
      list.replaceChildren(...items);
    }
    if (page.next_cursor) {
      const next = page.next_cursor;
      list.append(h("li", {}, h("button", { type: "button", "data-testid": "history-more", onclick: () => this.loadHistory(id, next) }, "Older")));
    }
  }

  /** "Ann undid: status Done → In progress, 3 min ago". @param {HistoryEntry} e */
  historyItem(e) {
    const verb = KIND_VERB[e.kind ?? "update"] ?? "changed";
    const diffs =
      e.kind === "create" || e.kind === "delete"
        ? []
        : Object.entries(e.changes).map(([f, c]) => `${FIELD_LABEL[f] ?? f} ${this.show(f, c.from)} → ${this.show(f, c.to)}`);
    return h(
      "li",
      { "data-testid": "history-item", "data-seq": String(e.seq), "data-kind": e.kind ?? "" },
      `${e.actor.display_name} ${verb}${diffs.length ? `: ${diffs.join("; ")}` : ""}, `,
      h("time", { datetime: e.at, title: new Date(e.at).toLocaleString() }, ago(e.at)),
    );
  }

  save() {
    const id = this.openTaskId;
    const task = id ? this.client.task(id) : undefined;
    if (!id || !task) return;
    const form = $("[data-testid=editor-form]");
    /** @type {Record<string, any>} */
    const changes = {};
    for (const name of this.dirty) {
      let value = form.elements.namedItem(name).value;
      if (name === "assigned_to" || name === "due_date") value = value || null;
      if (value !== (/** @type {any} */ (task)[name] ?? (name === "assigned_to" || name === "due_date" ? null : ""))) {
        changes[name] = value;
      }
    }
    const problem = checkChanges(changes);
    if (problem) {
      this.showError(problem.message); // the editor stays open with what was typed
      form.elements.namedItem(problem.field ?? "title")?.focus();
      return;
    }
    if (Object.keys(changes).length) {
      // v1.3: the version the user edited from (the oldest among the fields sent): the ack then
      // says what this overwrote, and a description changed meanwhile is merged.
      const seen = Math.min(...Object.keys(changes).map((f) => this.seenAt.get(f) ?? task.version));
      this.client.updateTask(id, changes, { seenVersion: seen > 0 ? seen : null }); // only the fields changed here
    }
    this.closeEditor();
  }
}

main();
