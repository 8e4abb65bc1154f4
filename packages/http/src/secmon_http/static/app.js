// SecMon dashboard: the fleet's nodes, the hub's notices, its recent auth history (with each event's
// context: where the source is, what is new, which mute rules match) and charts of it, live over the
// bridge's WebSocket, and the mute rules with controls to change them. The view (range and filters) lives in the address bar, so it can be shared
// and the browser's back and forward buttons move between views.
// Every value from a monitored server is put into the page as text, never as HTML.
"use strict";

// The token lives in an HttpOnly cookie the bridge set when the printed URL was opened (or the
// form below was sent): this script never sees it, and same-origin requests carry it by themselves.
const FEED_LIMIT = 500;  // events the feed loads and keeps: a screenful of an attack, not an archive
const TOP_ROWS = 10;  // rows in each top table
const STATS_EVERY = 3000;  // ms: live events refetch the charts at most this often
const SLIDE_EVERY = 60000;  // ms: the charts' window moves on even when nothing happens
const CHART_HEIGHT = 220;  // px; the same in style.css, so the page does not move when a chart is drawn
const RANGES = {
  "1h": { text: "the last hour", bucket: 60 },
  "24h": { text: "the last day", bucket: 900 },
  "7d": { text: "the last week", bucket: 3600 },
};
const DEFAULT_RANGE = "24h";
const NOTICE_LIMIT = 100;  // notices the panel loads and keeps, newest first

const nodes = new Map();  // serial -> node JSON
const kindLabels = new Map();  // kind -> its label, learnt from the events seen
let selected = null;
let view = readView();
let generation = 0;  // each (re)load of the view; answers and messages of an older one are dropped
let socket = null;
let lastSeq = 0;  // the highest update sequence applied: anything at or below it is a duplicate
const feedSeqs = new Set();  // sequences in the feed, a second guard against a duplicate row
let timeline = null;  // the uPlot chart
let statsTimer = null;
let statsDue = 0;
let noticeItems = [];  // the notices shown, newest first
const noticeSeqs = new Set();  // their sequences: a notice from both /notices and the WebSocket is shown once

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

// A feed row's time: the clock alone today, with the date before.
function stamp(iso) {
  const t = new Date(iso);
  const today = t.toDateString() === new Date().toDateString();
  return today
    ? t.toLocaleTimeString()
    : t.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

// ---- the view: range and filters, read from and written to the address bar -------------------

function readView() {
  const q = new URLSearchParams(location.search);
  const range = q.get("range");
  return {
    range: RANGES[range] ? range : DEFAULT_RANGE,
    node: q.getAll("node").filter(Boolean),
    kind: q.getAll("kind").filter(Boolean),
    user: q.get("user") || "",
    source: q.get("source") || "",
    failures: ["1", "true"].includes(q.get("failures")),
    byNode: q.get("by") === "node",
  };
}

// The filters as the history API takes them (the range is added by each caller).
function filterParams(v) {
  const q = new URLSearchParams();
  for (const n of v.node) q.append("node", n);
  for (const k of v.kind) q.append("kind", k);
  if (v.user) q.set("user", v.user);
  if (v.source) q.set("source", v.source);
  if (v.failures) q.set("failures", "1");
  return q;
}

function viewSearch(v) {
  const q = filterParams(v);
  if (v.range !== DEFAULT_RANGE) q.set("range", v.range);
  if (v.byNode) q.set("by", "node");
  const text = q.toString();
  return text ? "?" + text : location.pathname;
}

function viewFromForm() {
  const form = document.getElementById("filters");
  const data = new FormData(form);
  const one = (name) => String(data.get(name) || "").trim();
  return {
    range: RANGES[one("range")] ? one("range") : DEFAULT_RANGE,
    node: one("node") ? [one("node")] : [],
    kind: one("kind") ? [one("kind")] : [],
    user: one("user"),
    source: one("source"),
    failures: data.get("failures") !== null,
    byNode: document.getElementById("by-node").checked,
  };
}

function ensureOption(select, value, text) {
  if (![...select.options].some((o) => o.value === value)) select.append(new Option(text, value));
}

function syncForm(v) {
  const form = document.getElementById("filters");
  form.elements.range.value = v.range;
  const node = v.node[0] || "";
  if (node) ensureOption(form.elements.node, node, node);
  form.elements.node.value = node;
  const kind = v.kind[0] || "";
  if (kind) ensureOption(form.elements.kind, kind, kindLabels.get(kind) || kind);
  form.elements.kind.value = kind;
  form.elements.user.value = v.user;
  form.elements.source.value = v.source;
  form.elements.failures.checked = v.failures;
  document.getElementById("by-node").checked = v.byNode;
}

function go(v) {
  view = v;
  history.pushState(null, "", viewSearch(v));
  reload();
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  go(viewFromForm());
});
document.getElementById("filters").addEventListener("change", (event) => {
  if (event.target.tagName === "SELECT" || event.target.type === "checkbox") go(viewFromForm());
});
document.getElementById("by-node").addEventListener("change", () => go(viewFromForm()));
document.getElementById("clear-filters").addEventListener("click", () => {
  go({ range: view.range, node: [], kind: [], user: "", source: "", failures: false, byNode: view.byNode });
});
window.addEventListener("popstate", () => {
  view = readView();
  reload();
});

