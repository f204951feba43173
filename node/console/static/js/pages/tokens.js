// Tokens: the list, and each token's terms, rules, agents, documents, supply, holders, pause.

import * as rpc from "../rpc.js";
import { clear, enc, facts, h, hexCode, notice, plain, put, route, table, units, utcSeconds, yesNo } from "../ui.js";
import { link } from "../shared.js";

export async function tokensPage(ctx) {
  const { view, query } = ctx;
  ctx.title("Tokens");
  const [status, page] = await Promise.all([
    rpc.call("chain_status"),
    rpc.call("token_list", { after: query.after || undefined, limit: 100 }),
  ]);
  if (!ctx.isCurrent()) return;
  clear(view);
  put(view,
    h("h1", {}, "Tokens"),
    h("p", { class: "lead" }, `Every security token on chain ${status.chain_id}, as of height ${status.height}. `,
      "Pick one for its terms, its cap table at any height, its corporate actions or its live events."),
    table("Tokens, ascending by symbol", [
      { label: "Symbol" }, { label: "Name" }, { label: "Total supply", numeric: true },
      { label: "Holders", numeric: true }, { label: "Paused" }, { label: "Pages" },
    ], page.tokens.map((t) => [
      h("a", { href: link.token(t.symbol) }, t.symbol),
      t.name,
      units(t.total_supply, t.decimals),
      String(t.holder_count),
      t.paused ? h("strong", { class: "warn" }, "paused") : "no",
      h("span", { class: "links" },
        h("a", { href: link.capTable(t.symbol), "aria-label": `Cap table of ${t.symbol}` }, "cap table"), " · ",
        h("a", { href: link.actions(t.symbol), "aria-label": `Corporate actions of ${t.symbol}` }, "actions"), " · ",
        h("a", { href: route("/feed", { token: t.symbol }), "aria-label": `Live events of ${t.symbol}` }, "live")),
    ]), (i) => ({ dataset: { token: page.tokens[i].symbol } })),
    h("nav", { class: "pager", "aria-label": "Token pages" },
      query.after ? h("a", { href: "#/tokens" }, "First page") : null,
      page.next ? h("a", { href: route("/tokens", { after: page.next }) }, "Next page") : null),
  );
}

function ruleRows(rules) {
  return Object.entries(rules || {}).map(([name, value]) => [h("code", {}, name), plain(value)]);
}

export async function tokenPage(ctx) {
  const { view } = ctx;
  const symbol = ctx.params[0];
  ctx.title(`Token ${symbol}`);
  const [token, documents] = await Promise.all([
    rpc.call("token_get", { token: symbol }),
    rpc.call("token_documents", { token: symbol }),
  ]);
  if (!ctx.isCurrent()) return;
  clear(view);
  const d = token.decimals;
  put(view,
    h("h1", {}, `${token.symbol} — ${token.name}`),
    h("p", { class: "links" },
      h("a", { href: link.capTable(symbol) }, "Cap table"), " · ",
      h("a", { href: link.actions(symbol) }, "Corporate actions"), " · ",
      h("a", { href: route("/feed", { token: symbol }) }, "Live events"), " · ",
      h("a", { href: route("/dryrun", { token: symbol }) }, "Compliance dry run")),
    token.paused ? notice("error", "Transfers of this token are paused (holders cannot transfer; agents still can act).") : null,
    h("section", { "aria-labelledby": "terms-h" },
      h("h2", { id: "terms-h" }, "Terms"),
      facts([
        ["Symbol", token.symbol],
        ["Name", token.name],
        ["Decimals", String(d)],
        ["Total supply", h("span", {}, units(token.total_supply, d), " ", h("span", { class: "muted" }, `(${String(token.total_supply)} base units)`))],
        ["Holders (identities)", String(token.holder_count)],
        ["Paused", yesNo(token.paused)],
        ["Owner (issuer wallet)", hexCode(token.owner, link.wallet(token.owner))],
        ["Created", utcSeconds(token.created_at_s)],
      ])),
    h("section", { "aria-labelledby": "rules-h" },
      h("h2", { id: "rules-h" }, "Transfer rules"),
      table("Rules enforced on every transfer, with their parameters", [{ label: "Rule" }, { label: "Parameters" }],
        ruleRows(token.rules))),
    h("section", { "aria-labelledby": "agents-h" },
      h("h2", { id: "agents-h" }, "Agents"),
      table("Agents and the roles the owner gave them", [{ label: "Agent wallet" }, { label: "Roles" }],
        (token.agents || []).map((a) => [hexCode(a.address, link.wallet(a.address)), (a.roles || []).join(", ")]))),
    h("section", { "aria-labelledby": "docs-h" },
      h("h2", { id: "docs-h" }, "Documents"),
      table("Current documents (name, where to read it, SHA-256 of its content)", [
        { label: "Name" }, { label: "URI" }, { label: "Content SHA-256" }, { label: "Updated" },
      ], (documents || []).map((doc) => [doc.name, h("code", { class: "uri" }, doc.uri), hexCode(doc.hash), utcSeconds(doc.updated_at_s)]))),
  );
}

export async function aboutPage(ctx) {
  const { view } = ctx;
  ctx.title("About");
  const doc = await rpc.discover();
  if (!ctx.isCurrent()) return;
  clear(view);
  put(view,
    h("h1", {}, "About this console"),
    h("p", {}, "This console is a set of static files served by the node. It reads the ledger only through the ",
      "public JSON-RPC and WebSocket API that every client uses, so whatever it shows, a script can fetch the same way."),
    h("p", {}, `The node declares ${doc.methods.length} JSON-RPC methods (OpenRPC document at rpc.discover):`),
    h("ul", { class: "columns" }, doc.methods.map((m) => h("li", {}, h("code", {}, m.name), m["x-write"] ? " (write)" : ""))),
    h("p", {}, "Pages: ", h("a", { href: "#/tokens" }, "tokens"), ", ", h("a", { href: "#/captable" }, "cap table"), ", ",
      h("a", { href: "#/identity" }, "identity"), ", ", h("a", { href: "#/feed" }, "live feed"), ", ",
      h("a", { href: "#/blocks" }, "blocks"), ", ", h("a", { href: "#/actions" }, "corporate actions"), ", ",
      h("a", { href: "#/dryrun" }, "compliance dry run"), "."),
    h("p", { class: "muted" }, `Links to a token are of the form #/token/${enc("SYMBOL")}.`),
  );
}
