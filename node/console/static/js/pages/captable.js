// Cap table at any height: holders by identity (token_holders) or by wallet (token_holder_wallets),
// with exact percentages of the supply at that height, frozen parts, paging and CSV export.

import * as rpc from "../rpc.js";
import { big, clear, csv, download, enc, errorText, field, h, hexCode, notice, percent, put, route, table, units, utc } from "../ui.js";
import { allTokens, link, token as tokenInfo } from "../shared.js";

const LIMITS = [50, 100, 500, 1000];
// The cursor of the page before each page seen, so that "Previous page" works within a visit.
const previous = new Map();

export async function capTablePicker(ctx) {
  const { view } = ctx;
  ctx.title("Cap table");
  const list = await allTokens();
  if (!ctx.isCurrent()) return;
  clear(view);
  put(view,
    h("h1", {}, "Cap table"),
    h("p", { class: "lead" }, "Who held a token, at any height or time. Pick a token:"),
    list.length ? h("ul", { class: "token-links" }, list.map((t) => h("li", {}, h("a", { href: link.capTable(t.symbol) }, `${t.symbol} — ${t.name}`))))
      : notice("info", "No token has been created on this chain yet."),
  );
}

function intParam(text, fallback, min, max) {
  if (text === undefined || text === "") return fallback;
  if (!/^\d+$/.test(text)) return NaN;
  const value = Number(text);
  return value < min || value > max ? NaN : value;
}

/** "2024-05-01T12:00:00Z" or "2024-05-01T12:00" (read as UTC) -> ms, or NaN. */
function parseTime(text) {
  const value = /(Z|[+-]\d\d:\d\d)$/.test(text) ? text : `${text}Z`;
  return Date.parse(value);
}

function timeInputValue(ms) {
  return new Date(ms).toISOString().slice(0, 19);
}

