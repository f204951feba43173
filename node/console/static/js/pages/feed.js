// Live feed: events of committed blocks as they happen, over the WebSocket "events" topic,
// filtered by token and kind on the node, and by identity on the node where the topic has that
// filter, else here (the identity's wallets, or the identity named in the event's data).

import * as rpc from "../rpc.js";
import { clear, field, h, notice, put, route, utc } from "../ui.js";
import { EVENT_COLUMNS, allTokens, eventCells, tokenSelect } from "../shared.js";

const ROWS_MAX = 500;

export async function feedPage(ctx) {
  const { view, query } = ctx;
  ctx.title("Live feed");
  const [tokens, kinds, filterSchema, resumable] = await Promise.all([
    allTokens(), rpc.eventKinds(), rpc.topicFilterSchema("events"), rpc.paramSchema("subscribe", "from_height").then(Boolean),
  ]);
  const from = /^\d+$/.test(query.from || "") ? Number(query.from) : null;
  const identity = (query.identity || "").trim();
  let wallets = null;
  const problems = [];
  const serverIdentity = Boolean(filterSchema && filterSchema.properties && filterSchema.properties.identity);
  if (identity && !serverIdentity) {
    try {
      wallets = new Set((await rpc.call("identity_get", { identity })).wallets);
    } catch (error) {
      problems.push(`Identity "${identity}": ${error.message}`);
    }
  }
  if (!ctx.isCurrent()) return;
  clear(view);

  const tokenInput = tokenSelect(tokens, query.token, "any token");
  const kindInput = h("select", { name: "kind" }, h("option", { value: "" }, "any kind"),
    kinds.map((k) => h("option", { value: k, selected: k === query.kind }, k)));
  const identityInput = h("input", { type: "text", name: "identity", value: identity, autocomplete: "off", spellcheck: "false" });
  const fromInput = h("input", { type: "number", name: "from", min: "0", step: "1", value: from === null ? "" : String(from) });
  const form = h("form", { class: "controls", "aria-label": "Filter the live feed" },
    field("Token", tokenInput), field("Kind", kindInput), field("Identity", identityInput, "an identity id; empty for all"),
    resumable ? field("Replay from height", fromInput, "empty: from now on") : null,
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Apply filter")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(route("/feed", { token: tokenInput.value, kind: kindInput.value, identity: identityInput.value.trim(),
      from: resumable ? fromInput.value : "" }));
  });

  const status = h("p", { class: "feed-status", role: "status", "aria-live": "polite", id: "feed-status" }, "connecting…");
  const body = h("tbody", { id: "feed-rows" });
  const columns = [{ label: "Received" }, ...EVENT_COLUMNS];
  const empty = h("tr", { class: "waiting" }, h("td", { colspan: columns.length, class: "empty" }, "Waiting for events… (new blocks appear here as they are committed)"));
  body.appendChild(empty);
  put(view,
    h("h1", {}, "Live feed"),
    h("p", { class: "lead" }, "Events of every block this node commits, newest first, as they happen."),
    ...problems.map((p) => notice("error", p)),
    form, status,
    h("div", { class: "table-wrap" }, h("table", { class: "feed" }, h("caption", {}, "Live events"),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.label)))), body)));

  const filter = {};
  if (query.token) filter.token = query.token;
  if (query.kind) filter.kind = query.kind;
  if (identity && serverIdentity) filter.identity = identity;
  const matches = (event) => {
    if (!identity || serverIdentity) return true;
    if (wallets === null) return false;
    const data = event.data || {};
    return (event.addresses || []).some((a) => wallets.has(a)) || data.identity === identity;
  };
  const seen = new Set(); // cursors: a replay after a reconnection never shows an event twice
  const subscription = new rpc.Subscription("events", filter, (event) => {
    if (!matches(event)) return;
    if (event.cursor) {
      if (seen.has(event.cursor)) return;
      seen.add(event.cursor);
      if (seen.size > 4 * ROWS_MAX) seen.delete(seen.values().next().value);
    }
    empty.remove();
    const row = h("tr", { class: "event fresh", dataset: { kind: event.kind, tx: event.tx || "", token: event.token || "" } },
      [utc(Date.now()), ...eventCells(event)].map((cell, j) => h("td", { class: columns[j].numeric ? "num" : null }, cell)));
    body.prepend(row);
    setTimeout(() => row.classList.remove("fresh"), 3000);
    while (body.children.length > ROWS_MAX) body.lastElementChild.remove();
  }, (text, ok) => {
    status.textContent = `Feed: ${text}`;
    status.classList.toggle("bad", !ok);
    status.dataset.state = ok ? "live" : "down";
  }, { resume: resumable, fromHeight: resumable ? from : null });
  ctx.onLeave(() => subscription.close());
}
