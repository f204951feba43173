// Compliance dry run: "could A send N of T to B now?", answered by compliance_check with the very
// reason code a transfer would get if it were executed now.

import * as rpc from "../rpc.js";
import { clear, codeMeaning, errorText, facts, field, h, notice, parseUnits, put, route, units } from "../ui.js";
import { allTokens, decimalsOf, tokenSelect } from "../shared.js";

const HEX64 = /^[0-9a-f]{64}$/;

/** A wallet address, or an identity id resolved to its first wallet. */
async function walletOf(text, role) {
  const value = text.trim();
  if (HEX64.test(value.toLowerCase())) return { address: value.toLowerCase(), note: null };
  let identity;
  try {
    identity = await rpc.call("identity_get", { identity: value });
  } catch (error) {
    throw new Error(`${role} "${value}" is neither a wallet address (64 hex digits) nor a known identity: ${errorText(error)}`);
  }
  if (!identity.wallets.length) throw new Error(`${role} identity "${value}" has no wallet`);
  const address = identity.wallets[0];
  const note = identity.wallets.length > 1
    ? `${role} ${value} has ${identity.wallets.length} wallets; checked with its first, ${address}. Give a wallet address to check another.`
    : `${role} ${value}: wallet ${address}.`;
  return { address, note };
}

export async function dryRunPage(ctx) {
  const { view, query } = ctx;
  ctx.title("Compliance dry run");
  const tokens = await allTokens();
  if (!ctx.isCurrent()) return;
  clear(view);
  const tokenInput = tokenSelect(tokens, query.token || (tokens[0] && tokens[0].symbol), null);
  tokenInput.required = true;
  const from = h("input", { type: "text", name: "from", value: query.from || "", required: true, autocomplete: "off", spellcheck: "false" });
  const to = h("input", { type: "text", name: "to", value: query.to || "", required: true, autocomplete: "off", spellcheck: "false" });
  const amount = h("input", { type: "text", name: "amount", value: query.amount || "", required: true, inputmode: "decimal", autocomplete: "off" });
  const form = h("form", { class: "controls stacked", id: "dryrun-form", "aria-label": "Compliance dry run" },
    field("Token (T)", tokenInput),
    field("Sender (A)", from, "a wallet address, or an identity id (its first wallet)"),
    field("Receiver (B)", to, "a wallet address, or an identity id (its first wallet)"),
    field("Amount (N), in token units", amount, "decimals as the token has them, e.g. 12.5"),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Check")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.go(route("/dryrun", { token: tokenInput.value, from: from.value.trim(), to: to.value.trim(), amount: amount.value.trim() }));
  });
  const answer = h("div", { id: "dryrun-answer", "aria-live": "polite" });
  put(view,
    h("h1", {}, "Compliance dry run"),
    h("p", { class: "lead" }, "Could A send N of T to B now? The node runs every rule of the token against the current state, ",
      "exactly as it would execute the transfer, and answers with the reason code. Nothing is signed or sent."),
    tokens.length ? form : notice("info", "No token has been created on this chain yet."),
    answer,
  );
  if (!(query.token && query.from && query.to && query.amount)) return;
  try {
    const decimals = await decimalsOf(query.token);
    const base = parseUnits(query.amount, decimals);
    if (base <= 0n) throw new Error("The amount must be more than zero.");
    const [sender, receiver] = await Promise.all([walletOf(query.from, "Sender"), walletOf(query.to, "Receiver")]);
    const result = await rpc.call("compliance_check", {
      token: query.token, sender: sender.address, receiver: receiver.address,
      amount: await rpc.amountParam("compliance_check", "amount", base),
    });
    if (!ctx.isCurrent()) return;
    const code = String(result.code);
    put(answer,
      notice(result.ok ? "ok" : "refused",
        h("strong", { class: "verdict", dataset: { code, ok: String(Boolean(result.ok)) } },
          result.ok ? `Allowed: ${code} ${result.reason}` : `Refused: ${code} ${result.reason}`),
        h("span", {}, ` — code ${code} means ${codeMeaning(code)}.`)),
      facts([
        ["Token", query.token], ["Amount", `${units(base, decimals)} (${base} base units)`],
        ["Sender wallet", h("code", { class: "hex full" }, sender.address)],
        ["Receiver wallet", h("code", { class: "hex full" }, receiver.address)],
      ]),
      ...[sender.note, receiver.note].filter(Boolean).map((n) => h("p", { class: "muted" }, n)),
    );
  } catch (error) {
    if (!ctx.isCurrent()) return;
    put(answer, notice("error", errorText(error)));
  }
}
