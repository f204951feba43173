// Corporate actions: distributions (paid, held, unclaimed), liquidation waterfalls, ballots and
// their tallies. Actions are found through their events (events_query), and read with
// distribution_get and ballot_get (docs/CORPORATE_ACTIONS.md).

import * as rpc from "../rpc.js";
import { big, clear, errorText, facts, field, h, hexCode, notice, percent, plain, put, table, units, utcSeconds, yesNo } from "../ui.js";
import { EVENT_COLUMNS, decimalsOf, eventCells, link } from "../shared.js";

const PAGES_MAX = 20;

/** Every event of a kind (and token), up to PAGES_MAX pages of 1000. */
async function eventsOf(kind, token) {
  const out = [];
  let after;
  for (let i = 0; i < PAGES_MAX; i += 1) {
    const page = await rpc.call("events_query", { kind, token: token || undefined, after, limit: 1000 });
    out.push(...page.events);
    if (!page.next) break;
    after = page.next;
  }
  return out;
}

export async function actionsPage(ctx) {
  const { view } = ctx;
  const symbol = ctx.params[0] || null;
  ctx.title(symbol ? `Corporate actions of ${symbol}` : "Corporate actions");
  const [declared, liquidations, ballots] = await Promise.all([
    eventsOf("distribution.declared", symbol), eventsOf("liquidation.declared", symbol), eventsOf("ballot.created", symbol),
  ]);
  const distributionIds = [...declared, ...liquidations].map((e) => e.data.id);
  const [records, ballotRecords] = await Promise.all([
    rpc.batch(distributionIds.map((id) => ["distribution_get", { id }])),
    rpc.batch(ballots.map((e) => ["ballot_get", { id: e.data.id }])),
  ]);
  const decimals = new Map();
  for (const answer of records) {
    if (answer.result && !decimals.has(answer.result.payment_token)) {
      decimals.set(answer.result.payment_token, await decimalsOf(answer.result.payment_token));
    }
  }
  if (!ctx.isCurrent()) return;
  clear(view);
  const distRow = (event, answer) => {
    if (answer.error) return [event.data.id, "—", "—", "—", "—", "—", "—", "—", errorText(answer.error)];
    const d = answer.result;
    const dec = decimals.get(d.payment_token) || 0;
    return [h("a", { href: link.distribution(d.id) }, d.id), d.kind === "table" ? "liquidation" : "distribution",
      (d.tokens || []).join(", "), d.payment_token, h("a", { href: link.block(d.record_height) }, String(d.record_height)),
      units(d.funded, dec), units(d.paid, dec), units(d.remaining, dec), d.closed ? "closed" : `open until ${utcSeconds(d.expires_at)}`];
  };
  put(view,
    h("h1", {}, symbol ? `Corporate actions of ${symbol}` : "Corporate actions"),
    h("p", { class: "lead" }, "Distributions (dividends, coupons), liquidation waterfalls and shareholder votes, found through their events. ",
      symbol ? h("a", { href: "#/actions" }, "All tokens") : "Open a token's page to see its actions only."),
    h("section", { "aria-labelledby": "dist-h" }, h("h2", { id: "dist-h" }, "Distributions and liquidations"),
      table("Distributions and liquidations: funded, paid and not yet paid, in the payment token", [
        { label: "Id" }, { label: "Kind" }, { label: "Tokens" }, { label: "Paid in" }, { label: "Record height", numeric: true },
        { label: "Funded", numeric: true }, { label: "Paid", numeric: true }, { label: "Not paid", numeric: true }, { label: "State" },
      ], [...declared, ...liquidations].map((e, i) => distRow(e, records[i])))),
    h("section", { "aria-labelledby": "ballots-h" }, h("h2", { id: "ballots-h" }, "Ballots"),
      table("Shareholder votes and their running tallies", [
        { label: "Id" }, { label: "Token" }, { label: "Question" }, { label: "Votes in blocks" }, { label: "Voters", numeric: true },
        { label: "Leading option" }, { label: "Tallied" },
      ], ballots.map((e, i) => {
        const answer = ballotRecords[i];
        if (answer.error) return [e.data.id, e.token, "—", "—", "—", "—", errorText(answer.error)];
        const b = answer.result;
        return [h("a", { href: link.ballot(b.id) }, b.id), b.token, b.question, `${b.opens_at_height} to ${b.closes_at_height - 1}`,
          String(b.voters), leading(b), yesNo(b.tallied)];
      }))),
  );
}