// ---- a live event against the view's filters (the same rules the history API applies) ----------

function parseIp(text) {
  if (!text) return null;
  text = text.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split(".").map(Number);
    if (parts.some((p) => p > 255)) return null;
    return { bits: 32, n: parts.reduce((n, p) => (n << 8n) | BigInt(p), 0n) };
  }
  if (!text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s) => (s ? s.split(":") : []);
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  let n = 0n;
  for (const g of [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail]) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return { bits: 128, n };
}

function sourceMatches(host, filter) {
  const [address, prefixText] = filter.split("/");
  const net = parseIp(address);
  const ip = parseIp(host);
  if (!net || !ip) return host === filter;
  if (net.bits !== ip.bits) return false;
  const prefix = prefixText === undefined ? net.bits : Number(prefixText);
  const shift = BigInt(net.bits - prefix);
  return ip.n >> shift === net.n >> shift;
}

function matches(update, v) {
  const e = update.event;
  const names = [String(update.serial), update.hostname, update.address];
  if (v.node.length && !v.node.some((n) => names.includes(n))) return false;
  if (v.kind.length && !v.kind.includes(e.kind)) return false;
  if (v.user && e.user !== v.user) return false;
  if (v.failures && !e.failure) return false;
  if (v.source && !(e.host && sourceMatches(e.host, v.source))) return false;
  return true;
}

// ---- nodes --------------------------------------------------------------------------------------

// One collector's health: ok, not monitored, still starting, or the error it reported.
function health(value) {
  if (value === "ok" || Array.isArray(value)) return { text: "ok", cls: "ok" };
  const error = value && value.error;
  if (error === "not_monitored") return { text: "not monitored", cls: "off" };
  if (error === "initializing") return { text: "starting", cls: "off" };
  return { text: String(error), cls: "bad" };
}

function collectorsOf(node) {
  return [
    ["sessions", health(node.sessions)],
    ["wg_peers", health(node.wg_peers)],
    ["auth", health(node.auth)],
  ];
}

// How loudly a node asks for attention: 0 gone silent, 1 a collector failing, 2 fine.
function urgency(node) {
  if (!node.connected) return 0;
  return collectorsOf(node).some(([, h]) => h.cls === "bad") ? 1 : 2;
}

function attributeCell(value, describe, title) {
  const td = el("td");
  td.dataset.label = title;
  if (!Array.isArray(value)) {
    td.append(el("span", value.error === "not_monitored" ? "not monitored" : value.error, "muted"));
  } else if (value.length === 0) {
    td.append(el("span", "none", "muted"));
  } else {
    const ul = el("ul", null, "items");
    for (const item of value) ul.append(el("li", describe(item)));
    td.append(ul);
  }
  return td;
}

function renderNodes() {
  const body = document.querySelector("#nodes tbody");
  const focused = body.contains(document.activeElement) ? document.activeElement.closest("tr").dataset.serial : null;
  body.replaceChildren();
  const sorted = [...nodes.values()].sort(
    (a, b) => urgency(a) - urgency(b) || a.hostname.localeCompare(b.hostname) || a.serial - b.serial,
  );
  for (const node of sorted) {
    const tr = el("tr", null, ["row-down", "row-degraded", "row-ok"][urgency(node)]);
    tr.dataset.serial = node.serial;
    if (node.serial === selected) tr.classList.add("selected");
    const name = el("td");
    const open = el("button", node.hostname, "link");
    open.type = "button";
    open.setAttribute("aria-label", `${node.hostname}: show its commands`);
    open.addEventListener("click", (event) => {
      event.stopPropagation();
      select(node.serial);
    });
    name.append(open, el("div", `#${node.serial} · ${node.address}`, "addr"));
    const state = el("td");
    if (node.connected) {
      state.append(el("span", "connected", "state-connected"));
      state.append(el("div", `updated ${ago(node.last_state_update)}`, "addr"));
    } else {
      state.append(el("span", "⚠ disconnected", "state-disconnected"));
      const seen = el("div", `last seen ${ago(node.last_state_update)}`, "addr");
      seen.title = when(node.last_state_update);
      state.append(seen);
    }
    const collectors = el("td");
    const list = el("ul", null, "collectors");
    for (const [name, h] of collectorsOf(node)) {
      const li = el("li", null, "health-" + h.cls);
      li.append(el("span", name + ": ", "muted"), el("span", h.text));
      list.append(li);
    }
    collectors.append(list);
    tr.append(
      name,
      state,
      collectors,
      attributeCell(node.sessions, (s) => `${s.user} on ${s.tty} ${s.host ? "from " + s.host : "(local)"} since ${when(s.login_time)}`, "Sessions"),
      attributeCell(node.wg_peers, (p) => `${p.interface} ${p.public_key.slice(0, 10)}… ${p.endpoint || "no endpoint"}, handshake ${when(p.latest_handshake)}`, "WireGuard peers"),
    );
    tr.addEventListener("click", () => select(node.serial));
    body.append(tr);
  }
  if (focused !== null) body.querySelector(`tr[data-serial="${focused}"] button`)?.focus();  // a rebuilt row keeps the keyboard's place
  document.getElementById("no-nodes").hidden = nodes.size > 0;
  renderAlerts(sorted);
  renderNodeOptions();
  renderPanel();
}

