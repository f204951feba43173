// The console's only door to the node: JSON-RPC 2.0 over HTTP POST at "/" and subscriptions over
// the WebSocket at "/ws", exactly as any other client uses them (docs/RPC.md).
//
// Amounts: a u64 does not fit a JavaScript number. Answers are parsed so that an integer too large
// for a double becomes a BigInt (from its source text), and callers turn every amount into a
// BigInt with BigInt(String(x)), so amounts work whether the node sends them as numbers or as
// decimal strings. Requests carry BigInts as plain JSON integers (never through a double).

const ENDPOINT = new URL("/", window.location.href).href;
const WS_ENDPOINT = (() => {
  const url = new URL("/ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
})();

export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }

  describe() {
    let text = this.code === null || this.code === undefined ? this.message : `${this.message} (error ${this.code})`;
    if (this.data && typeof this.data === "object") {
      const parts = Object.entries(this.data).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
      if (parts.length) text += ` — ${parts.join(", ")}`;
    }
    return text;
  }
}

const INTEGER = /^-?\d+$/;

/** JSON.parse that keeps integers beyond 2^53 exact, as BigInt. */
export function parseJson(text) {
  return JSON.parse(text, function revive(key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && typeof context.source === "string"
        && INTEGER.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** JSON text of `value`, with BigInts written as integers. */
export function toJson(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return `[${value.map((v) => toJson(v === undefined ? null : v)).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const parts = [];
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) parts.push(`${JSON.stringify(k)}:${toJson(v)}`);
    }
    return `{${parts.join(",")}}`;
  }
  return JSON.stringify(value);
}

let nextId = 1;

async function post(body) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST", headers: { "Content-Type": "application/json" }, body, cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    throw new RpcError(null, `Cannot reach the node at ${ENDPOINT}: ${error.message}`);
  }
  const text = await response.text();
  try {
    return parseJson(text);
  } catch {
    throw new RpcError(null, `The node answered HTTP ${response.status} with a body that is not JSON`);
  }
}

/** One call; resolves with its result or rejects with an RpcError. */
export async function call(method, params = {}) {
  const id = nextId++;
  const doc = await post(toJson({ jsonrpc: "2.0", id, method, params }));
  if (doc && doc.error) throw new RpcError(doc.error.code, `${method}: ${doc.error.message}`, doc.error.data);
  if (!doc || !("result" in doc)) throw new RpcError(null, `${method}: the node's answer has no result`);
  return doc.result;
}

/** Many calls as JSON-RPC batches (at most `chunk` per request); resolves with one entry per call,
 * `{result}` or `{error: RpcError}`, in order. */
export async function batch(calls, chunk = 50) {
  const out = [];
  for (let start = 0; start < calls.length; start += chunk) {
    const part = calls.slice(start, start + chunk);
    const ids = part.map(() => nextId++);
    const docs = await post(toJson(part.map(([method, params], i) => ({
      jsonrpc: "2.0", id: ids[i], method, params: params || {},
    }))));
    if (!Array.isArray(docs)) {
      const error = docs && docs.error ? new RpcError(docs.error.code, docs.error.message, docs.error.data)
        : new RpcError(null, "the node did not answer the batch with an array");
      throw error;
    }
    const byId = new Map(docs.map((d) => [d.id, d]));
    part.forEach(([method], i) => {
      const d = byId.get(ids[i]);
      if (!d) out.push({ error: new RpcError(null, `${method}: no answer in the batch`) });
      else if (d.error) out.push({ error: new RpcError(d.error.code, `${method}: ${d.error.message}`, d.error.data) });
      else out.push({ result: d.result });
    });
  }
  return out;
}

/** Like batch, but rejects with the first error. */
export async function batchResults(calls, chunk = 50) {
  const answers = await batch(calls, chunk);
  return answers.map((a) => {
    if (a.error) throw a.error;
    return a.result;
  });
}

// --- the OpenRPC document: which methods, params and topics this node has ---------------------

let discovered = null;

export function discover() {
  if (discovered === null) {
    discovered = call("rpc.discover").catch((error) => {
      discovered = null;
      throw error;
    });
  }
  return discovered;
}

export async function hasMethod(name) {
  const doc = await discover();
  return doc.methods.some((m) => m.name === name);
}

export async function paramSchema(method, param) {
  const doc = await discover();
  const entry = doc.methods.find((m) => m.name === method);
  const found = entry && entry.params.find((p) => p.name === param);
  return found ? found.schema : null;
}

export async function topicFilterSchema(topic) {
  const doc = await discover();
  const found = (doc["x-subscription-topics"] || []).find((t) => t.name === topic);
  return found ? found.filter : null;
}

/** The event kinds the node declares (the enum of the events topic's `kind` filter). */
export async function eventKinds() {
  const filter = await topicFilterSchema("events");
  const kind = filter && filter.properties && filter.properties.kind;
  return kind && Array.isArray(kind.enum) ? kind.enum : [];
}

/** An amount as a request param, in the type the method declares (integer or decimal string). */
export async function amountParam(method, param, value) {
  const schema = await paramSchema(method, param);
  const types = schema ? [].concat(schema.type || []) : [];
  return types.includes("integer") ? BigInt(value) : BigInt(value).toString();
}

// --- subscriptions --------------------------------------------------------------------------------

/** A subscription over its own WebSocket, re-established after a drop (with back-off).
 * `onEvent(payload)` for each notification; `onStatus(text, ok)` when the connection changes.
 * `resume`: the node takes `from_height` on subscribe (rpc.discover says), so a reconnection
 * resumes after the last height received, with no gap; `fromHeight` replays from that height first. */
export class Subscription {
  constructor(topic, filter, onEvent, onStatus, { resume = false, fromHeight = null } = {}) {
    this.topic = topic;
    this.filter = filter;
    this.onEvent = onEvent;
    this.onStatus = onStatus || (() => {});
    this.resume = resume;
    this.nextHeight = fromHeight;
    this.closed = false;
    this.delay = 500;
    this.socket = null;
    this.timer = null;
    this.open();
  }

  open() {
    if (this.closed) return;
    this.onStatus("connecting…", false);
    const socket = new WebSocket(WS_ENDPOINT);
    this.socket = socket;
    const subscribeId = nextId++;
    socket.addEventListener("open", () => {
      const params = { topic: this.topic, filter: this.filter };
      if (this.nextHeight !== null && this.nextHeight !== undefined) params.from_height = this.nextHeight;
      socket.send(toJson({ jsonrpc: "2.0", id: subscribeId, method: "subscribe", params }));
    });
    socket.addEventListener("message", (message) => {
      let doc;
      try {
        doc = parseJson(message.data);
      } catch {
        return;
      }
      if (doc.id === subscribeId) {
        if (doc.error) {
          this.closed = true;
          this.onStatus(`subscription refused: ${doc.error.message}`, false);
          socket.close();
        } else {
          this.delay = 500;
          this.onStatus("live", true);
        }
      } else if (doc.method === "subscription" && doc.params) {
        const payload = doc.params.result;
        // A height's events come together: after a drop, start again at the next height.
        if (this.resume && payload && Number.isInteger(payload.height)) this.nextHeight = payload.height + 1;
        this.onEvent(payload);
      }
    });
    socket.addEventListener("close", (event) => {
      if (this.closed) return;
      const why = event.reason ? ` (${event.reason})` : "";
      this.onStatus(`disconnected${why}; reconnecting in ${Math.round(this.delay / 1000)} s…`, false);
      this.timer = setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "page left");
  }
}