export async function capTablePage(ctx) {
  const { view, query } = ctx;
  const symbol = ctx.params[0];
  ctx.title(`Cap table of ${symbol}`);
  const byWallet = query.view === "wallet";
  const limit = intParam(query.limit, 100, 1, 1000);
  const [token, status] = await Promise.all([tokenInfo(symbol), rpc.call("chain_status")]);
  const tip = status.height;
  const problems = [];
  let height = intParam(query.height, null, 0, tip);
  let resolved = null;
  if (Number.isNaN(height)) {
    problems.push(`Height "${query.height}" is not a committed height (0 to ${tip}); showing the latest.`);
    height = null;
  }
  if (query.time) {
    const ms = parseTime(query.time);
    if (Number.isNaN(ms)) {
      problems.push(`Time "${query.time}" is not a date and time such as 2024-05-01T12:00:00Z.`);
    } else {
      try {
        resolved = await rpc.call("block_at_time", { time_ms: ms });
        height = resolved.height;
      } catch (error) {
        problems.push(`No block at or before ${utc(ms)}: ${errorText(error)}`);
      }
    }
  }
  if (height === null) height = tip;
  if (Number.isNaN(limit)) problems.push(`Rows per page must be 1 to 1000; showing 100.`);
  const pageSize = Number.isNaN(limit) ? 100 : limit;
  const after = query.after || undefined;

  const [supply, page, block] = await Promise.all([
    rpc.call("token_supply", { token: symbol, height }),
    rpc.call("token_holders", { token: symbol, height, after, limit: pageSize }),
    height > 0 ? rpc.call("block_get", { height }).catch(() => null) : Promise.resolve(null),
  ]);
  const identities = page.holders.map((row) => row.identity);
  const wallets = identities.length
    ? await rpc.call("token_holder_wallets", { token: symbol, identities, height })
    : { identities: [], frozen_height: tip };
  if (!ctx.isCurrent()) return;

  const decimals = Number(token.decimals) || 0;
  const total = big(supply.total_supply);
  const walletsOf = new Map(wallets.identities.map((entry) => [entry.identity, entry.wallets]));
  const here = { height, view: byWallet ? "wallet" : undefined, limit: pageSize === 100 ? undefined : pageSize };
  if (page.next) previous.set(`${symbol}|${height}|${page.next}`, after || "");
  const before = previous.get(`${symbol}|${height}|${after || ""}`);

  clear(view);
  put(view, h("h1", {}, `Cap table of ${symbol} at height ${height}`));
  for (const problem of problems) put(view, notice("error", problem));
  put(view,
    h("p", { class: "lead", id: "captable-summary" },
      `${token.name}. `,
      block ? `Block ${height} was committed at ${utc(block.time_ms)}. ` : "",
      resolved ? `It is the last block at or before ${utc(parseTime(query.time))}. ` : "",
      `Total supply ${units(total, decimals)} (${total} base units) held by ${supply.holder_count} identities. `,
      `Frozen amounts are as of height ${wallets.frozen_height} (the ledger keeps no history of freezes).`),
    controls(ctx, symbol, tip, height, byWallet, pageSize, query.time),
  );

  const rows = [];
  const attrs = [];
  if (!byWallet) {
    for (const holder of page.holders) {
      const ws = walletsOf.get(holder.identity) || [];
      const frozen = ws.reduce((sum, w) => sum + big(w.frozen), 0n);
      rows.push([
        h("a", { href: link.identity(holder.identity) }, holder.identity),
        units(holder.balance, decimals),
        percent(holder.balance, total),
        frozen ? units(frozen, decimals) : "—",
        String(ws.filter((w) => big(w.balance) > 0n).length),
      ]);
      attrs.push({ class: "holder", dataset: { identity: holder.identity, balance: big(holder.balance).toString() } });
    }
    put(view, table(`Holders of ${symbol} by identity at height ${height}`, [
      { label: "Identity" }, { label: `Balance (${symbol})`, numeric: true }, { label: "Share of supply", numeric: true },
      { label: `Frozen now`, numeric: true }, { label: "Wallets holding", numeric: true },
    ], rows, (i) => attrs[i]));
  } else {
    for (const holder of page.holders) {
      const ws = (walletsOf.get(holder.identity) || []).filter((w) => big(w.balance) > 0n || big(w.frozen) > 0n);
      ws.forEach((w, i) => {
        rows.push([
          i === 0 ? h("a", { href: link.identity(holder.identity) }, holder.identity) : h("span", { class: "muted" }, holder.identity),
          hexCode(w.address, link.wallet(w.address)),
          units(w.balance, decimals),
          percent(w.balance, total),
          big(w.frozen) ? units(w.frozen, decimals) : "—",
          w.address_frozen ? h("strong", { class: "warn" }, "frozen") : "no",
        ]);
        attrs.push({ class: "wallet", dataset: { identity: holder.identity, address: w.address, balance: big(w.balance).toString() } });
      });
    }
    put(view, table(`Holders of ${symbol} by wallet at height ${height}`, [
      { label: "Identity" }, { label: "Wallet" }, { label: `Balance (${symbol})`, numeric: true },
      { label: "Share of supply", numeric: true }, { label: "Frozen now", numeric: true }, { label: "Address frozen now" },
    ], rows, (i) => attrs[i]));
  }
  put(view, h("nav", { class: "pager", "aria-label": "Cap table pages" },
    after ? h("a", { href: link.capTable(symbol, here) }, "First page") : null,
    before !== undefined && after ? h("a", { href: link.capTable(symbol, { ...here, after: before || undefined }) }, "Previous page") : null,
    page.next ? h("a", { href: link.capTable(symbol, { ...here, after: page.next }), rel: "next" }, "Next page") : null));

  const progress = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const button = h("button", { type: "button", onclick: () => exportCsv(symbol, height, byWallet, total, decimals, progress, button) },
    `Download the whole cap table at height ${height} as CSV`);
  put(view, h("section", { "aria-labelledby": "export-h" }, h("h2", { id: "export-h" }, "Export"), button, progress));
}