function renderAlerts(sorted) {
  const down = sorted.filter((n) => !n.connected);
  const failing = sorted.filter((n) => urgency(n) === 1);
  const parts = [];
  if (down.length) parts.push(`⚠ ${down.length} node${down.length > 1 ? "s" : ""} down: ${down.map((n) => n.hostname).join(", ")}`);
  if (failing.length) parts.push(`collector failing on ${failing.map((n) => n.hostname).join(", ")}`);
  const alerts = document.getElementById("alerts");
  alerts.textContent = parts.join(" · ");
  alerts.className = down.length ? "down" : failing.length ? "degraded" : "";
  document.title = down.length ? `(${down.length} down) SecMon` : "SecMon";
}

let nodeOptions = "";  // the names the node filter offers now: rebuilt only when they change

function renderNodeOptions() {
  const select = document.getElementById("filters").elements.node;
  const current = select.value;
  const names = [...new Set([...nodes.values()].map((n) => n.hostname))].sort();
  if (JSON.stringify([names, current]) === nodeOptions) return;
  nodeOptions = JSON.stringify([names, current]);
  select.replaceChildren(new Option("all nodes", ""));
  for (const name of names) select.append(new Option(name, name));
  if (current) ensureOption(select, current, current);
  select.value = current;
}

function select(serial) {
  selected = serial;
  document.getElementById("output").textContent = "";
  renderNodes();
}

function renderPanel() {
  const panel = document.getElementById("node-panel");
  const node = nodes.get(selected);
  panel.hidden = !node;
  if (!node) return;
  document.getElementById("panel-title").textContent = `Commands on ${node.hostname}`;
  const labels = document.getElementById("labels");
  labels.replaceChildren();
  if (node.labels.length === 0) labels.append(el("p", "This node's allowlist offers no commands.", "muted"));
  for (const label of node.labels) {
    const button = el("button", label);
    button.type = "button";
    button.disabled = !node.connected;
    button.addEventListener("click", () => run(node.serial, label, button));
    labels.append(button);
  }
}

async function run(serial, label, button) {
  const output = document.getElementById("output");
  output.textContent = `$ ${label}\n`;
  button.disabled = true;
  try {
    const response = await fetch(`/${serial}/execute`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ label, stream: true }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({ error: response.statusText }));
      output.textContent += `error ${response.status}: ${body.error}\n`;
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const item = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (item.type === "output") output.textContent += item.line + "\n";
        if (item.type === "result") {
          const code = item.exit_code === null ? "" : ` (exit ${item.exit_code})`;
          output.textContent += `[${item.status}${code}${item.message ? ": " + item.message : ""}]\n`;
        }
      }
      output.scrollTop = output.scrollHeight;
    }
  } catch (error) {
    output.textContent += `error: ${error}\n`;
  } finally {
    button.disabled = false;
  }
}

// ---- the feed ----------------------------------------------------------------------------------

function describeEvent(update) {
  const e = update.event;
  const parts = [];
  if (e.user !== null) parts.push(e.user === "" ? '""' : e.user);
  if (e.target_user) parts.push("→ " + e.target_user);
  if (e.host) parts.push("from " + e.host + (e.port ? ":" + e.port : ""));
  if (e.method) parts.push(`(${e.method})`);
  if (e.command) parts.push("running " + e.command);
  return parts.join(" ");
}

// Where a source is: "DE Berlin · AS64496 Example Org" (what the hub's GeoIP databases know of it).
function geoText(source) {
  if (!source) return "";
  const place = [source.country, source.city].filter(Boolean).join(" ");
  const network = source.asn ? `AS${source.asn}${source.org ? " " + source.org : ""}` : source.org || "";
  return [place, network].filter(Boolean).join(" · ");
}

