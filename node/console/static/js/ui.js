// DOM building and formatting. Text from the ledger (names, ids, questions, URIs) is only ever
// inserted as text nodes or attribute values, never parsed as HTML.

/** h("a", {href: "#/x", class: "y"}, "text", child, [more]) -> an element. */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

/** parent.append(...children), but null, undefined and false add nothing (DOM's append would
 * write "null"), and arrays are flattened. */
export function put(parent, ...children) {
  append(parent, children);
  return parent;
}

export function clear(element) {
  while (element.firstChild) element.removeChild(element.firstChild);
}

// --- amounts --------------------------------------------------------------------------------------

/** Any amount the node sends (number, decimal string or BigInt) as a BigInt. */
export function big(value) {
  if (value === null || value === undefined || value === "") return 0n;
  return BigInt(String(value));
}

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Base units as a decimal number of token units: 123456, 2 -> "1,234.56". */
export function units(value, decimals = 0) {
  const amount = big(value);
  const negative = amount < 0n;
  const digits = (negative ? -amount : amount).toString();
  const d = Number(decimals) || 0;
  let whole = digits;
  let fraction = "";
  if (d > 0) {
    const padded = digits.padStart(d + 1, "0");
    whole = padded.slice(0, padded.length - d);
    fraction = padded.slice(padded.length - d).replace(/0+$/, "");
  }
  return `${negative ? "-" : ""}${groupThousands(whole)}${fraction ? `.${fraction}` : ""}`;
}

/** "12.5" in token units -> base units (BigInt); throws Error with a readable message. */
export function parseUnits(text, decimals = 0) {
  const value = String(text).trim().replace(/[,_\s]/g, "");
  const match = /^(\d+)(?:\.(\d*))?$/.exec(value);
  if (!match) throw new Error(`"${text}" is not a positive decimal number`);
  const fraction = match[2] || "";
  if (fraction.length > decimals) {
    throw new Error(`"${text}" has ${fraction.length} decimal places; this token has ${decimals}`);
  }
  return BigInt(match[1] + fraction.padEnd(decimals, "0"));
}

/** part / total as a percentage with `places` decimals, exact (BigInt), rounded half up. */
export function percent(part, total, places = 4) {
  const p = big(part);
  const t = big(total);
  if (t === 0n) return "—";
  const scale = 10n ** BigInt(places);
  const scaled = (p * 100n * scale * 2n + t) / (2n * t);
  const whole = scaled / scale;
  const fraction = (scaled % scale).toString().padStart(places, "0");
  return places > 0 ? `${whole}.${fraction} %` : `${whole} %`;
}

// --- other values ---------------------------------------------------------------------------------

export function shortHex(hex, head = 8, tail = 6) {
  const text = String(hex || "");
  return text.length > head + tail + 1 ? `${text.slice(0, head)}…${text.slice(-tail)}` : text;
}

/** A hex value shown short, with the whole of it in a tooltip and for copying. */
export function hexCode(hex, link) {
  const code = h("code", { title: hex, class: "hex" }, shortHex(hex));
  return link ? h("a", { href: link }, code) : code;
}

export function utc(ms) {
  if (ms === null || ms === undefined) return "—";
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return String(ms);
  return `${date.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "")} UTC`;
}

export function utcSeconds(seconds) {
  return seconds === null || seconds === undefined ? "—" : utc(Number(seconds) * 1000);
}

export function yesNo(value) {
  return value ? "yes" : "no";
}

/** A plain rendering of a JSON value (body of a transaction, data of an event) as text. */
export function plain(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "bigint") return value.toString();
  const scalar = (v) => v === null || ["string", "number", "boolean", "bigint"].includes(typeof v);
  if (Array.isArray(value) && value.every(scalar)) return value.length ? value.map((v) => plain(v)).join(", ") : "(none)";
  if (typeof value === "object" && !Array.isArray(value) && Object.values(value).every(scalar)) {
    return Object.entries(value).map(([k, v]) => `${k}: ${plain(v)}`).join(", ");
  }
  if (typeof value === "object") {
    return JSON.stringify(value, (k, v) => (typeof v === "bigint" ? v.toString() : v), 1)
      .replace(/\n\s*/g, " ");
  }
  return String(value);
}

/** A definition list from [label, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

/** A table: columns [{label, numeric}], rows of cells (each a value or [value, attrs]). */
export function table(caption, columns, rows, rowAttrs) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.label)))),
      h("tbody", {}, rows.length === 0
        ? h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "Nothing to show."))
        : rows.map((row, i) => h("tr", rowAttrs ? rowAttrs(i) : {},
          row.map((cell, j) => h("td", { class: columns[j].numeric ? "num" : null }, cell)))))));
}

/** A message in the page, announced to screen readers. `kind`: "error" (something went wrong),
 * "refused" (the ledger's answer is a refusal), "info" or "ok". */
export function notice(kind, ...content) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...content);
}

export function errorText(error) {
  if (error && typeof error.describe === "function") return error.describe();
  return error && error.message ? error.message : String(error);
}

// --- CSV ------------------------------------------------------------------------------------------

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  // A cell starting with = + - @ could run as a formula in a spreadsheet: quote it with a '.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csv(rows) {
  return `${rows.map((row) => row.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

export function download(filename, text, type = "text/csv;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, class: "visually-hidden" }, filename);
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// --- hash routes ----------------------------------------------------------------------------------

/** "#/captable/ACME" + {height: 5} -> "#/captable/ACME?height=5" (empty values left out). */
export function route(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

export function enc(segment) {
  return encodeURIComponent(segment);
}

/** A <label> with its input: field("Height", h("input", {...})) ties them by id. */
let fieldCounter = 0;
export function field(label, control, hint) {
  fieldCounter += 1;
  const id = control.id || `field-${fieldCounter}`;
  control.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}

// --- reason codes (ERC-1066 / ERC-1400 status bytes, ledger/reasons.py) ----------------------------

export const REASON_CODES = {
  "0x50": "failure (unknown object, or an operation not allowed in the current state)",
  "0x51": "success",
  "0x52": "insufficient balance (the free balance, balance minus frozen, is too small)",
  "0x54": "transfers halted (the token is paused)",
  "0x55": "funds locked (holding period, volume limit, or not yet expired)",
  "0x56": "invalid sender (the sender's identity, claims or wallet do not qualify)",
  "0x57": "invalid receiver (the receiver's identity, claims, country or limits do not qualify)",
  "0x58": "invalid operator (the signer is not allowed to do this)",
};

export function codeMeaning(code) {
  return REASON_CODES[String(code).toLowerCase()] || "unknown code";
}