function controls(ctx, symbol, tip, height, byWallet, pageSize, time) {
  const heightInput = h("input", { type: "number", name: "height", min: "0", max: String(tip), step: "1", value: time ? "" : String(height), inputmode: "numeric" });
  const timeInput = h("input", { type: "datetime-local", name: "time", step: "1", value: time && !Number.isNaN(parseTime(time)) ? timeInputValue(parseTime(time)) : "" });
  const viewSelect = h("select", { name: "view" },
    h("option", { value: "identity", selected: !byWallet }, "by identity"),
    h("option", { value: "wallet", selected: byWallet }, "by wallet"));
  const limitSelect = h("select", { name: "limit" }, LIMITS.map((n) => h("option", { value: String(n), selected: n === pageSize }, String(n))));
  const form = h("form", { class: "controls", "aria-label": "Which cap table" },
    field("Height", heightInput, `0 to ${tip} (latest)`),
    field("or time (UTC)", timeInput, "the last block at or before it"),
    field("Holders", viewSelect),
    field("Rows per page", limitSelect),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = { view: viewSelect.value === "wallet" ? "wallet" : undefined,
      limit: limitSelect.value === "100" ? undefined : limitSelect.value };
    if (timeInput.value) query.time = `${timeInput.value.length === 16 ? `${timeInput.value}:00` : timeInput.value}Z`;
    else if (heightInput.value !== "") query.height = heightInput.value;
    ctx.go(link.capTable(symbol, query));
  });
  const output = h("output", { for: "history-slider", id: "history-output" }, `height ${height}`);
  const slider = h("input", { type: "range", id: "history-slider", name: "slide", min: "0", max: String(tip), step: "1", value: String(height) });
  slider.addEventListener("input", () => { output.textContent = `height ${slider.value}`; });
  slider.addEventListener("change", () => {
    ctx.go(link.capTable(symbol, { height: slider.value, view: byWallet ? "wallet" : undefined,
      limit: pageSize === 100 ? undefined : pageSize }));
  });
  return h("div", { class: "panel" }, form,
    h("div", { class: "slider" }, h("label", { for: "history-slider" }, "Slide through history"), slider, output),
    h("p", { class: "muted" }, h("a", { href: route(`/feed`, { token: symbol }) }, `Live events of ${symbol}`), " · ",
      h("a", { href: `#/token/${enc(symbol)}` }, `Terms of ${symbol}`)));
}

async function exportCsv(symbol, height, byWallet, total, decimals, progress, button) {
  button.disabled = true;
  const header = byWallet
    ? ["token", "height", "identity", "wallet", "balance_base_units", "balance", "percent_of_supply", "frozen_now_base_units", "address_frozen_now"]
    : ["token", "height", "identity", "balance_base_units", "balance", "percent_of_supply", "frozen_now_base_units"];
  const lines = [header];
  let after;
  let count = 0;
  try {
    do {
      const page = await rpc.call("token_holders", { token: symbol, height, after, limit: 1000 });
      const identities = page.holders.map((row) => row.identity);
      const wallets = identities.length ? await rpc.call("token_holder_wallets", { token: symbol, identities, height }) : { identities: [] };
      const walletsOf = new Map(wallets.identities.map((entry) => [entry.identity, entry.wallets]));
      for (const holder of page.holders) {
        const ws = walletsOf.get(holder.identity) || [];
        if (byWallet) {
          for (const w of ws.filter((x) => big(x.balance) > 0n || big(x.frozen) > 0n)) {
            lines.push([symbol, height, holder.identity, w.address, big(w.balance).toString(), units(w.balance, decimals).replace(/,/g, ""),
              percent(w.balance, total, 6).replace(" %", ""), big(w.frozen).toString(), w.address_frozen ? "yes" : "no"]);
          }
        } else {
          const frozen = ws.reduce((sum, w) => sum + big(w.frozen), 0n);
          lines.push([symbol, height, holder.identity, big(holder.balance).toString(), units(holder.balance, decimals).replace(/,/g, ""),
            percent(holder.balance, total, 6).replace(" %", ""), frozen.toString()]);
        }
      }
      count += page.holders.length;
      progress.textContent = `Fetched ${count} holders…`;
      after = page.next || undefined;
    } while (after);
    download(`${symbol}-cap-table-height-${height}-by-${byWallet ? "wallet" : "identity"}.csv`, csv(lines));
    progress.textContent = `Downloaded ${count} holders (${lines.length - 1} rows).`;
  } catch (error) {
    progress.textContent = "";
    progress.after(notice("error", `The export stopped: ${errorText(error)}`));
  } finally {
    button.disabled = false;
  }
}