// The flags of an event's context, most urgent first: [text, class, explanation].
function contextFlags(context) {
  const flags = [];
  if (!context) return flags;
  if (context.new.length) {
    flags.push([`🆕 new ${context.new.join(", ")}`, "flag flag-new", `first login of this user from this ${context.new.join(", ")}`]);
  }
  if (context.after_failures) {
    const n = context.after_failures;
    flags.push([`⚠ after ${n} failure${n === 1 ? "" : "s"}`, "flag flag-after", `${n} failures from this source across the fleet before it`]);
  }
  if (context.muted.length) {
    const ids = context.muted.map((id) => "#" + id).join(" ");
    flags.push([`muted ${ids}`, "flag flag-muted", `mute rule ${ids} matches it: the chat notifiers skip it`]);
  }
  if (context.summarized) {
    flags.push(["summarized", "flag flag-summarized", "told once, in a notice of failures from this source across the fleet"]);
  }
  return flags;
}

function eventRow(update) {
  const e = update.event;
  const context = update.context || null;
  kindLabels.set(e.kind, e.label);
  const li = el("li", null, e.failure ? "failure" : "ok");
  if (context && context.muted.length) li.classList.add("muted-event");
  li.dataset.kind = e.kind;
  li.dataset.seq = update.seq;
  const head = el("div", null, "line");
  const time = el("time", stamp(e.time));
  time.dateTime = e.time;
  head.append(time);
  const flags = contextFlags(context);
  for (const [text, cls, why] of flags) {
    const flag = el("span", text, cls);
    flag.title = why;
    head.append(flag, " ");
  }
  head.append(el("strong", update.hostname + ": "), el("span", e.label, "kind"));
  const detail = el("div", describeEvent(update), "line detail");
  const geo = geoText(context && context.source);
  if (geo) detail.append(el("span", " · " + geo, "geo"));
  li.append(head, detail);
  const flagged = flags.map(([text]) => `[${text}] `).join("");
  li.title = `${when(e.time)} ${flagged}${update.hostname}: ${e.label} ${detail.textContent}`;
  return li;
}

// Live events wait for the next frame and go into the feed together: a burst of hundreds a second
// costs one layout per frame, and a hidden tab (no frames) only keeps the newest FEED_LIMIT.
let arriving = [];
let frameAsked = false;

function addEvent(update) {
  if (feedSeqs.has(update.seq)) return;
  feedSeqs.add(update.seq);
  arriving.push(update);
  if (arriving.length > FEED_LIMIT) feedSeqs.delete(arriving.shift().seq);
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(showArrived);
  }
}

function showArrived() {
  frameAsked = false;
  const updates = arriving;
  arriving = [];
  if (updates.length === 0) return;
  const list = document.getElementById("events");
  const scrolled = list.scrollTop;
  const rows = updates.reverse().map(eventRow);  // newest first
  const before = list.scrollHeight;
  list.prepend(...rows);
  if (scrolled > 0) list.scrollTop = scrolled + list.scrollHeight - before;  // a reader scrolled down keeps their place
  while (list.children.length > FEED_LIMIT) {
    feedSeqs.delete(Number(list.lastChild.dataset.seq));
    list.lastChild.remove();
  }
  document.getElementById("no-events").hidden = true;
  renderFeedCount();
}

let feedMore = false;

function renderFeedCount() {
  const count = document.getElementById("events").children.length;
  const range = RANGES[view.range].text;
  const status = document.getElementById("feed-status");
  status.textContent = feedMore
    ? `The latest ${count} events of ${range} (older ones: narrow the view or see the charts).`
    : `${count} event${count === 1 ? "" : "s"} in ${range}.`;
  status.dataset.count = count;
}

function renderFeed(answer) {
  const list = document.getElementById("events");
  feedSeqs.clear();
  arriving = [];
  const rows = [];
  for (const update of answer.events.slice().reverse()) {  // the answer is oldest first; the feed newest first
    if (feedSeqs.has(update.seq)) continue;
    feedSeqs.add(update.seq);
    rows.push(eventRow(update));
  }
  list.replaceChildren(...rows);
  list.scrollTop = 0;
  feedMore = answer.more;
  document.getElementById("no-events").hidden = rows.length > 0;
  renderFeedCount();
}

// ---- notices: what the hub noticed (nodes gone and back, collectors, mute changes, fleet-wide
// failures, commands run), recent ones from /notices, then live from the WebSocket ---------------

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "a while";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function requesterText(r) {
  const user = r.user ? `${r.user} (uid ${r.uid})` : `uid ${r.uid}`;
  return r.on_behalf ? `${r.on_behalf} via ${user}` : user;
}

