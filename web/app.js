// @ts-check
/**
 * The demo board: columns by status, a task editor, presence, notifications, connection state.
 *
 * Everything users typed (titles, descriptions, names) reaches the page through `h()` below, which
 * only ever creates text nodes and sets attributes: never innerHTML. The board is re-rendered from
 * the client's state on every change (a few hundred cards at most), so there is no DOM diffing.
 *
 * URL: `/?token=<access token>&workspace=<workspace id>` (`collab dev` prints ready-made links).
 */
import { CollabClient } from "./collab-client.js";

/** @typedef {import("./collab-client.js").TaskView} TaskView */
/** @typedef {import("./protocol").PresenceEntry} PresenceEntry */
/** @typedef {import("./protocol").Notification} Notification */

const STATUSES = /** @type {const} */ (["todo", "in_progress", "done"]);
const STATUS_LABEL = { todo: "To do", in_progress: "In progress", done: "Done" };
const PRIORITY_RANK = { urgent: 0, high: 1, medium: 2, low: 3 };
const STATE_LABEL = {
  idle: "Starting…",
  connecting: "Connecting…",
  syncing: "Syncing…",
  live: "Live",
  offline: "Offline, reconnecting…",
  denied: "Access denied",
  stopped: "Stopped",
};
const EDITABLE = ["title", "description", "status", "priority", "assigned_to"];

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

