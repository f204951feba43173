// Identity: wallets, claims (issuer, expiry), holdings across tokens, and everything it did —
// identity_history where the node has it, else events_query by each of its wallets, merged.

import * as rpc from "../rpc.js";
import { clear, errorText, facts, field, h, hexCode, notice, put, route, table, units, utcSeconds } from "../ui.js";
import { EVENT_COLUMNS, decimalsOf, eventCells, eventOrder, link } from "../shared.js";

const HEX64 = /^[0-9a-f]{64}$/;

function searchForm(ctx, value) {
  const input = h("input", { type: "search", name: "who", value: value || "", autocomplete: "off", spellcheck: "false", required: true });
  const form = h("form", { class: "controls", role: "search", "aria-label": "Find an identity" },
    field("Identity id or wallet address", input, "for example alice, or 64 hex digits of a wallet"),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Show identity")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    ctx.go(HEX64.test(text.toLowerCase()) ? route("/identity", { address: text.toLowerCase() }) : link.identity(text));
  });
  return form;
}

export async function identityPage(ctx) {
  const { view, query } = ctx;
  const id = ctx.params[0];
  const address = query.address;
  if (!id && !address) {
    ctx.title("Identity");
    clear(view);
    put(view, h("h1", {}, "Identity"),
      h("p", { class: "lead" }, "An identity is one investor (person or entity) with one or more wallets. Find one by its id or by any of its wallets."),
      searchForm(ctx, ""));
    return;
  }
  ctx.title(id ? `Identity ${id}` : "Wallet");
  let identity;
  try {
    identity = await rpc.call("identity_get", id ? { identity: id } : { address });
  } catch (error) {
    if (!ctx.isCurrent()) return;
    clear(view);
    put(view, h("h1", {}, id ? `Identity ${id}` : `Wallet ${address}`), searchForm(ctx, id || address));
    if (error.code === -32001 && address) {
      put(view, notice("info", "No identity owns this wallet (it may be an issuer's, an agent's or an administrator's account). Its events:"));
      await history(ctx, view, { wallets: [address] });
      return;
    }
    throw error;
  }
  // identity_history where the node has it (also every event naming the identity itself, such as
  // its claims); ?source=wallets reads events_query by each wallet instead.
  const [holdings, hasHistoryMethod] = await Promise.all([
    rpc.call("identity_holdings", { identity: identity.identity }),
    rpc.hasMethod("identity_history"),
  ]);
  const useHistoryMethod = hasHistoryMethod && query.source !== "wallets";
  const decimals = new Map(await Promise.all(holdings.holdings.map(async (x) => [x.token, await decimalsOf(x.token)])));
  if (!ctx.isCurrent()) return;
  ctx.title(`Identity ${identity.identity}`);
  clear(view);
  put(view,
    h("h1", {}, `Identity ${identity.identity}`),
    searchForm(ctx, identity.identity),
    address ? notice("info", `Wallet ${address} belongs to identity ${identity.identity}.`) : null,
    facts([["Identity", identity.identity], ["Wallets", String(identity.wallets.length)], ["Claims", String(identity.claims.length)]]),
    h("p", { class: "links" }, h("a", { href: route("/feed", { identity: identity.identity }) }, `Live events of ${identity.identity}`), " · ",
      useHistoryMethod ? h("a", { href: route(`/identity/${encodeURIComponent(identity.identity)}`, { source: "wallets" }) }, "History by wallet address only")
        : h("a", { href: link.identity(identity.identity) }, "Full history")),
    h("section", { "aria-labelledby": "wallets-h" }, h("h2", { id: "wallets-h" }, "Wallets"),
      table("Wallet addresses of this identity", [{ label: "Address" }],
        identity.wallets.map((w) => [h("code", { class: "hex full" }, w)]))),
    h("section", { "aria-labelledby": "claims-h" }, h("h2", { id: "claims-h" }, "Claims"),
      table("Claims given by claim issuers (KYC providers)", [
        { label: "Topic" }, { label: "Value" }, { label: "Issuer" }, { label: "Expires" }, { label: "Valid now" },
      ], identity.claims.map((c) => [c.topic, c.value || "—", hexCode(c.issuer, link.wallet(c.issuer)), utcSeconds(c.expires_at),
        c.valid ? "yes" : h("strong", { class: "warn" }, "no")]))),
    h("section", { "aria-labelledby": "holdings-h" }, h("h2", { id: "holdings-h" }, "Holdings"),
      table(`Holdings across tokens at height ${holdings.height}`, [
        { label: "Token" }, { label: "Balance", numeric: true }, { label: "By wallet" }, { label: "Frozen now", numeric: true },
      ], holdings.holdings.map((x) => {
        const d = decimals.get(x.token) || 0;
        const frozen = x.wallets.reduce((s, w) => s + BigInt(String(w.frozen)), 0n);
        return [h("a", { href: link.token(x.token) }, x.token), units(x.balance, d),
          h("ul", { class: "plain" }, x.wallets.filter((w) => BigInt(String(w.balance)) > 0n || w.address_frozen).map((w) =>
            h("li", {}, hexCode(w.address), ` ${units(w.balance, d)}`, w.address_frozen ? h("strong", { class: "warn" }, " (address frozen)") : ""))),
          frozen ? units(frozen, d) : "—"];
      }))),
  );
  await history(ctx, view, { identity: useHistoryMethod ? identity.identity : null, wallets: identity.wallets });
}