function ruleText(rule) {
  const parts = [];
  if (rule.source) parts.push(rule.source);
  if (rule.user !== null) parts.push("user:" + rule.user);
  if (rule.node !== null) parts.push("node:" + rule.node);
  if (rule.kind !== null) parts.push("kind:" + rule.kind);
  return parts.join(" ");
}

function listed(names, count) {
  const more = count > names.length ? `, +${count - names.length}` : "";
  return names.length ? ` (${names.join(", ")}${more})` : "";
}

// One line on a notice, from the fields its kind sets.
function noticeText(n) {
  const node = n.node ? `${n.node.hostname} (#${n.node.serial}, ${n.node.address})` : "";
  switch (n.kind) {
    case "node_down":
      return `${node} silent since ${when(n.outage.since)}`;
    case "node_back":
      return `${node} back after ${duration(n.outage.away)}; ${plural(n.outage.events, "event")} written while away`;
    case "collector_failed":
      return `${node}: ${n.collector.collector} fails: ${n.collector.message}`;
    case "collector_ok":
      return `${node}: ${n.collector.collector} works again`;
    case "mute_added":
    case "mute_removed":
    case "mute_expired": {
      const rule = n.mute.rule;
      const parts = [`#${rule.id} ${ruleText(rule)}`];
      if (n.kind === "mute_added") parts.push(rule.expires ? `until ${when(rule.expires)}` : "no end");
      if (rule.reason) parts.push(`“${rule.reason}”`);
      if (n.mute.by) parts.push(`by ${n.mute.by}`);
      return parts.join(" · ");
    }
    case "source_failing": {
      const s = n.source;
      const failures = s.ended ? `quiet again after ${plural(s.failures, "failure")}` : plural(s.failures, "failure");
      return [
        `${s.source}: ${failures} on ${plural(s.node_count, "node")}${listed(s.nodes, s.node_count)}`,
        `${plural(s.user_count, "user")} tried${listed(s.users, s.user_count)}`,
        geoText(s.context),
      ].filter(Boolean).join(" · ");
    }
    case "command_run": {
      const c = n.command;
      const outcomes = c.outcomes.length
        ? c.outcomes.map((o) => `${o.hostname} ${o.status}${o.exit_code === null ? "" : ` (exit ${o.exit_code})`}`).join(", ")
        : "ran nowhere";
      return `${requesterText(c.requester)} ran ${c.label} on ${c.target}: ${outcomes}`;
    }
    default:
      return node;
  }
}

function noticeRow(n) {
  const li = el("li", null, "sev-" + n.severity);
  li.dataset.seq = n.seq;
  li.dataset.kind = n.kind;
  const head = el("div", null, "line");
  const time = el("time", stamp(n.time));
  time.dateTime = n.time;
  head.append(time, el("strong", n.label, "notice-label"));
  let text;
  try {
    text = noticeText(n);
  } catch {
    text = "";  // a notice of a shape this page does not know: its label says enough
  }
  li.append(head, el("div", text, "detail"));
  li.title = `${when(n.time)} ${n.label}: ${text}`;
  return li;
}

function addNotices(list) {
  let added = false;
  for (const n of list) {
    if (noticeSeqs.has(n.seq)) continue;
    noticeSeqs.add(n.seq);
    noticeItems.push(n);
    added = true;
  }
  if (!added) return;
  noticeItems.sort((a, b) => b.seq - a.seq);
  for (const dropped of noticeItems.splice(NOTICE_LIMIT)) noticeSeqs.delete(dropped.seq);
  renderNotices();
}

function renderNotices() {
  const list = document.getElementById("notices");
  list.replaceChildren(...noticeItems.map(noticeRow));
  const status = document.getElementById("notices-status");
  const critical = noticeItems.filter((n) => n.severity === "critical").length;
  status.textContent = noticeItems.length
    ? `The latest ${plural(noticeItems.length, "notice")}${critical ? `, ${critical} critical` : ""}.`
    : "No notice yet: nodes gone silent, failing collectors, mute changes, fleet-wide failures and commands run appear here.";
  status.dataset.count = noticeItems.length;
}

async function loadNotices(gen) {
  const answer = await getJSON(`/notices?limit=${NOTICE_LIMIT}`);
  if (gen !== generation) return;
  addNotices(answer.notices);
  if (!noticeItems.length) renderNotices();
}

// ---- mute rules ----------------------------------------------------------------------------------

async function send(method, path, body) {
  const options = { method };
  if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) throw new Unauthorized();
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new HttpError(response.status, answer.error || response.statusText);
  return answer;
}

