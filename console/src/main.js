// The console: the swarm in 3D (scene.js, fed by the /wss worker), health, actors, swarms and
// voice. Everything comes from the daemon that served this page, on its own origin.
import { api, tokens } from "./api.js";
import { $, h } from "./dom.js";
import { AGENT_FLAG, ID_MASK, KNOWLEDGE_FLAG } from "./frames.js";
import { startActors } from "./panels/actors.js";
import { startHealth } from "./panels/health.js";
import { loadSwarms, startSwarms, update as updateSwarm } from "./panels/swarms.js";
import { startVoice } from "./panels/voice.js";
import { socketUrl } from "./reconnect.js";
import { Scene } from "./scene.js";

const FLAGS = { agent: AGENT_FLAG, knowledge: KNOWLEDGE_FLAG };
const wire = (kind, id) => ((FLAGS[kind] | id) >>> 0);

let info = { actors: [], apiTokenRequired: false };
let meta = new Map();
let graphTimer = null;

const worker = new Worker("/console/worker.js", { type: "module" });
const scene = new Scene($("scene"), {
  onHover: showTooltip,
  onDrag: (wireId, x, y, z) => worker.postMessage({ type: "drag", id: wireId, x, y, z }),
  onStats: ({ drawn, edges }) => {
    const stats = $("stats");
    stats.dataset.nodes = drawn;
    stats.dataset.edges = edges;
    stats.textContent = `${drawn} nodes drawn · ${edges} edges`;
  },
});

worker.onmessage = (event) => {
  const message = event.data;
  if (message.type === "positions") {
    document.body.dataset.protocol = message.protocol;  // the /wss protocol of the last frame
    scene.setPositions(message.count, message.xyz, message.ids);
    if (message.ids) scheduleGraph();
  } else if (message.type === "state") {
    document.body.dataset.wss = message.state;
    if (message.state === "connected") scheduleGraph();
  }
};

function describe(wireId) {
  const node = meta.get(wireId);
  const kind = wireId & AGENT_FLAG ? "agent" : "knowledge";
  const lines = [`${node?.label || "(no label yet)"}`, `${kind} ${wireId & ID_MASK}`];
  if (kind === "agent" && node) {
    lines.push(`type ${node.type} · status ${node.status} · health ${node.health}`);
    if (node.currentTask) lines.push(`task ${node.currentTask}`);
    lines.push(`swarm ${node.swarmId || "—"} · tokens ${node.tokens ?? 0}`);
  }
  return lines.join("\n");
}

function showTooltip(wireId, x, y) {
  const tooltip = $("tooltip");
  if (wireId === null) {
    tooltip.hidden = true;
    return;
  }
  const rect = $("scene").getBoundingClientRect();
  tooltip.textContent = describe(wireId);
  tooltip.dataset.node = wireId;
  tooltip.style.left = `${x - rect.left + 14}px`;
  tooltip.style.top = `${y - rect.top + 14}px`;
  tooltip.hidden = false;
}

const parts = { knowledge: { nodes: new Map(), edges: [] }, agent: { nodes: new Map(), edges: [] } };

function scheduleGraph(delay = 250) {
  clearTimeout(graphTimer);
  graphTimer = setTimeout(() => loadGraph(["knowledge", "agent"]), delay);
}

/** Labels, looks and edges of the given kinds (knowledge: when ids change; agents: often). */
async function loadGraph(kinds) {
  let views;
  try {
    views = await Promise.all(kinds.map((kind) => api.get(`/api/graph?kind=${kind}`)));
  } catch {
    scheduleGraph(2000);
    return;
  }
  kinds.forEach((kind, i) => {
    const view = views[i][kind] || { nodes: [], edges: [] };
    parts[kind] = {
      nodes: new Map(view.nodes.map((node) => [wire(kind, node.id), node])),
      edges: view.edges.map((e) => [wire(kind, e.source), wire(kind, e.target)]),
    };
  });
  meta = new Map([...parts.knowledge.nodes, ...parts.agent.nodes]);
  scene.setGraph(meta, [...parts.knowledge.edges, ...parts.agent.edges]);
  if (kinds.length === 2) worker.postMessage({ type: "retain", ids: [...meta.keys()] });
  fillFilters();
}

function fillFilters() {
  const swarms = new Set();
  const types = new Set();
  for (const node of meta.values()) {
    if (node.kind !== "agent") continue;
    if (node.swarmId) swarms.add(node.swarmId);
    if (node.type) types.add(node.type);
  }
  for (const [id, values] of [["filter-swarm", swarms], ["filter-type", types]]) {
    const select = $(id);
    const current = select.value;
    select.replaceChildren(h("option", { value: "" }, "all"),
      ...[...values].sort().map((v) => h("option", { value: v }, v.length > 12 ? `${v.slice(0, 8)}…` : v)));
    select.value = values.has(current) ? current : "";
  }
}

function find(query) {
  const q = query.trim().toLowerCase();
  if (!q) return null;
  for (const [wireId, node] of meta) {
    if (String(node.id) === q || String(node.label || "").toLowerCase().includes(q)
        || String(node.agentId || "").toLowerCase().includes(q)) return wireId;
  }
  return null;
}

function bindControls() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const wireId = find($("search-input").value);
    $("search-input").setCustomValidity(wireId === null ? "no such node" : "");
    $("search-input").reportValidity();
    if (wireId !== null) scene.flyTo(wireId);
  });
  const filter = () => scene.setFilter({
    swarm: $("filter-swarm").value, type: $("filter-type").value,
    knowledge: $("show-knowledge").checked, agents: $("show-agents").checked,
  });
  for (const id of ["filter-swarm", "filter-type", "show-knowledge", "show-agents"]) $(id).addEventListener("change", filter);
  $("api-token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    tokens.api = $("api-token").value.trim();
    $("api-token").value = "";
    worker.postMessage({ type: "token", token: tokens.api });
    $("tokens-panel").hidden = Boolean(tokens.api);
  });
}

function connectionState(state, retryMs) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = state === "connected" ? "connected" : "disconnected";
  const notice = $("notice");
  if (state === "connected") {
    notice.hidden = true;
    refresh();
  } else {
    notice.hidden = false;
    notice.textContent = `The daemon is unreachable; reconnecting in ${(retryMs / 1000).toFixed(1)} s…`;
  }
}

async function refresh() {
  try {
    info = await api.get("/api/info");
  } catch {
    return;
  }
  $("tokens-panel").hidden = !info.apiTokenRequired || Boolean(tokens.api);
  if (info.actors.includes("hive_mind")) loadSwarms().catch(() => {});
  scheduleGraph(0);
}

async function start() {
  bindControls();
  try {
    info = await api.get("/api/info");
  } catch {
    // the health socket's reconnects will call refresh() once the daemon answers
  }
  $("tokens-panel").hidden = !info.apiTokenRequired || Boolean(tokens.api);
  worker.postMessage({ type: "connect", url: socketUrl("/wss"), token: tokens.api });
  startHealth({ onSession: updateSwarm, onState: connectionState });
  startActors();
  if (info.actors.includes("hive_mind")) startSwarms();
  if (info.actors.includes("speech")) startVoice();
  setInterval(() => loadGraph(["agent"]), 2000);  // agents' status and load change without new ids
}

// A small scripting surface for people (and tests) in the browser's console.
window.hiveConsole = {
  scene,
  find,
  nodes: () => meta.size,
  drawn: () => scene.drawn,
  screenPosition: (wireId) => scene.screenPosition(wireId),
  wireId: wire,
  flyTo: (wireId) => scene.flyTo(wireId),
  snapshot: () => scene.snapshot(),
};

start();
