// The inspector: one workspace as its operators see it (docs/operations.md), refreshed every 2 s
// from the HTTP API's admin routes. Plain DOM, textContent only: every value shown comes from users
// (names, URLs) and is never parsed as HTML.
const REFRESH_MS = 2000;
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const workspace = params.get("workspace") || "";
const api = (params.get("api") || `${location.origin}/api`).replace(/\/$/, "");

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

/** @param {string} tag @param {Record<string, string>} [attrs] @param {...(Node|string)} children */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

async function get(path) {
  const res = await fetch(`${api}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  const body = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${body?.error?.message ?? ""}`);
  return body;
}

const ago = (ms) => (ms ? `${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago` : "—");
const usd = (v) => `$${Number(v).toFixed(6)}`;

function renderConnections(items) {
  $("conn-count").textContent = String(items.length);
  $("connections").replaceChildren(
    ...items.map((c) =>
      el("tr", { "data-testid": "conn-row", "data-user": c.user_id },
        el("td", {}, c.display_name),
        el("td", {}, el("code", {}, c.connection_id)),
        el("td", {}, c.synced ? "yes" : "not yet"),
        el("td", {}, ago(c.last_heartbeat_ms)),
        el("td", {}, c.last_ack_seq == null ? "—" : String(c.last_ack_seq)))));
}

function renderPresence(items) {
  $("presence").replaceChildren(
    ...items.map((p) => el("li", { "data-testid": "presence-row" }, `${p.user.display_name} · ${p.status}`)));
}

function renderEvents(items) {
  $("events").replaceChildren(
    ...items.map((e) =>
      el("tr", { "data-testid": "event-row", "data-seq": String(e.seq) },
        el("td", {}, String(e.seq)),
        el("td", {}, e.type),
        el("td", {}, new Date(e.timestamp).toLocaleTimeString()),
        el("td", {}, ...e.connections.map((c) =>
          el("span", { class: "tag", "data-outcome": c.outcome, title: c.connection_id ?? "no connection" },
            `${c.user_id ?? "?"}: ${c.outcome}`))))));
}

function renderHooks(hooks, attempts) {
  $("webhooks").replaceChildren(
    ...hooks.map((h, i) =>
      el("tr", { "data-testid": "hook-row", "data-status": h.status },
        el("td", {}, el("code", {}, h.url)),
        el("td", {}, h.status),
        el("td", {}, String(h.delivered_seq)),
        el("td", {}, ...(attempts[i] || []).slice(0, 6).map((a) =>
          el("span", { class: "tag", "data-outcome": a.outcome === "delivered" ? "delivered" : "failed" },
            `#${a.seq} ${a.status_code ?? a.outcome}`))),
        el("td", {}, h.last_error ?? ""))));
}

function renderUsage(u) {
  const rows = [
    ["frames in", u.frames_in], ["posts out", u.posts_out], ["replies out", u.replies_out],
    ["connection minutes", u.connection_minutes], ["handler ms", u.handler_ms],
    ["cost so far", usd(u.cost_to_date.total_usd)], ["month estimate", usd(u.monthly_estimate_usd)],
    ["budget", u.budget_usd == null ? "none" : usd(u.budget_usd)],
  ];
  $("usage").replaceChildren(
    ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-testid": `usage-${k.replace(/ /g, "-")}` }, String(v))]));
  if (u.over_budget) $("usage").append(el("dt", {}, "state"), el("dd", { class: "over" }, "over budget: presence throttled"));
}

async function refresh() {
  const ws = `/workspaces/${encodeURIComponent(workspace)}`;
  try {
    const [conns, presence, events, hooks, usage] = await Promise.all([
      get(`${ws}/connections`), get(`${ws}/presence`), get(`${ws}/deliveries`), get(`${ws}/webhooks`), get(`${ws}/usage`),
    ]);
    const attempts = await Promise.all(
      hooks.items.map((h) => get(`${ws}/webhooks/${h.id}/deliveries?limit=6`).then((p) => p.items)));
    renderConnections(conns.items);
    renderPresence(presence.items);
    renderEvents(events.items);
    renderHooks(hooks.items, attempts);
    renderUsage(usage);
    $("problem").hidden = true;
    const state = $("refresh-state");
    state.dataset.state = "live";
    state.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    const state = $("refresh-state");
    state.dataset.state = "error";
    state.textContent = "not refreshing";
    $("problem").hidden = false;
    $("problem").textContent = String(err.message || err);
  }
}

$("workspace").textContent = workspace || "(no workspace: add ?workspace=<id>&token=<access token>)";
if (workspace && token) {
  refresh();
  setInterval(refresh, REFRESH_MS);
}