function renderMutes(rules) {
  const rows = rules.map((rule) => {
    const tr = el("tr");
    tr.dataset.id = rule.id;
    const remove = el("button", "Remove", "remove");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove mute rule #${rule.id}`);
    remove.addEventListener("click", () => removeMute(rule.id, remove));
    const action = el("td", null, "action");
    action.append(remove);
    const cell = (text, label, cls) => {
      const td = el("td", text, cls);
      td.dataset.label = label;  // shown before the value on a phone, where the table is a list
      return td;
    };
    tr.append(
      el("td", "#" + rule.id, "id"),
      cell(ruleText(rule), "Matches", "rule"),
      cell(rule.expires ? when(rule.expires) : "never", "Expires"),
      cell(rule.reason || "none", "Reason", rule.reason ? "" : "muted"),
      cell(rule.by, "By", "muted"),
      action,
    );
    return tr;
  });
  document.querySelector("#mutes tbody").replaceChildren(...rows);
  document.getElementById("mutes").dataset.rows = rules.length;
  document.getElementById("no-mutes").hidden = rules.length > 0;
}

async function loadMutes() {
  renderMutes(await getJSON("/mutes"));
}

function muteError(error) {
  if (error instanceof Unauthorized) reportError(error);
  else document.getElementById("mute-error").textContent = error.message;
}

async function removeMute(id, button) {
  button.disabled = true;
  document.getElementById("mute-error").textContent = "";
  try {
    await send("DELETE", `/mutes/${id}`);
  } catch (error) {
    if (!(error instanceof HttpError && error.status === 404)) muteError(error);  // 404: already gone
  }
  loadMutes().catch(muteError);
}

document.getElementById("mute-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = {};
  for (const name of ["source", "user", "node", "kind", "for", "reason"]) {
    const value = form.elements[name].value.trim();
    if (value) body[name] = value;
  }
  document.getElementById("mute-error").textContent = "";
  try {
    await send("POST", "/mutes", body);
    form.reset();
    await loadMutes();
  } catch (error) {
    muteError(error);
  }
});

// ---- charts ------------------------------------------------------------------------------------

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function seriesColours(count) {
  const palette = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6"].map(cssVar);
  return Array.from({ length: count }, (_, i) => palette[i % palette.length]);
}

// The stats answer as uPlot's columns: x in seconds, then one column per drawn series.
function timelineData(answer, v) {
  const times = [...new Set(answer.series.flatMap((s) => s.points.map((p) => p.t)))].sort();
  const xs = times.map((t) => new Date(t).getTime() / 1000);
  const at = new Map(times.map((t, i) => [t, i]));
  const column = (points, pick) => {
    const values = new Array(times.length).fill(0);
    for (const p of points) values[at.get(p.t)] = pick(p);
    return values;
  };
  if (v.byNode) {
    const series = answer.series.map((s) => ({ label: s.key, values: column(s.points, (p) => p.failures) }));
    return { xs, times, series };
  }
  const points = answer.series.flatMap((s) => s.points);
  const sum = (pick) => {
    const values = new Array(times.length).fill(0);
    for (const p of points) values[at.get(p.t)] += pick(p);
    return values;
  };
  return {
    xs,
    times,
    series: [
      { label: "failures", values: sum((p) => p.failures), colour: cssVar("--bad") },
      { label: "successes", values: sum((p) => p.successes), colour: cssVar("--ok") },
      { label: "other", values: sum((p) => p.other), colour: cssVar("--muted") },
    ],
  };
}

let drawn = "";  // what the chart was made for: its series and colour scheme; the same again only takes new data

function drawTimeline(data) {
  const figure = document.getElementById("timeline");
  const box = figure.querySelector(".chart-canvas");
  const columns = [data.xs, ...data.series.map((s) => s.values)];
  const shape = JSON.stringify([data.series.map((s) => s.label), matchMedia("(prefers-color-scheme: dark)").matches]);
  if (timeline && shape === drawn) {
    timeline.setData(columns);
    return;
  }
  drawn = shape;
  if (timeline) timeline.destroy();
  timeline = null;
  box.replaceChildren();
  const colours = seriesColours(data.series.length);
  const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--line"), width: 1 }, ticks: { stroke: cssVar("--line") } };
  const options = {
    width: Math.max(200, box.clientWidth),
    height: CHART_HEIGHT,
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [axis, { ...axis, size: 44 }],
    series: [
      {},
      ...data.series.map((s, i) => ({
        label: s.label,
        stroke: s.colour || colours[i],
        fill: (s.colour || colours[i]) + "22",
        width: 1.5,
        points: { show: false },
        paths: uPlot.paths.stepped({ align: 1 }),
      })),
    ],
  };
  timeline = new uPlot(options, columns, box);
}

