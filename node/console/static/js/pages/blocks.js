// Blocks and transactions, decoded: kind, signer, nonce, body, receipt with its reason code, and
// the commit certificate's signers. block_get gives decoded transactions on nodes that have that;
// on older nodes the raw transactions are decoded here and their receipts read with tx_get.

import * as rpc from "../rpc.js";
import { decodeTx } from "../codec.js";
import { clear, codeMeaning, facts, h, hexCode, notice, plain, put, route, table, utc } from "../ui.js";
import { EVENT_COLUMNS, eventCells, link } from "../shared.js";

const PER_PAGE = 20;

export async function blocksPage(ctx) {
  const { view, query } = ctx;
  ctx.title("Blocks");
  const status = await rpc.call("chain_status");
  const tip = status.height;
  const top = query.before && /^\d+$/.test(query.before) ? Math.min(Number(query.before) - 1, tip) : tip;
  const heights = [];
  for (let height = top; height >= 1 && heights.length < PER_PAGE; height -= 1) heights.push(height);
  const blocks = await rpc.batch(heights.map((height) => ["block_get", { height }]), 20);
  if (!ctx.isCurrent()) return;
  clear(view);
  const rows = blocks.map((answer, i) => {
    if (answer.error) return [String(heights[i]), "—", "—", "—", answer.error.message];
    const b = answer.result;
    return [h("a", { href: link.block(b.height) }, String(b.height)), utc(b.time_ms), String(b.txs.length),
      String(b.certificate.precommits.length), hexCode(b.hash)];
  });
  put(view,
    h("h1", {}, "Blocks"),
    h("p", { class: "lead" }, `The latest blocks of chain ${status.chain_id} (tip ${tip}), newest first. Open one for its transactions, receipts and commit certificate.`),
    jumpForm(ctx, tip),
    table("Blocks", [{ label: "Height", numeric: true }, { label: "Time" }, { label: "Transactions", numeric: true },
      { label: "Signatures", numeric: true }, { label: "Block hash" }], rows),
    h("nav", { class: "pager", "aria-label": "Block pages" },
      top < tip ? h("a", { href: "#/blocks" }, "Latest") : null,
      top - PER_PAGE >= 1 ? h("a", { href: route("/blocks", { before: top - PER_PAGE + 1 }) }, "Older blocks") : null),
  );
}

function jumpForm(ctx, tip) {
  const input = h("input", { type: "text", name: "find", id: "block-find", autocomplete: "off", spellcheck: "false" });
  const form = h("form", { class: "controls", role: "search", "aria-label": "Find a block or transaction" },
    h("div", { class: "field" }, h("label", { for: "block-find" }, "Block height or transaction hash"), input,
      h("p", { class: "hint" }, `1 to ${tip}, or 64 hex digits`)),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Open")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim().toLowerCase();
    if (/^\d+$/.test(text)) ctx.go(link.block(Number(text)));
    else if (/^[0-9a-f]{64}$/.test(text)) ctx.go(link.tx(text));
    else put(form, notice("error", `"${input.value}" is neither a height nor a transaction hash.`));
  });
  return form;
}

/** Decoded transactions of a block: {hash, kind, signer, nonce, body, receipt:{code, reason, status}}. */
async function decodedTxs(block) {
  if (block.txs.every((tx) => tx !== null && typeof tx === "object")) return block.txs;
  const decoded = await Promise.all(block.txs.map((tx) => decodeTx(tx).catch((error) => ({ error: error.message }))));
  const receipts = await rpc.batch(decoded.map((tx) => ["tx_get", { hash: tx.hash || "00".repeat(32) }]), 50);
  return decoded.map((tx, i) => ({ ...tx, receipt: receipts[i].result || null }));
}

function codeText(code) {
  if (code === null || code === undefined) return "—";
  return typeof code === "number" ? `0x${code.toString(16).padStart(2, "0")}` : String(code);
}

function receiptCell(receipt) {
  if (!receipt) return "—";
  const code = codeText(receipt.code);
  const ok = code === "0x51";
  return h("span", { class: ok ? "ok" : "refused", dataset: { code } }, `${code} ${receipt.reason || ""}`.trim(),
    ok ? "" : h("span", { class: "muted" }, ` — ${codeMeaning(code)}`));
}

