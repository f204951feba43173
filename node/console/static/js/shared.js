// What several pages use: a cache of token terms (for decimals), token pickers, event rows.

import * as rpc from "./rpc.js";
import { enc, h, hexCode, plain, route, shortHex } from "./ui.js";

const tokens = new Map();

/** token_get, cached for the page's life (terms such as decimals never change). */
export function token(symbol) {
  if (!tokens.has(symbol)) {
    const promise = rpc.call("token_get", { token: symbol });
    promise.catch(() => tokens.delete(symbol));
    tokens.set(symbol, promise);
  }
  return tokens.get(symbol);
}

export async function decimalsOf(symbol) {
  try {
    return Number((await token(symbol)).decimals) || 0;
  } catch {
    return 0;
  }
}

/** Every token (up to `max`), via token_list pages. */
export async function allTokens(max = 5000) {
  const out = [];
  let after;
  do {
    const page = await rpc.call("token_list", { after, limit: 1000 });
    out.push(...page.tokens);
    after = page.next || undefined;
  } while (after && out.length < max);
  return out;
}

/** A <select> of tokens; `anyLabel` adds a first option with the empty value. */
export function tokenSelect(list, selected, anyLabel) {
  const options = list.map((t) => h("option", { value: t.symbol, selected: t.symbol === selected }, `${t.symbol} — ${t.name}`));
  if (anyLabel) options.unshift(h("option", { value: "", selected: !selected }, anyLabel));
  if (selected && !list.some((t) => t.symbol === selected)) {
    options.push(h("option", { value: selected, selected: true }, selected));
  }
  return h("select", { name: "token" }, options);
}

export const link = {
  token: (symbol) => `#/token/${enc(symbol)}`,
  capTable: (symbol, query) => route(`/captable/${enc(symbol)}`, query),
  identity: (id) => `#/identity/${enc(id)}`,
  wallet: (address) => route("/identity", { address }),
  block: (height) => `#/block/${height}`,
  tx: (hash) => `#/tx/${hash}`,
  actions: (symbol) => (symbol ? `#/actions/${enc(symbol)}` : "#/actions"),
  distribution: (id) => `#/distribution/${enc(id)}`,
  ballot: (id) => `#/ballot/${enc(id)}`,
};

/** The cells of one event: height, transaction, kind, token, what it says. */
export function eventCells(event) {
  return [
    event.height !== undefined ? h("a", { href: link.block(event.height) }, String(event.height)) : "—",
    event.tx ? hexCode(event.tx, link.tx(event.tx)) : "—",
    h("span", { class: `kind${String(event.kind).startsWith("tx.rejected") ? " refused" : ""}` }, event.kind),
    event.token ? h("a", { href: link.token(event.token) }, event.token) : "—",
    eventSummary(event),
  ];
}

export const EVENT_COLUMNS = [
  { label: "Height", numeric: true }, { label: "Transaction" }, { label: "Kind" }, { label: "Token" },
  { label: "Details (amounts in base units)" },
];

function eventSummary(event) {
  const data = event.data || {};
  const parts = Object.entries(data).map(([key, value]) => {
    const text = typeof value === "string" && /^[0-9a-f]{64}$/.test(value) ? shortHex(value) : plain(value);
    return h("span", { class: "pair" }, h("span", { class: "key" }, `${key}: `), text);
  });
  return h("span", { class: "summary" }, parts.length ? parts : "—");
}

/** Order of events in the chain: by their cursor (height, tx index, event index, big-endian). */
export function eventOrder(a, b) {
  return a.height - b.height || (a.tx_index || 0) - (b.tx_index || 0) || (a.event_index || 0) - (b.event_index || 0);
}