function renderTimeline(answer, v) {
  const data = timelineData(answer, v);
  const figure = document.getElementById("timeline");
  const totals = data.series.map((s) => s.values.reduce((a, b) => a + b, 0));
  figure.dataset.points = data.xs.length;
  figure.dataset.series = data.series.length;
  figure.dataset.total = totals.reduce((a, b) => a + b, 0);
  drawTimeline(data);
  const range = RANGES[v.range].text;
  const parts = data.series.map((s, i) => `${totals[i]} ${s.label}`);
  const summary = v.byNode
    ? `Failures by node in ${range}: ${parts.join(", ") || "no node"}.`
    : `In ${range}: ${parts.join(", ")}.`;
  document.getElementById("timeline-summary").textContent = summary;
  figure.setAttribute("aria-label", summary);
  // the same numbers as a table, for a screen reader or a reader who wants the figures
  const table = document.getElementById("timeline-table");
  const head = el("tr");
  head.append(el("th", "from"), ...data.series.map((s) => el("th", s.label)));
  table.tHead.replaceChildren(head);
  const rows = [];
  for (let i = data.times.length - 1; i >= 0; i--) {
    if (data.series.every((s) => s.values[i] === 0)) continue;
    const tr = el("tr");
    tr.append(el("td", when(data.times[i])), ...data.series.map((s) => el("td", s.values[i], "num")));
    rows.push(tr);
  }
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "no events", "muted");
    td.colSpan = data.series.length + 1;
    tr.append(td);
    rows.push(tr);
  }
  table.tBodies[0].replaceChildren(...rows);
}

const GEO_COLUMNS = [
  ["country", "Country"],
  ["asn", "ASN"],
  ["as_org", "Network"],
];

function renderTop(id, answer, keyName, onPick) {
  const table = document.getElementById(id);
  const rows = answer.rows;
  const geo = GEO_COLUMNS.filter(([field]) => rows.some((r) => r[field] !== undefined && r[field] !== null && r[field] !== ""));
  const head = el("tr");
  head.append(el("th", keyName), el("th", "events", "num"), el("th", "failures", "num wide"), el("th", "nodes", "num"));
  if (id === "top-sources") head.append(el("th", "users", "num"));
  for (const [, title] of geo) head.append(el("th", title));
  head.append(el("th", "last", "wide"));
  table.tHead.replaceChildren(head);
  const most = Math.max(1, ...rows.map((r) => r.count));
  const body = rows.map((row) => {
    const tr = el("tr");
    const key = el("td", null, "key");
    const pick = el("button", row.key, "link");
    pick.type = "button";
    pick.title = `show only ${keyName} ${row.key}`;
    pick.addEventListener("click", () => onPick(row.key));
    key.append(pick);
    const count = el("td", null, "num bar-cell");
    const bar = el("span", null, "bar");
    bar.style.width = `${(100 * row.count) / most}%`;
    count.append(bar, el("span", row.count));
    tr.append(key, count, el("td", row.failures, "num wide"), el("td", row.nodes, "num"));
    if (id === "top-sources") tr.append(el("td", row.users, "num"));
    for (const [field] of geo) tr.append(el("td", row[field] ?? ""));
    const last = el("td", ago(row.last), "wide muted");
    last.title = when(row.last);
    tr.append(last);
    return tr;
  });
  table.tBodies[0].replaceChildren(...body);
  table.dataset.rows = rows.length;
  table.parentElement.nextElementSibling.hidden = rows.length > 0;
}

async function getJSON(path) {
  const response = await fetch(path);
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new HttpError(response.status, body.error || response.statusText);
  return body;
}

async function refreshStats(gen) {
  const v = view;
  const range = RANGES[v.range];
  const base = filterParams(v);
  base.set("since", v.range);
  const time = new URLSearchParams(base);
  time.set("by", "time");
  time.set("bucket", String(range.bucket));
  if (v.byNode) time.set("group", "node");
  const top = (by) => {
    const q = new URLSearchParams(base);
    q.set("by", by);
    q.set("limit", String(TOP_ROWS));
    return getJSON("/events/stats?" + q);
  };
  const [series, sources, users] = await Promise.all([getJSON("/events/stats?" + time), top("source"), top("user")]);
  if (gen !== generation) return;
  renderTimeline(series, v);
  const pick = (field) => (value) => go({ ...view, [field]: value });
  renderTop("top-sources", sources, "source", pick("source"));
  renderTop("top-users", users, "user", pick("user"));
  document.getElementById("charts").dataset.loadedSeq = String(lastSeq);
}

// Live events make the charts refetch, at most every STATS_EVERY ms (the first one at once).
function statsSoon() {
  if (statsTimer) return;
  const wait = Math.max(0, statsDue - Date.now());
  statsTimer = setTimeout(() => {
    statsTimer = null;
    statsDue = Date.now() + STATS_EVERY;
    refreshStats(generation).catch(reportError);
  }, wait);
}

