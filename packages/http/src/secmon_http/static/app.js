// SecMon dashboard: nodes and events from the HTTP bridge, live over its WebSocket.
// Every value from a monitored server is put into the page as text, never as HTML.
"use strict";

// The token lives in an HttpOnly cookie the bridge set when the printed URL was opened (or the
// form below was sent): this script never sees it, and same-origin requests carry it by themselves.
const MAX_EVENTS = 200;  // the feed is a view of what is new, not an archive

const nodes = new Map();  // serial -> node JSON
let selected = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

function attributeCell(value, describe) {
  const td = el("td");
  if (!Array.isArray(value)) {
    td.append(el("span", value.error, "error"));
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
  body.replaceChildren();
  const sorted = [...nodes.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.serial - b.serial);
  for (const node of sorted) {
    const tr = el("tr");
    tr.dataset.serial = node.serial;
    if (node.serial === selected) tr.classList.add("selected");
    const name = el("td");
    name.append(el("strong", node.hostname), el("div", `#${node.serial} · ${node.address}`, "addr"));
    const state = node.connected ? "connected" : "disconnected";
    tr.append(
      name,
      el("td", state, "state-" + state),
      attributeCell(node.sessions, (s) => `${s.user} on ${s.tty} ${s.host ? "from " + s.host : "(local)"} since ${when(s.login_time)}`),
      attributeCell(node.wg_peers, (p) => `${p.interface} ${p.public_key.slice(0, 10)}… ${p.endpoint || "no endpoint"}, handshake ${when(p.latest_handshake)}`),
    );
    tr.addEventListener("click", () => select(node.serial));
    body.append(tr);
  }
  document.getElementById("no-nodes").hidden = nodes.size > 0;
  renderPanel();
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

function describeEvent(update) {
  const e = update.event;
  const parts = [e.label];
  if (e.user !== null) parts.push(e.user === "" ? '""' : e.user);
  if (e.target_user) parts.push("→ " + e.target_user);
  if (e.host) parts.push("from " + e.host + (e.port ? ":" + e.port : ""));
  if (e.method) parts.push(`(${e.method})`);
  if (e.command) parts.push("running " + e.command);
  return parts.join(" ");
}

function addEvent(update) {
  const list = document.getElementById("events");
  const li = el("li", null, update.event.failure ? "failure" : "ok");
  li.dataset.kind = update.event.kind;
  li.append(el("time", when(update.event.time)), el("strong", update.hostname + ": "), el("span", describeEvent(update)));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  document.getElementById("no-events").hidden = true;
}

class Unauthorized extends Error {}

async function loadNodes() {
  const response = await fetch("/list");
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error(`list: ${response.status}`);
  nodes.clear();
  for (const node of await response.json()) nodes.set(node.serial, node);
  renderNodes();
}

function showLogin(message) {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("login-message").textContent = message;
  const badge = document.getElementById("link");
  badge.textContent = "signed out";
  badge.className = "badge off";
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
  start();
});

function connect() {
  const badge = document.getElementById("link");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/subscribe`);
  ws.onopen = () => {
    badge.textContent = "live";
    badge.className = "badge on";
    loadNodes().catch(() => {});
  };
  ws.onmessage = (message) => {
    const update = JSON.parse(message.data);
    if (update.type === "node") {
      if (update.changed.includes("forgotten")) nodes.delete(update.node.serial);
      else nodes.set(update.node.serial, update.node);
      renderNodes();
    } else if (update.type === "auth") {
      addEvent(update);
    }
  };
  ws.onclose = () => {
    badge.textContent = "reconnecting…";
    badge.className = "badge off";
    setTimeout(start, 1000 + Math.random() * 1000);
  };
}

// Signed in (the node list loads) before the WebSocket opens, so a missing token shows the form
// instead of a page that reconnects forever.
async function start() {
  try {
    await loadNodes();
  } catch (error) {
    if (error instanceof Unauthorized) {
      showLogin("Open the dashboard with the URL secmon-http printed at start, or paste its token.");
      return;
    }
  }
  connect();
}

start();
