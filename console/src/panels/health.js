// The health panel, live from /ws/hybrid-health: system status, each actor's health and
// reason, the breakers, the event loop's lag. Its socket also carries session_update, which it
// hands to the swarms panel, and its state is the page's "connected" light.
import { $, h, status } from "../dom.js";
import { Reconnecting, socketUrl } from "../reconnect.js";

function breakers(components) {
  const rows = [];
  for (const [name, component] of Object.entries(components || {})) {
    const detail = component.detail || {};
    const found = [["", detail.breaker], ["stt", detail.stt?.breaker], ["tts", detail.tts?.breaker]];
    for (const [part, breaker] of found) {
      if (breaker && breaker.state) rows.push([part ? `${name} ${part}` : name, breaker]);
    }
  }
  return rows;
}

// What this daemon is in the cluster (docs/cluster.md): one process, or a leader or follower
// with the epoch, the leader and the peers.
function cluster(data) {
  const c = data.cluster || { role: "single" };
  if (c.role === "single") return h("p", { id: "cluster", class: "muted" }, "cluster: single (one process)");
  const parts = [`cluster: ${c.node ?? "?"} is `, status(c.role),
    ` · epoch ${c.epoch ?? 0} · leader ${c.leader ?? "none"} · peers ${(c.peers || []).join(", ") || "none"}`];
  if (c.fault) parts.push(h("span", { class: "muted" }, ` · ${c.fault}`));
  return h("p", { id: "cluster", dataset: { role: c.role } }, ...parts);
}

function render(data) {
  const components = data.components || {};
  const performance = data.performance || {};
  const lag = Number(performance.event_loop_lag_ms ?? 0);
  $("health").replaceChildren(
    h("p", {}, "system ", status(data.system_status || "unknown"),
      ` · loop lag ${lag.toFixed(1)} ms · ${performance.websocket_clients ?? 0} clients`),
    cluster(data),
    h("table", {},
      h("tr", {}, h("th", {}, "actor"), h("th", {}, "health"), h("th", {}, "state"), h("th", {}, "reason")),
      Object.entries(components).map(([name, c]) => h("tr", { dataset: { actor: name } },
        h("td", {}, name), h("td", {}, status(c.health || "unknown")), h("td", {}, status(c.state || "")),
        h("td", { class: "muted" }, c.reason || "")))),
    h("p", { class: "muted", id: "breakers" }, "breakers: ", ...(breakers(components).length
      ? breakers(components).map(([name, b]) => h("span", {}, `${name} `, status(b.state), " "))
      : ["none"])),
  );
  const system = $("system");
  system.dataset.state = data.system_status || "unknown";
  system.textContent = `system: ${data.system_status || "unknown"}`;
}

export function startHealth({ onSession, onState }) {
  const socket = new Reconnecting(socketUrl("/ws/hybrid-health"), {
    message(event) {
      const message = JSON.parse(event.data);
      if (message.type === "initial_status" || message.type === "status_update") render(message.data);
      else if (message.type === "session_update") onSession(message.data);
    },
    state: onState,
  });
  setInterval(() => socket.send(JSON.stringify({ type: "ping", timestamp: Date.now() })), 10000);
  return socket;
}
