// One reconnecting WebSocket: exponential backoff with jitter, the API token as the first
// message (never in the URL, which logs keep), and a callback per state change.

export class Backoff {
  constructor(minMs = 500, maxMs = 30000, factor = 2, jitter = 0.3) {
    Object.assign(this, { minMs, maxMs, factor, jitter, attempt: 0 });
  }
  next() {
    const base = Math.min(this.maxMs, this.minMs * this.factor ** this.attempt++);
    return Math.round(base * (1 + this.jitter * (2 * Math.random() - 1)));
  }
  reset() {
    this.attempt = 0;
  }
}

export function socketUrl(path, base = self.location) {
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${base.host}${path}`;
}

export class Reconnecting {
  /**
   * handlers: open(socket), message(event), state(name, retryMs); `token()` gives the API
   * token (or "") at each (re)connect.
   */
  constructor(url, handlers, token = () => "") {
    this.url = url;
    this.handlers = handlers;
    this.token = token;
    this.backoff = new Backoff();
    this.socket = null;
    this.closed = false;
    this.open();
  }

  open() {
    if (this.closed) return;
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      this.backoff.reset();
      const token = this.token();
      if (token) socket.send(JSON.stringify({ type: "auth", token }));
      this.handlers.state?.("connected", 0);
      this.handlers.open?.(socket);
    };
    socket.onmessage = (event) => this.handlers.message?.(event);
    socket.onclose = () => {
      if (this.socket !== socket || this.closed) return;
      const wait = this.backoff.next();
      this.handlers.state?.("disconnected", wait);
      setTimeout(() => this.open(), wait);
    };
  }

  send(data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(data);
      return true;
    }
    return false;
  }

  reconnect() {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    this.open();
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }
}