function leading(ballot) {
  const tallies = (ballot.tallies || []).map(big);
  if (!tallies.length) return "—";
  const top = tallies.reduce((a, b) => (b > a ? b : a), 0n);
  const leaders = tallies.map((t, i) => [t, i]).filter(([t]) => t === top && top > 0n);
  if (leaders.length !== 1) return top === 0n ? "no votes" : "tie";
  return ballot.options[leaders[0][1]];
}

export async function distributionPage(ctx) {
  const { view, query } = ctx;
  const id = ctx.params[0];
  ctx.title(`Distribution ${id}`);
  const d = await rpc.call("distribution_get", { id });
  const token = d.tokens[0];
  const [paid, held, skipped, reclaimed, liquidations, dec] = await Promise.all([
    eventsOf("distribution.paid", token), eventsOf("distribution.payment_held", token),
    eventsOf("distribution.payment_skipped", token), eventsOf("distribution.reclaimed", token),
    d.kind === "table" ? eventsOf("liquidation.declared", token) : Promise.resolve([]), decimalsOf(d.payment_token),
  ]);
  const mine = (events) => events.filter((e) => e.data && e.data.id === id);
  const paidBy = new Map(mine(paid).map((e) => [e.data.identity, big(e.data.amount)]));
  const heldIdentities = [...new Set(mine(held).map((e) => e.data.identity))].filter((i) => !paidBy.has(i));
  const entitlements = await rpc.batch(heldIdentities.map((identity) => ["distribution_get", { id, identity }]));
  const heldTotal = entitlements.reduce((sum, a) => sum + (a.result ? big(a.result.identity.entitlement) : 0n), 0n);
  let lookup = null;
  if (query.identity) {
    lookup = await rpc.call("distribution_get", { id, identity: query.identity }).catch((error) => ({ error }));
  }
  if (!ctx.isCurrent()) return;
  clear(view);
  const remaining = big(d.remaining);
  const unclaimed = d.closed ? 0n : remaining - heldTotal;
  const reclaimedAmount = mine(reclaimed).reduce((s, e) => s + big(e.data.amount), 0n);
  const u = (x) => `${units(x, dec)} ${d.payment_token}`;
  put(view,
    h("h1", {}, `${d.kind === "table" ? "Liquidation" : "Distribution"} ${id}`),
    facts([
      ["Tokens", h("span", {}, (d.tokens || []).map((t, i) => [i ? ", " : "", h("a", { href: link.token(t) }, t)]))],
      ["Paid in", h("a", { href: link.token(d.payment_token) }, d.payment_token)],
      ["Record height", h("span", {}, h("a", { href: link.capTable(token, { height: d.record_height }) }, String(d.record_height)), " (entitlements come from the cap table at this height)")],
      d.kind === "rate" ? ["Rate", `${d.rate_num} / ${d.rate_den} ${d.payment_token} base units per base unit held`] : ["Rate", "waterfall table (below)"],
      ["Funded (in escrow at declaration)", u(d.funded)],
      ["Paid", h("strong", {}, u(d.paid)), ` to ${paidBy.size} identities`],
      ["Held (payment refused, entitlement kept)", `${u(heldTotal)} for ${heldIdentities.length} identities`],
      ["Unclaimed (neither paid nor held)", u(unclaimed)],
      ["Expires", utcSeconds(d.expires_at)],
      ["State", d.closed ? `closed; ${u(reclaimedAmount)} returned to the declarer` : "open"],
      ["Declarer", hexCode(d.declarer, link.wallet(d.declarer))],
    ].map(([label, ...value]) => [label, value.length > 1 ? h("span", {}, ...value) : value[0]])),
  );
  for (const e of mine(liquidations)) put(view, waterfall(e, dec, d.payment_token, paidBy));
  put(view, h("section", { "aria-labelledby": "held-h" }, h("h2", { id: "held-h" }, "Held payments"),
    table("Identities whose payment was held, with why and what they are owed", [
      { label: "Identity" }, { label: "Entitlement", numeric: true }, { label: "Why held (latest)" },
    ], heldIdentities.map((identity, i) => {
      const last = mine(held).filter((e) => e.data.identity === identity).pop();
      const a = entitlements[i];
      return [h("a", { href: link.identity(identity) }, identity), a.result ? units(a.result.identity.entitlement, dec) : errorText(a.error), last.data.reason];
    }))));
  const lookupInput = h("input", { type: "text", name: "identity", value: query.identity || "", autocomplete: "off" });
  const form = h("form", { class: "controls", "aria-label": "Entitlement of one identity" },
    field("Identity", lookupInput, "its entitlement and whether it was paid"),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Look up")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(`${link.distribution(id)}?identity=${encodeURIComponent(lookupInput.value.trim())}`);
  });
  const lookupSection = h("section", { "aria-labelledby": "lookup-h" }, h("h2", { id: "lookup-h" }, "One identity's entitlement"), form);
  if (lookup && lookup.error) put(lookupSection, notice("error", errorText(lookup.error)));
  else if (lookup) {
    put(lookupSection, facts([["Identity", lookup.identity.identity], ["Entitlement", u(lookup.identity.entitlement)],
      ["Paid", lookup.identity.paid === null || lookup.identity.paid === undefined ? "not yet" : u(lookup.identity.paid)]]));
  }
  put(view, lookupSection,
    h("section", { "aria-labelledby": "payments-h" }, h("h2", { id: "payments-h" }, "Payment events"),
      table("Paid, held, skipped and reclaimed, in order", EVENT_COLUMNS,
        [...mine(paid), ...mine(held), ...mine(skipped), ...mine(reclaimed)]
          .sort((a, b) => a.height - b.height || a.tx_index - b.tx_index || a.event_index - b.event_index)
          .map(eventCells))));
}

