// The actor tree from /admin/actors, after the admin token is given (kept in sessionStorage):
// state, incarnation, restarts, last failure, and restart / stop / start / kill.
import { api, tokens } from "../api.js";
import { $, h, status } from "../dom.js";

const ACTIONS = ["restart", "stop", "start", "kill"];

function rows(node, depth = 0) {
  const failure = node.last_failure ? `${node.last_failure.type}: ${node.last_failure.message}` : "";
  const row = h("tr", { dataset: { path: node.path, incarnation: node.incarnation, restarts: node.restarts } },
    h("td", {}, "\u00a0".repeat(depth * 2) + node.name), h("td", {}, status(node.state)),
    h("td", { class: "incarnation" }, node.incarnation), h("td", { class: "restarts" }, node.restarts),
    h("td", { class: "muted", title: failure }, failure ? failure.slice(0, 40) : ""),
    h("td", { class: "actor-buttons" }, depth === 0 ? "" : ACTIONS.map((action) =>
      h("button", { type: "button", dataset: { action }, onclick: () => control(node.path, action) }, action))));
  return [row, ...node.children.flatMap((child) => rows(child, depth + 1))];
}

async function control(path, action) {
  try {
    await api.post(`/admin/actors/${path}/${action}`, undefined, { admin: true });
  } catch (error) {
    $("actors").prepend(h("p", { class: "error" }, error.message));
  }
  await refresh();
}

async function refresh() {
  if (!tokens.admin) return;
  try {
    const tree = await api.get("/admin/actors", { admin: true });
    $("actors").replaceChildren(h("table", {},
      h("tr", {}, ["actor", "state", "inc.", "restarts", "last failure", ""].map((t) => h("th", {}, t))),
      rows(tree)));
  } catch (error) {
    if (error.status === 401) tokens.admin = "";
    $("actors").replaceChildren(h("p", { class: "error" }, error.message));
  }
}

export function startActors() {
  $("admin-token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    tokens.admin = $("admin-token").value.trim();
    $("admin-token").value = "";
    refresh();
  });
  refresh();
  setInterval(refresh, 2000);
  return { refresh };
}