function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/);
  return ((parts[0]?.[0] || "?") + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

function hue(text) {
  let n = 0;
  for (const ch of String(text)) n = (n * 31 + ch.codePointAt(0)) % 360;
  return n;
}

/** @param {string} userId @param {string} name @param {string} [extraClass] */
function avatar(userId, name, extraClass = "") {
  return h("span", { class: `avatar ${extraClass}`, style: `--hue: ${hue(userId)}`, title: name }, initials(name));
}

/** @param {string} text @param {"info" | "error"} [kind] */
function toast(text, kind = "info") {
  const el = h("div", { class: `toast ${kind}`, "data-testid": "toast", role: "status" }, text);
  $(".toasts").append(el);
  setTimeout(() => el.remove(), 6000);
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
  new Board(new CollabClient({ token, workspaceId })).start();
}

/** No workspace in the URL: list the user's workspaces as links. @param {string} token */
async function chooseWorkspace(token) {
  const probe = new CollabClient({ token, workspaceId: "" });
  try {
    const page = await probe.api("GET", "/workspaces");
    const links = page.items.map((w) => {
      const url = new URL(location.href);
      url.searchParams.set("workspace", w.id);
      return h("li", {}, h("a", { href: url.toString() }, w.name));
    });
    notice("Choose a workspace:", h("ul", {}, ...links));
  } catch (err) {
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
    /** @type {any} */ (window).collab = { client, board: this }; // for the console and the e2e tests
  }

  start() {
    const c = this.client;
    $("[data-testid=board]").hidden = false;
    c.addEventListener("state", () => this.renderState());
    c.addEventListener("tasks", () => {
      this.renderBoard();
      this.refreshEditor();
      this.renderPresence();
      this.renderState();
    });
    c.addEventListener("presence", () => {
      this.renderPresence();
      this.renderBoard();
    });
    c.addEventListener("notifications", () => this.renderNotifications());
    c.addEventListener("members", () => this.loadMembers());
    c.addEventListener("rejected", (/** @type {any} */ e) => {
      const { error, action } = e.detail;
      toast(`Change refused (${action}): ${error.message}`, "error");
    });
    c.addEventListener("servererror", (/** @type {any} */ e) => toast(`Server: ${e.detail.message}`, "error"));
    this.bindForms();
    // away when hidden or idle, active again at once: the client does it (its heartbeats carry the mode)
    this.loadWorkspace();
    this.loadMembers();
    this.renderState();
    c.start();
  }

  async loadWorkspace() {
    try {
      const ws = await this.client.api("GET", `/workspaces/${this.client.workspaceId}`);
      $("[data-testid=board-title]").textContent = ws.name;
      document.title = `${ws.name} · Collab`;
    } catch {
      // the connection state shows what is wrong
    }
  }

  async loadMembers() {
    try {
      const page = await this.client.api("GET", `/workspaces/${this.client.workspaceId}/members`);
      this.members = new Map(page.items.map((m) => [m.user_id, m]));
    } catch {
      return;
    }
    this.renderAssigneeOptions();
    this.renderBoard();
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
    const el = $("[data-testid=conn-state]");
    const state = this.client.state;
    const pending = this.client.pendingCount;
    el.dataset.state = state;
    el.dataset.pending = String(pending);
    el.textContent = STATE_LABEL[state] ?? state;
    if (pending) el.append(h("span", { class: "pending" }, ` · ${pending} unsaved`));
    if (state === "denied") notice("This board is not available with this token (expired, or not a member).");
  }

  renderBoard() {
    const tasks = this.client.tasks();
    /** @type {Map<string, PresenceEntry[]>} */
    const viewers = new Map();
    for (const p of this.client.presence.values()) {
      if (p.viewing && p.user.id !== this.client.me.id) {
        viewers.set(p.viewing, [...(viewers.get(p.viewing) || []), p]);
      }
    }
    for (const status of STATUSES) {
      const column = $(`[data-testid=column-${status}]`);
      const cards = tasks
        .filter((t) => t.status === status)
        .sort(
          (a, b) =>
            PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
            String(a.created_at).localeCompare(String(b.created_at)) ||
            a.id.localeCompare(b.id),
        )
        .map((t) => this.card(t, viewers.get(t.id) || []));
      column.querySelector(".cards").replaceChildren(...cards);
      column.querySelector(".count").textContent = String(cards.length);
    }
  }

  /** @param {TaskView} t @param {PresenceEntry[]} viewers */
  card(t, viewers) {
    const index = STATUSES.indexOf(t.status);
    const move = (/** @type {number} */ step, /** @type {string} */ label) =>
      h(
        "button",
        {
          type: "button",
          class: "move",
          "data-testid": step < 0 ? "task-move-left" : "task-move-right",
          "aria-label": label,
          disabled: !STATUSES[index + step],
          onclick: (/** @type {Event} */ e) => {
            e.stopPropagation();
            this.client.updateTask(t.id, { status: STATUSES[index + step] });
          },
        },
        step < 0 ? "◀" : "▶",
      );
    return h(
      "li",
      {
        class: "card",
        "data-testid": "task-card",
        "data-task-id": t.id,
        "data-pending": String(t.pending),
        "data-priority": t.priority,
        tabIndex: 0,
        onclick: () => this.openEditor(t.id),
        onkeydown: (/** @type {KeyboardEvent} */ e) => e.key === "Enter" && this.openEditor(t.id),
      },
      h("span", { class: "title", "data-testid": "task-title" }, t.title),
      h(
        "div",
        { class: "card-meta" },
        h("span", { class: `priority p-${t.priority}` }, t.priority),
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
        move(-1, "Move left"),
        move(1, "Move right"),
      ),
    );
  }

  renderPresence() {
    const entries = [...this.client.presence.values()].sort((a, b) =>
      a.user.display_name.localeCompare(b.user.display_name),
    );
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
    const count = c.unreadCount;
    const badge = $("[data-testid=notif-count]");
    badge.textContent = String(count);
    badge.dataset.count = String(count);
    const notes = [...c.notifications.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    $("[data-testid=notif-list]").replaceChildren(
      ...notes.map((n) =>
        h(
          "li",
          {
            class: n.read_at ? "read" : "unread",
            "data-testid": "notif-item",
            "data-read": String(Boolean(n.read_at)),
            onclick: () => c.markRead([n.id]),
          },
          h("span", { class: "text" }, this.describe(n)),
          h("time", { datetime: n.created_at }, new Date(n.created_at).toLocaleString()),
        ),
      ),
    );
    $("[data-testid=notif-empty]").hidden = notes.length > 0;
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

  // -- editor and forms ------------------------------------------------------------------------
  bindForms() {
    const c = this.client;
    $("[data-testid=new-task-form]").addEventListener("submit", (/** @type {Event} */ e) => {
      e.preventDefault();
      const input = $("[data-testid=new-task-title]");
      const title = input.value.trim();
      if (!title) return;
      c.createTask({ title });
      input.value = "";
    });
    const form = $("[data-testid=editor-form]");
    for (const name of EDITABLE) {
      const field = form.elements.namedItem(name);
      field.addEventListener("input", () => this.dirty.add(name));
      field.addEventListener("change", () => this.dirty.add(name));
    }
    form.addEventListener("submit", (/** @type {Event} */ e) => {
      e.preventDefault();
      this.save();
    });
    $("[data-testid=edit-close]").addEventListener("click", () => this.closeEditor());
    $("[data-testid=edit-delete]").addEventListener("click", () => {
      if (!this.openTaskId) return;
      c.deleteTask(this.openTaskId);
      this.closeEditor();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.openTaskId) this.closeEditor();
    });
    const bell = $("[data-testid=notif-button]");
    bell.addEventListener("click", () => {
      const panel = $("[data-testid=notif-panel]");
      panel.hidden = !panel.hidden;
      bell.setAttribute("aria-expanded", String(!panel.hidden));
    });
    $("[data-testid=notif-mark-all]").addEventListener("click", () => {
      c.markRead([...c.notifications.values()].filter((n) => !n.read_at).map((n) => n.id));
    });
  }

  /** @param {string} id */
  openEditor(id) {
    if (!this.client.task(id)) return;
    this.openTaskId = id;
    this.dirty.clear();
    $("[data-testid=task-editor]").hidden = false;
    this.refreshEditor();
    $("[data-testid=edit-title]").focus();
    this.client.setPresence({ viewing: id });
  }

  closeEditor() {
    if (!this.openTaskId) return;
    this.openTaskId = null;
    this.dirty.clear();
    $("[data-testid=task-editor]").hidden = true;
    this.client.setPresence({ viewing: null });
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
      form.elements.namedItem(name).value = task[name] ?? "";
    }
    const viewers = [...this.client.presence.values()].filter(
      (p) => p.viewing === id && p.user.id !== this.client.me.id,
    );
    $("[data-testid=editor-viewers]").replaceChildren(
      ...viewers.map((p) => avatar(p.user.id, p.user.display_name, "small")),
    );
    $("[data-testid=edit-meta]").textContent =
      `Created by ${this.nameOf(task.created_by)} · version ${task.version}` + (task.pending ? " · saving…" : "");
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
      if (name === "assigned_to") value = value || null;
      if (value !== (task[name] ?? (name === "assigned_to" ? null : ""))) changes[name] = value;
    }
    this.client.updateTask(id, changes); // only the fields changed here: per-field last write wins
    this.closeEditor();
  }
}

main();