/** The event history, oldest first, with "Load more". */
async function history(ctx, view, { identity, wallets }) {
  const section = h("section", { "aria-labelledby": "history-h" },
    h("h2", { id: "history-h" }, "History"),
    h("p", { class: "muted" }, identity
      ? "Every event that names this identity or one of its wallets (identity_history), oldest first."
      : "Every event that names one of these wallets (events_query by address, merged), oldest first."));
  put(view, section);
  const body = h("tbody");
  const tableEl = h("div", { class: "table-wrap" }, h("table", {}, h("caption", {}, "Events"),
    h("thead", {}, h("tr", {}, EVENT_COLUMNS.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.label)))), body));
  const more = h("button", { type: "button" }, "Load more");
  const state = h("p", { class: "muted", role: "status" });
  put(section, tableEl, state, more);
  const seen = new Set();
  // Sources: one cursor for identity_history, or one per wallet for events_query.
  const sources = identity
    ? [{ method: "identity_history", params: { identity }, next: undefined, done: false, buffer: [] }]
    : wallets.map((w) => ({ method: "events_query", params: { address: w }, next: undefined, done: false, buffer: [] }));
  const addRows = (events) => {
    for (const event of events) {
      if (seen.has(event.cursor)) continue;
      seen.add(event.cursor);
      body.appendChild(h("tr", { class: "event", dataset: { kind: event.kind, tx: event.tx || "" } },
        eventCells(event).map((cell, j) => h("td", { class: EVENT_COLUMNS[j].numeric ? "num" : null }, cell))));
    }
  };
  const load = async () => {
    more.disabled = true;
    try {
      await Promise.all(sources.filter((s) => !s.done && s.buffer.length < 100).map(async (s) => {
        const page = await rpc.call(s.method, { ...s.params, after: s.next, limit: 100 });
        s.buffer.push(...page.events);
        s.next = page.next || undefined;
        s.done = !page.next;
      }));
      // Events up to the earliest last-loaded event of a source with more to come are complete.
      const open = sources.filter((s) => !s.done);
      const frontier = open.length ? open.map((s) => s.buffer[s.buffer.length - 1]).sort(eventOrder)[0] : null;
      const ready = [];
      for (const s of sources) {
        const keep = [];
        for (const e of s.buffer) (frontier && eventOrder(e, frontier) > 0 ? keep : ready).push(e);
        s.buffer = keep;
      }
      ready.sort(eventOrder);
      addRows(ready);
      const finished = sources.every((s) => s.done && s.buffer.length === 0);
      more.hidden = finished;
      state.textContent = `${seen.size} events${finished ? " (all)" : ""}.`;
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", () => load().catch((error) => put(section, notice("error", errorText(error)))));
  await load();
  if (seen.size === 0 && body.children.length === 0) {
    body.appendChild(h("tr", {}, h("td", { colspan: EVENT_COLUMNS.length, class: "empty" }, "No events.")));
  }
}
