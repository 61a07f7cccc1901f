// Swarms: a form to spawn one, the list with each status kept live by session_update, and a
// stop button per swarm.
import { api } from "../api.js";
import { $, h, status } from "../dom.js";

const swarms = new Map();

function render() {
  const ordered = [...swarms.values()].sort((a, b) => (b.createdAt || "").localeCompare(a.createdAt || ""));
  $("swarms").replaceChildren(...ordered.slice(0, 200).map((s) => h("li", { dataset: { swarm: s.id, status: s.status } },
    status(s.status), h("span", { class: "task", title: s.error || s.task }, s.task || s.id),
    h("span", { class: "muted" }, `${s.agentCount ?? 0} agents${s.stage ? " · " + s.stage : ""}`),
    s.error ? h("span", { class: "error", title: s.error }, "!") : null,
    ["spawning", "stopping", "completed"].includes(s.status) ? null
      : h("button", { type: "button", onclick: () => stop(s.id) }, "stop"))));
}

async function stop(id) {
  try {
    update(await api.delete(`/api/swarms/${id}`));
  } catch (error) {
    showError(error.message);
  }
}

function showError(message) {
  const element = $("spawn-error");
  element.textContent = message;
  element.hidden = !message;
}

export function update(session) {
  swarms.set(session.id, { ...swarms.get(session.id), ...session });
  render();
}

export async function loadSwarms() {
  const listing = await api.get("/api/swarms?limit=200");
  swarms.clear();
  for (const session of listing.swarms) swarms.set(session.id, session);
  render();
}

export function startSwarms() {
  $("swarms-panel").hidden = false;
  $("spawn-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { task: $("spawn-task").value, priority: $("spawn-priority").value };
    if ($("spawn-strategy").value) body.strategy = $("spawn-strategy").value;
    try {
      update(await api.post("/api/swarms", body));
      $("spawn-task").value = "";
      showError("");
    } catch (error) {
      showError(error.message);
    }
  });
}
