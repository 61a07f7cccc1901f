// The /wss client, off the page's thread: it owns the socket, decodes every binary frame into
// slot-indexed typed arrays (frames.js) and hands the page at most one copy of the positions
// per display frame (transferred, not cloned). JSON messages are passed through.
import { FrameError, Positions, V3State, VERSION3, dragRecord } from "./frames.js";
import { Reconnecting } from "./reconnect.js";

const positions = new Positions();
// v3 is asked for; a daemon that predates it streams v2, told apart by each frame's first byte.
const v3 = new V3State();
let socket = null;
let token = "";
let dirty = false;
let idsChanged = false;
let scheduled = false;
let frames = 0;
let protocol = 0; // the version byte of the last frame applied
let resyncing = false; // waiting for the keyframe a fresh subscription brings

function post() {
  scheduled = false;
  if (!dirty) return;
  dirty = false;
  const xyz = positions.xyz.slice(0, positions.count * 3);
  const message = { type: "positions", count: positions.count, xyz, frames, protocol };
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

function subscription() {
  const data = { interval: 16, binary: true, protocol: 3 };
  if (v3.at) data.resume = v3.at; // after a reconnect: a delta from the state it holds
  return { type: "subscribe_position_updates", data };
}

function subscribe(ws) {
  ws.send(JSON.stringify(subscription()));
}

function connect(url) {
  socket = new Reconnecting(url, {
    open(ws) {
      resyncing = false;
      subscribe(ws);
    },
    message(event) {
      if (typeof event.data === "string") {
        const data = JSON.parse(event.data);
        if (data.type === "subscription_confirmed" && data.data?.protocol !== 3) {
          // a daemon before v3: its first frame may be a delta, so ask for every node
          v3.reset();
          socket?.send(JSON.stringify({ type: "request_full_snapshot", graphs: ["knowledge", "agent"] }));
        }
        self.postMessage({ type: "json", data });
        return;
      }
      try {
        const first = new Uint8Array(event.data, 0, Math.min(1, event.data.byteLength))[0];
        if (resyncing && first === VERSION3) {
          // after a frame it could not apply: deltas already on their way are for a state it
          // no longer holds; wait for the keyframe its new subscription brings
          if (event.data.byteLength < 2 || new Uint8Array(event.data, 1, 1)[0] !== 1) return;
          resyncing = false;
        }
        const { added } = first === VERSION3 ? v3.apply(event.data, positions)
          : positions.apply(event.data, 1);
        protocol = first;
        frames++;
        if (added) idsChanged = true;
        dirty = true;
        schedule();
      } catch (error) {
        if (!(error instanceof FrameError)) throw error;
        self.postMessage({ type: "frame_error", message: error.message });
        if (!resyncing) { // a v3 state it cannot trust: subscribe again, once, for a keyframe
          resyncing = true;
          v3.reset();
          socket?.send(JSON.stringify(subscription()));
        }
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
        v3.rebind(positions); // the slots moved; the keyframe's nodes stay (they are live)
        idsChanged = true;
        dirty = true;
        schedule();
      }
      break;
    default:
      break;
  }
};
