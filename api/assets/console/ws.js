// A small client of the graphql-transport-ws protocol (the one `/graphql/ws` speaks):
// one socket per page load, every subscription multiplexed on it, and a socket that
// reconnects with backoff and subscribes again to everything still wanted.

export class Live {
  constructor(key, onState) {
    this.key = key;
    this.onState = onState || (() => {});
    this.subs = new Map(); // id -> { query, variables, next, error }
    this.seq = 0;
    this.socket = null;
    this.acked = false;
    this.retry = 0;
    this.closed = false;
    this.heard = Date.now();
    // The server pings every 30 s: silence for much longer means a dead connection.
    this.watch = setInterval(() => {
      if (this.acked && Date.now() - this.heard > 75000 && this.socket) this.socket.close(4000, 'no ping');
    }, 15000);
    this.open();
  }

  open() {
    if (this.closed) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/graphql/ws`, 'graphql-transport-ws');
    this.socket = socket;
    this.acked = false;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${this.key}` } }));
    };
    socket.onmessage = (ev) => {
      this.heard = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      switch (msg.type) {
        case 'connection_ack':
          this.acked = true;
          this.retry = 0;
          // Everything still wanted first, then the news: a listener that subscribes anew
          // must not see its subscription sent twice under one id.
          for (const id of this.subs.keys()) this.send(id);
          this.onState('live');
          break;
        case 'ping':
          socket.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'next': {
          const s = this.subs.get(msg.id);
          if (!s) break;
          if (msg.payload && msg.payload.errors && msg.payload.errors.length) s.error(msg.payload.errors[0].message);
          else if (msg.payload && msg.payload.data) s.next(msg.payload.data);
          break;
        }
        case 'error': {
          const s = this.subs.get(msg.id);
          if (s) { this.subs.delete(msg.id); s.error((msg.payload && msg.payload[0] && msg.payload[0].message) || 'subscription refused'); }
          break;
        }
        case 'complete': {
          const s = this.subs.get(msg.id);
          if (s) { this.subs.delete(msg.id); s.error('the server ended the subscription'); }
          break;
        }
        default:
          break;
      }
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.acked = false;
      if (this.closed) return;
      // 4403: the key was refused; retrying would not help.
      if (ev.code === 4403 || ev.code === 4401) {
        this.onState('refused', ev.reason || 'the key was refused');
        return;
      }
      this.onState('reconnecting');
      const wait = Math.min(10000, 500 * 2 ** this.retry) + Math.random() * 250;
      this.retry = Math.min(this.retry + 1, 5);
      setTimeout(() => this.open(), wait);
    };
  }

  send(id) {
    const s = this.subs.get(id);
    if (!s || !this.acked || this.socket.readyState !== WebSocket.OPEN) return;
    this.socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: s.query, variables: s.variables } }));
  }

  /** Subscribes; returns a function that ends the subscription. */
  subscribe(query, variables, next, error) {
    const id = String(++this.seq);
    this.subs.set(id, { query, variables, next, error: error || (() => {}) });
    this.send(id);
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.acked && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ id, type: 'complete' }));
      }
    };
  }

  close() {
    this.closed = true;
    clearInterval(this.watch);
    this.subs.clear();
    if (this.socket) this.socket.close(1000, 'signed out');
  }
}