async function loadKinds(gen) {
  const q = new URLSearchParams({ by: "kind", since: "7d", limit: "100" });
  const answer = await getJSON("/events/stats?" + q);
  if (gen !== generation) return;
  const select = document.getElementById("filters").elements.kind;
  const current = view.kind[0] || "";
  select.replaceChildren(new Option("all kinds", ""));
  const kinds = [...new Set([...answer.rows.map((r) => r.key), ...kindLabels.keys()])].sort();
  for (const kind of answer.rows.map((r) => r.key).sort()) select.append(new Option(kindLabels.get(kind) || kind, kind));
  document.getElementById("mute-kinds").replaceChildren(...kinds.map((kind) => new Option(kindLabels.get(kind) || kind, kind)));
  if (current) ensureOption(select, current, kindLabels.get(current) || current);
  select.value = current;
}

// ---- loading and following ---------------------------------------------------------------------

class Unauthorized extends Error {}

class HttpError extends Error {
  constructor(status, text) {
    super(text);
    this.status = status;
  }
}

function setBadge(text, on) {
  const badge = document.getElementById("link");
  badge.textContent = text;
  badge.className = on ? "badge on" : "badge off";
}

async function loadNodes() {
  const list = await getJSON("/list");
  nodes.clear();
  for (const node of list) nodes.set(node.serial, node);
  renderNodes();
}

function showLogin(message) {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("login-message").textContent = message;
  setBadge("signed out", false);
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  const response = await fetch("/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: input.value.trim() }),
  });
  input.value = "";
  if (!response.ok) {
    showLogin("That token is not this bridge's.");
    return;
  }
  document.getElementById("login").hidden = true;
  reload();
});

function reportError(error) {
  if (error instanceof Unauthorized) {
    generation++;
    if (socket) socket.close();
    showLogin("Open the dashboard with the URL secmon-http printed at start, or paste its token.");
  } else if (error instanceof HttpError && error.status === 400) {
    document.getElementById("filter-error").textContent = error.message;
  } else {
    document.getElementById("feed-status").textContent = `Could not load: ${error.message}`;
  }
}

// Load the view: the history first (its last_seq is where the live feed resumes), then the nodes
// (so a node change after that sequence is replayed, not lost), then the WebSocket from last_seq.
async function reload() {
  const gen = ++generation;
  if (socket) socket.close();
  socket = null;
  syncForm(view);
  document.getElementById("filter-error").textContent = "";
  setBadge("loading…", false);
  let answer;
  try {
    const q = filterParams(view);
    q.set("since", view.range);
    q.set("limit", String(FEED_LIMIT));
    answer = await getJSON("/events?" + q);
    if (gen !== generation) return;
    await loadNodes();
  } catch (error) {
    if (gen !== generation) return;
    reportError(error);
    if (!(error instanceof Unauthorized) && !(error instanceof HttpError && error.status === 400)) {
      setBadge("retrying…", false);
      setTimeout(() => gen === generation && reload(), 2000 + Math.random() * 2000);
    }
    return;
  }
  if (gen !== generation) return;
  lastSeq = answer.last_seq;
  renderFeed(answer);
  connect(gen, answer.last_seq);
  loadNotices(gen).catch((error) => {
    document.getElementById("notices-status").textContent = `Could not load the notices: ${error.message}`;
  });
  loadMutes().catch(muteError);
  refreshStats(gen).catch(reportError);
  loadKinds(gen).catch(() => {});
}

function connect(gen, since) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/subscribe?since=${since}`);
  socket = ws;
  ws.onopen = () => gen === generation && setBadge("live", true);
  ws.onmessage = (message) => {
    if (gen !== generation) return;
    const update = JSON.parse(message.data);
    if (typeof update.seq === "number") {
      if (update.seq <= lastSeq) return;  // already applied: a replay overlapping what was loaded
      lastSeq = update.seq;
    }
    if (update.type === "node") {
      if (update.changed.includes("forgotten")) nodes.delete(update.node.serial);
      else nodes.set(update.node.serial, update.node);
      renderNodes();
    } else if (update.type === "auth" && matches(update, view)) {
      addEvent(update);
      statsSoon();
    } else if (update.type === "notice") {
      addNotices([update]);
      if (update.kind.startsWith("mute_")) loadMutes().catch(muteError);
    }
  };
  ws.onclose = () => {
    if (gen !== generation) return;
    setBadge("reconnecting…", false);
    setTimeout(() => gen === generation && reload(), 1000 + Math.random() * 1000);
  };
}

// The charts follow the page's width and colour scheme; their window slides on with the clock.
new ResizeObserver(() => timeline && timeline.setSize({ width: Math.max(200, document.querySelector("#timeline .chart-canvas").clientWidth), height: CHART_HEIGHT })).observe(document.querySelector("#timeline .chart-canvas"));
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => refreshStats(generation).catch(reportError));
setInterval(() => {
  if (!document.hidden && socket) statsSoon();
  if (nodes.size) renderNodes();  // "last seen … ago" moves on
}, SLIDE_EVERY);

reload();
