// The console's shell: hash routes (every page has a stable URL), the chain status line, and
// errors shown in the page. Pages live in ./pages/; each renders into <main> from the JSON-RPC.

import * as rpc from "./rpc.js";
import { clear, errorText, h, notice, put } from "./ui.js";
import { aboutPage, tokenPage, tokensPage } from "./pages/tokens.js";
import { capTablePage, capTablePicker } from "./pages/captable.js";
import { identityPage } from "./pages/identity.js";
import { feedPage } from "./pages/feed.js";
import { blockPage, blocksPage, txPage } from "./pages/blocks.js";
import { actionsPage, ballotPage, distributionPage } from "./pages/actions.js";
import { dryRunPage } from "./pages/dryrun.js";

const ROUTES = [
  [/^\/?$/, "tokens", tokensPage],
  [/^\/tokens$/, "tokens", tokensPage],
  [/^\/token\/([^/]+)$/, "tokens", tokenPage],
  [/^\/captable$/, "captable", capTablePicker],
  [/^\/captable\/([^/]+)$/, "captable", capTablePage],
  [/^\/identity$/, "identity", identityPage],
  [/^\/identity\/([^/]+)$/, "identity", identityPage],
  [/^\/feed$/, "feed", feedPage],
  [/^\/blocks$/, "blocks", blocksPage],
  [/^\/block\/(\d+)$/, "blocks", blockPage],
  [/^\/tx\/([0-9a-f]{64})$/, "blocks", txPage],
  [/^\/actions$/, "actions", actionsPage],
  [/^\/actions\/([^/]+)$/, "actions", actionsPage],
  [/^\/distribution\/([^/]+)$/, "actions", distributionPage],
  [/^\/ballot\/([^/]+)$/, "actions", ballotPage],
  [/^\/dryrun$/, "dryrun", dryRunPage],
  [/^\/about$/, null, aboutPage],
];

const main = document.getElementById("main");
const globalError = document.getElementById("global-error");
let generation = 0;
let leaving = [];

function parseHash() {
  const hash = window.location.hash || "#/";
  const text = hash.slice(1);
  const [path, search] = text.split("?", 2);
  const query = Object.fromEntries(new URLSearchParams(search || ""));
  return { path: path || "/", query };
}

function setNav(section) {
  for (const a of document.querySelectorAll("nav.menu a")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

export function showGlobalError(error) {
  globalError.hidden = false;
  clear(globalError);
  put(globalError, h("strong", {}, "Error: "), errorText(error), " ",
    h("button", { type: "button", class: "link", onclick: () => { globalError.hidden = true; } }, "Dismiss"));
}

async function render() {
  const { path, query } = parseHash();
  if (!window.location.hash.startsWith("#/") && window.location.hash !== "") return; // an in-page anchor
  generation += 1;
  const mine = generation;
  document.body.dataset.page = "loading"; // "ready" or "failed" once the page has rendered
  for (const fn of leaving) {
    try { fn(); } catch { /* leaving a page never fails the next */ }
  }
  leaving = [];
  globalError.hidden = true;
  let page = null;
  let params = [];
  let section = null;
  for (const [pattern, nav, fn] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      page = fn;
      section = nav;
      params = match.slice(1).map((p) => decodeURIComponent(p));
      break;
    }
  }
  setNav(section);
  clear(main);
  const view = h("div", { class: "page" });
  main.appendChild(view);
  if (page === null) {
    document.title = "Not found — secledger console";
    put(view, h("h1", { tabindex: "-1" }, "No such page"),
      notice("error", `There is no console page at "${path}". Use the menu above.`));
    focusHeading(view);
    document.body.dataset.page = "failed";
    return;
  }
  const ctx = {
    view, params, query,
    isCurrent: () => mine === generation,
    onLeave: (fn) => leaving.push(fn),
    title: (text) => { document.title = `${text} — secledger console`; },
    go: (hash) => { window.location.hash = hash; },
  };
  const loading = notice("info", "Loading…");
  view.appendChild(loading);
  let outcome = "ready";
  try {
    await page(ctx);
  } catch (error) {
    if (!ctx.isCurrent()) return;
    outcome = "failed";
    loading.remove();
    if (!view.querySelector("h1")) view.prepend(h("h1", { tabindex: "-1" }, "Could not load this page"));
    view.appendChild(notice("error", errorText(error)));
  }
  if (!ctx.isCurrent()) return;
  loading.remove();
  focusHeading(view);
  document.body.dataset.page = outcome;
}

function focusHeading(view) {
  const heading = view.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

async function refreshStatus() {
  const line = document.getElementById("chain-status");
  try {
    const status = await rpc.call("chain_status");
    line.textContent = `Chain ${status.chain_id} · height ${status.height} · node ${status.moniker || "?"} (${status.mode || "?"})${status.syncing ? " · syncing" : ""}${status.halted ? " · HALTED" : ""}`;
    line.classList.toggle("bad", Boolean(status.halted));
  } catch (error) {
    line.textContent = `The node does not answer: ${errorText(error)}`;
    line.classList.add("bad");
  }
}

window.addEventListener("unhandledrejection", (event) => showGlobalError(event.reason));
window.addEventListener("hashchange", render);
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

refreshStatus();
setInterval(refreshStatus, 5000);
render();
