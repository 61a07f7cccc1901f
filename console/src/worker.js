// The /wss client, off the page's thread: it owns the socket, decodes every binary frame into
// slot-indexed typed arrays (frames.js) and hands the page at most one copy of the positions
// per display frame (transferred, not cloned). JSON messages are passed through.
import { FrameError, Positions, dragRecord } from "./frames.js";
import { Reconnecting } from "./reconnect.js";

const positions = new Positions();
let socket = null;
let token = "";
let dirty = false;
let idsChanged = false;
let scheduled = false;
let frames = 0;

function post() {
  scheduled = false;
  if (!dirty) return;
  dirty = false;
  const xyz = positions.xyz.slice(0, positions.count * 3);
  const message = { type: "positions", count: positions.count, xyz, frames };
  const transfer = [xyz.buffer];
  if (idsChanged) {
    idsChanged = false;
    message.ids = positions.ids.slice(0, positions.count);
    transfer.push(message.ids.buffer);
  }
  self.postMessage(message, transfer);
}

function schedule() {
  if (!scheduled) {
    scheduled = true;
    setTimeout(post, 16);
  }
}

function connect(url) {
  socket = new Reconnecting(url, {
    open(ws) {
      ws.send(JSON.stringify({ type: "subscribe_position_updates", data: { interval: 16, binary: true } }));
      ws.send(JSON.stringify({ type: "request_full_snapshot", graphs: ["knowledge", "agent"] }));
    },
    message(event) {
      if (typeof event.data === "string") {
        self.postMessage({ type: "json", data: JSON.parse(event.data) });
        return;
      }
      try {
        const { added } = positions.apply(event.data, 1);
        frames++;
        if (added) idsChanged = true;
        dirty = true;
        schedule();
      } catch (error) {
        if (!(error instanceof FrameError)) throw error;
        self.postMessage({ type: "frame_error", message: error.message });
      }
    },
    state(state, retryMs) {
      self.postMessage({ type: "state", state, retryMs });
    },
  }, () => token);
}

self.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case "connect":
      token = message.token || "";
      connect(message.url);
      break;
    case "token":
      token = message.token || "";
      if (token) socket?.send(JSON.stringify({ type: "auth", token }));
      break;
    case "drag": {
      const slot = positions.slotOf(message.id);
      if (slot !== undefined) {
        positions.xyz.set([message.x, message.y, message.z], slot * 3);
        dirty = true;
        schedule();
      }
      socket?.send(dragRecord(message.id, message.x, message.y, message.z));
      break;
    }
    case "json":
      socket?.send(JSON.stringify(message.data));
      break;
    case "retain":
      if (positions.retain(new Set(message.ids))) {
        idsChanged = true;
        dirty = true;
        schedule();
      }
      break;
    default:
      break;
  }
};