function waterfall(event, dec, paymentToken, paidBy) {
  const data = event.data;
  return h("section", { "aria-labelledby": "waterfall-h" }, h("h2", { id: "waterfall-h" }, "Waterfall result"),
    h("p", {}, `Amount ${units(data.amount, dec)} ${paymentToken}, distributed ${units(data.distributed, dec)}; `,
      "the rest stays with the declarer. Classes by the order the declaration gave them:"),
    table("Share classes: units at the record height, payout and conversion", [
      { label: "Class token" }, { label: "Units (base units)", numeric: true }, { label: "Payout", numeric: true }, { label: "Converted" },
    ], (data.classes || []).map((c) => [c.token, String(big(c.units)), units(c.payout, dec), yesNo(c.converted)])),
    table("Entitlements by identity (largest-remainder split within each class)", [
      { label: "Identity" }, { label: "Entitlement", numeric: true }, { label: "Share", numeric: true }, { label: "Paid" },
    ], (data.entitlements || []).map(([identity, amount]) => [h("a", { href: link.identity(identity) }, identity),
      units(amount, dec), percent(amount, data.distributed), paidBy.has(identity) ? "yes" : "no"])));
}

export async function ballotPage(ctx) {
  const { view } = ctx;
  const id = ctx.params[0];
  ctx.title(`Ballot ${id}`);
  const b = await rpc.call("ballot_get", { id });
  const [voted, results, dec] = await Promise.all([eventsOf("ballot.voted", b.token), eventsOf("ballot.result", b.token), decimalsOf(b.token)]);
  if (!ctx.isCurrent()) return;
  clear(view);
  const votes = voted.filter((e) => e.data.id === id);
  const result = results.filter((e) => e.data.id === id).pop();
  const tallies = (b.tallies || []).map(big);
  const total = tallies.reduce((a, x) => a + x, 0n);
  // The recount of docs/CORPORATE_ACTIONS.md: the last vote of each identity, weights added up.
  const last = new Map();
  for (const e of votes) last.set(e.data.identity, e.data);
  const recount = b.options.map(() => 0n);
  for (const v of last.values()) recount[v.option] += big(v.weight);
  const matches = recount.every((x, i) => x === tallies[i]);
  put(view,
    h("h1", {}, `Ballot ${id}`),
    facts([
      ["Question", b.question], ["Token", h("a", { href: link.token(b.token) }, b.token)],
      ["Record height", h("a", { href: link.capTable(b.token, { height: b.record_height }) }, String(b.record_height))],
      ["Votes accepted in blocks", `${b.opens_at_height} to ${b.closes_at_height - 1}`],
      ["Voters (identities)", String(b.voters)], ["Tallied", yesNo(b.tallied)],
      ["Result", result ? (result.data.winner === null || result.data.winner === undefined ? "no winner (tie or no votes)" : `winner: ${b.options[result.data.winner]}`) : "not yet published"],
    ]),
    table("Tallies: each identity's vote weighs its balance at the record height", [
      { label: "Option" }, { label: "Weight", numeric: true }, { label: "Share of votes", numeric: true },
    ], b.options.map((option, i) => [option, units(tallies[i], dec), percent(tallies[i], total, 2)])),
    notice(matches ? "ok" : "error", matches
      ? `Recount from the ${votes.length} ballot.voted events (the last vote of each identity) matches the tallies.`
      : `Recount from the ballot.voted events does not match the tallies: ${plain(recount.map(String))}.`),
    h("section", { "aria-labelledby": "votes-h" }, h("h2", { id: "votes-h" }, "Votes"),
      table("Every vote, in order (a later vote of an identity replaces its earlier one)", EVENT_COLUMNS, votes.map(eventCells))),
  );
}