export async function blockPage(ctx) {
  const { view } = ctx;
  const height = Number(ctx.params[0]);
  ctx.title(`Block ${height}`);
  const block = await rpc.call("block_get", { height });
  const [txs, validators] = await Promise.all([
    decodedTxs(block),
    rpc.call("validators_list", { height }).catch(() => []),
  ]);
  if (!ctx.isCurrent()) return;
  clear(view);
  const byKey = new Map(validators.map((v) => [v.validator_key, v]));
  const signed = new Set(block.certificate.precommits.map((p) => p.validator));
  const totalPower = validators.reduce((sum, v) => sum + BigInt(String(v.power)), 0n);
  const signedPower = validators.filter((v) => signed.has(v.validator_key)).reduce((sum, v) => sum + BigInt(String(v.power)), 0n);
  put(view,
    h("h1", {}, `Block ${height}`),
    h("nav", { class: "pager", "aria-label": "Neighbouring blocks" },
      height > 1 ? h("a", { href: link.block(height - 1) }, `Block ${height - 1}`) : null,
      h("a", { href: link.block(height + 1) }, `Block ${height + 1}`),
      h("a", { href: "#/blocks" }, "Latest blocks")),
    facts([
      ["Time", utc(block.time_ms)], ["Chain", block.chain_id], ["Block hash", h("code", { class: "hex full" }, block.hash)],
      ["Previous block", h("code", { class: "hex full" }, block.previous_block_hash)],
      ["State root before it", h("code", { class: "hex full" }, block.previous_state_root)],
      ["State root after it", h("code", { class: "hex full" }, block.state_root || "—")],
      ["Proposer", proposerCell(block.proposer, byKey)],
      ["Transactions", String(block.txs.length)],
    ]),
    h("section", { "aria-labelledby": "txs-h" }, h("h2", { id: "txs-h" }, "Transactions"),
      table(`Transactions of block ${height}, in order`, [
        { label: "#", numeric: true }, { label: "Hash" }, { label: "Kind" }, { label: "Signer" }, { label: "Nonce", numeric: true },
        { label: "Body" }, { label: "Receipt (reason code)" },
      ], txs.map((tx, i) => tx.error ? [String(i), "—", "undecodable", "—", "—", tx.error, "—"] : [
        String(i), hexCode(tx.hash, link.tx(tx.hash)), tx.kind, hexCode(tx.signer, link.wallet(tx.signer)), String(tx.nonce),
        h("code", { class: "body" }, plain(tx.body)), receiptCell(tx.receipt),
      ]), (i) => ({ class: "tx", dataset: { hash: txs[i].hash || "" } }))),
    h("section", { "aria-labelledby": "cert-h" }, h("h2", { id: "cert-h" }, "Commit certificate"),
      h("p", {}, `Round ${block.certificate.round}. ${signed.size} precommit signatures`,
        totalPower ? `, ${signedPower} of ${totalPower} voting power (more than two thirds is needed).` : "."),
      table("Validators that signed this block's commit", [
        { label: "Validator" }, { label: "Key" }, { label: "Power", numeric: true }, { label: "Signed" },
      ], [...validators.map((v) => [v.name || "—", hexCode(v.validator_key), String(v.power), signed.has(v.validator_key) ? "yes" : "no"]),
        ...[...signed].filter((k) => !byKey.has(k)).map((k) => ["(not in the set read)", hexCode(k), "—", "yes"])])),
  );
}

function proposerCell(key, byKey) {
  const v = byKey.get(key);
  return h("span", {}, v && v.name ? `${v.name} ` : "", hexCode(key));
}

export async function txPage(ctx) {
  const { view } = ctx;
  const hash = ctx.params[0];
  ctx.title(`Transaction ${hash.slice(0, 12)}…`);
  const tx = await rpc.call("tx_get", { hash });
  if (!ctx.isCurrent()) return;
  if (tx.status === "pending") {
    clear(view);
    put(view, h("h1", {}, "Transaction"), notice("info", `Transaction ${hash} is in this node's mempool, not yet in a block.`));
    return;
  }
  const block = await rpc.call("block_get", { height: tx.height });
  const entry = block.txs[tx.index];
  let decoded = null;
  try {
    decoded = entry !== null && typeof entry === "object" ? entry : await decodeTx(entry);
  } catch (error) {
    decoded = { error: error.message };
  }
  if (!ctx.isCurrent()) return;
  clear(view);
  const code = codeText(tx.code);
  const ok = code === "0x51";
  put(view,
    h("h1", {}, `Transaction ${hash.slice(0, 16)}…`),
    ok ? notice("ok", h("span", { dataset: { code } }, `Executed: ${code} success.`))
      : notice("refused", h("span", { dataset: { code } }, `Refused: ${code} ${tx.reason}. `), `Code ${code} means ${codeMeaning(code)}. `,
        "The transaction is recorded and consumed its nonce; nothing else changed."),
    facts([
      ["Hash", h("code", { class: "hex full" }, hash)],
      ["Block", h("span", {}, h("a", { href: link.block(tx.height) }, `${tx.height}`), ` (position ${tx.index}, ${utc(block.time_ms)})`)],
      ["Kind", tx.kind], ["Signer", hexCode(tx.signer, link.wallet(tx.signer))], ["Nonce", String(tx.nonce)],
      ["Status", tx.status], ["Reason code", `${code} ${tx.reason}`],
      ["Body", decoded && !decoded.error ? h("pre", { class: "body" }, JSON.stringify(decoded.body, (k, v) => (typeof v === "bigint" ? v.toString() : v), 2)) : `not decodable: ${decoded && decoded.error}`],
    ]),
    h("section", { "aria-labelledby": "events-h" }, h("h2", { id: "events-h" }, "Events"),
      table("Events this transaction emitted", EVENT_COLUMNS, (tx.events || []).map((e) => eventCells(e)))),
  );
}
