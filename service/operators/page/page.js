// Review Recent Orders: a thin client of the operator API (same origin, bearer token kept in this tab).
"use strict";

const state = { token: sessionStorage.getItem("outbound-token") || "", scope: "", page: 1, current: null, polling: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function badge(word) {
  const w = word || "none";
  return el("span", { class: "badge s-" + w.replace(/ /g, "-") }, w);
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "size not reported";
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
  return (bytes / 1024 / 1024).toFixed(1) + " MiB";
}

function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = "message" + (kind === "info" ? " info" : "");
  box.hidden = !text;
}

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options) {
  const opts = options || {};
  const headers = { Authorization: "Bearer " + state.token };
  if (opts.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method: opts.method || "GET", headers, body: opts.body ? JSON.stringify(opts.body) : undefined });
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = { error: "the service answered " + response.status + " without JSON" };
  }
  if (!response.ok) {
    if (response.status === 401 && !opts.signingIn) signOut("Your token is no longer accepted: sign in again.");
    throw new ApiError(response.status, (body && body.error) || "HTTP " + response.status, body);
  }
  return { status: response.status, body };
}

// ------------------------------------------------------------------ sign in

async function signIn(token) {
  state.token = token.trim();
  try {
    const { body } = await api("/v1/whoami", { signingIn: true });
    sessionStorage.setItem("outbound-token", state.token);
    $("who").textContent =
      "Signed in: " + body.scope + " token" + (body.scope === "read" ? " (look-ups only)" : "") +
      (body.tenant ? " for tenant " + body.tenant : "");
    $("who").hidden = false;
    // A tenant token sees one tenant: the field shows it and cannot be changed.
    $("tenant").value = body.tenant || "";
    $("tenant").readOnly = Boolean(body.tenant);
    $("sign-out").hidden = false;
    $("sign-in").hidden = true;
    $("main").hidden = false;
    state.scope = body.scope;
    $("trigger").hidden = body.scope !== "operate";
    say("");
    (body.tenant ? $("search-value") : $("tenant")).focus();
  } catch (e) {
    state.token = "";
    sessionStorage.removeItem("outbound-token");
    say(e.status === 401 ? "Sign-in failed: the token was not accepted (" + e.message + ")." : "Sign-in failed: " + e.message);
    $("token").focus();
  }
}

function signOut(text) {
  state.token = "";
  state.scope = "";
  sessionStorage.removeItem("outbound-token");
  $("tenant").readOnly = false;
  $("tenant").value = "";
  $("main").hidden = true;
  $("sign-in").hidden = false;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  say(text || "");
}

// ------------------------------------------------------------------ lists

function tenant() {
  const t = $("tenant").value.trim();
  if (!t) {
    say("Enter a tenant first.");
    $("tenant").focus();
  }
  return t;
}

function integrationBadges(items) {
  return el("span", { class: "row" }, items.map((i) => el("span", {}, i.integrationId + " ", badge(i.state))));
}

function listTable(items) {
  if (!items.length) return el("p", {}, "Nothing to show.");
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ["Order number", "Order / recipe ID", "Placed", "Status", "Integrations"].map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      items.map((item) => {
        const id = item.orderId || item.recipeId;
        const open = el(
          "button",
          { type: "button", class: "link", onclick: () => (item.orderId ? openOrder(item.orderId) : openRecipe(item.recipeId)) },
          item.orderNumber || id,
        );
        return el("tr", {}, el("td", {}, open), el("td", {}, el("code", {}, id)), el("td", {}, when(item.placedAt)), el("td", {}, badge(item.summary), item.late ? [" ", badge("late")] : ""), el("td", {}, integrationBadges(item.integrations)));
      }),
    ),
  );
}

async function showRecent() {
  const t = tenant();
  if (!t) return;
  try {
    const q = new URLSearchParams({ page: state.page, pageSize: 25, failed: $("failed-only").checked });
    const { body } = await api("/v1/tenants/" + encodeURIComponent(t) + "/orders?" + q);
    $("recent").replaceChildren(el("p", {}, body.total + " recent order(s) for " + t), listTable(body.items));
    const pages = Math.max(1, Math.ceil(body.total / body.pageSize));
    $("pager").hidden = pages < 2;
    $("page-label").textContent = "Page " + body.page + " of " + pages;
    $("prev").disabled = body.page <= 1;
    $("next").disabled = body.page >= pages;
  } catch (e) {
    say("Could not list recent orders: " + e.message);
  }
}

async function showFailures() {
  const t = tenant();
  if (!t) return;
  try {
    const { body } = await api("/v1/tenants/" + encodeURIComponent(t) + "/failures?days=" + $("days").value);
    $("failures").replaceChildren(listTable(body.items));
  } catch (e) {
    say("Could not list failures: " + e.message);
  }
}

// ------------------------------------------------------------------ one order

async function openOrder(orderId) {
  return openPath("/v1/orders/" + encodeURIComponent(orderId));
}

async function openRecipe(recipeId) {
  return openPath("/v1/recipes/" + encodeURIComponent(recipeId));
}

async function openPath(path) {
  try {
    const { body } = await api(path);
    say("");
    state.current = body;
    state.currentPath = path;
    renderDetail(body);
    await fillIntegrations(body);
    $("check-result").replaceChildren();
    $("detail").hidden = false;
    $("detail").focus();
  } catch (e) {
    say(e.status === 404 ? "Not found: " + e.message : "Could not open it: " + e.message);
  }
}

async function refreshDetail() {
  if (!state.currentPath) return;
  const { body } = await api(state.currentPath);
  state.current = body;
  renderDetail(body);
}

// Each (order event, integration) whose files were not there within the integration's deliverWithinMinutes.
function lateBlock(marks) {
  if (!marks.length) return [];
  return [
    el("h3", {}, "Late"),
    el(
      "ul",
      { class: "late" },
      marks.map((m) =>
        el(
          "li",
          {},
          m.integrationId + ": " + m.eventType + " due " + when(m.dueAt) + " (within " + m.withinMinutes + " min) · ",
          m.deliveries.map((d) => [el("code", {}, d.recipeId), " ", badge(d.state), d.lastError ? [" ", el("span", { class: "error-text" }, d.lastError)] : "", " "]),
        ),
      ),
    ),
  ];
}

function renderDetail(view) {
  // Reconciliation checks an order's deliveries, with an operate token.
  $("check").hidden = state.scope !== "operate" || view.kind !== "order";
  if (view.kind === "order") {
    $("detail-title").textContent = "Order " + view.orderNumber;
    $("detail-summary").replaceChildren(
      "Order ID ", el("code", {}, view.orderId), " · tenant ", view.tenant, " · last event ", view.lastEventType,
      view.cancelledAt ? " · cancelled " + when(view.cancelledAt) : "", " · ", badge(view.summary),
      ...((view.late || []).length ? [" ", badge("late")] : []),
    );
    $("detail-lines").replaceChildren(
      ...lateBlock(view.late || []),
      el("h3", {}, "Lines"),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Item", "Recipe", "Quantity", "SKU", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, view.lines.map((l) => el("tr", {}, el("td", {}, l.itemId), el("td", {}, el("code", {}, l.recipeId)), el("td", { class: "num" }, l.itemQuantity), el("td", {}, l.sku || ""), el("td", {}, l.state ? badge(l.state) : "")))),
      ),
    );
  } else {
    $("detail-title").textContent = "Recipe " + view.recipeId;
    $("detail-summary").replaceChildren("Tenant ", view.tenant || "?", " · raw feed ", badge(view.summary));
    const orders = view.orders || [];
    $("detail-lines").replaceChildren(
      el("h3", {}, "Orders with this recipe"),
      orders.length
        ? el("ul", {}, orders.map((o) => el("li", {}, el("button", { type: "button", class: "link", onclick: () => openOrder(o.orderId) }, "Order " + o.orderNumber))))
        : el("p", {}, "No order has it yet."),
    );
  }
  const blocks = view.integrations.map((integration) =>
    el(
      "div",
      { class: "integration" },
      el("h4", {}, integration.integrationId + " (" + integration.integrationType + ") ", badge(integration.state)),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Recipe", "Event", "State", "Attempts", "Files"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, integration.deliveries.map(deliveryRow)),
      ),
    ),
  );
  $("detail-integrations").replaceChildren(el("h3", {}, "Deliveries"), ...(blocks.length ? blocks : [el("p", {}, "No delivery yet.")]));
}

// A file of a delivery: its size and, once delivered, its SHA-256 (the start shown, all of it on
// hover), as the destination should hold it.
function fileLine(f) {
  const sized = f.bytes !== null && f.bytes !== undefined ? " — " + size(f.bytes) : "";
  const hash = f.sha256 ? el("code", { class: "sha256", title: "SHA-256 " + f.sha256 }, " sha256 " + f.sha256.slice(0, 12) + "…") : "";
  return el("li", {}, f.name, sized, hash);
}

function deliveryRow(d) {
  const attempts = el(
    "ol",
    { class: "attempts" },
    d.attempts.map((a) =>
      el("li", {}, a.outcome + " at " + when(a.finishedAt) + (a.bytes ? " — " + size(a.bytes) : ""), a.error ? el("div", { class: "error-text" }, a.error) : null),
    ),
  );
  const files = d.files.length
    ? el(
        "details",
        {},
        el("summary", {}, d.files.length + " file(s)"),
        el("ul", { class: "files" }, d.files.map(fileLine)),
      )
    : "";
  return el(
    "tr",
    {},
    el("td", {}, el("code", {}, d.recipeId)),
    el("td", {}, d.eventType + (d.manual ? " (manual)" : "")),
    el("td", {}, badge(d.state)),
    el("td", {}, d.attempts.length ? attempts : "none yet"),
    el("td", {}, files),
  );
}

async function fillIntegrations(view) {
  const select = $("trigger-integration");
  const ids = new Set(view.integrations.map((i) => i.integrationId));
  try {
    const { body } = await api("/v1/integrations?tenant=" + encodeURIComponent(view.tenant || ""));
    body.integrations.forEach((i) => ids.add(i.id));
  } catch (e) {
    // The deliveries' integrations are enough to choose from.
  }
  select.replaceChildren(el("option", { value: "" }, "All matching integrations"), ...[...ids].sort().map((id) => el("option", { value: id }, id)));
  $("trigger-result").replaceChildren();
}

// ------------------------------------------------------------------ triggers

function triggerBody(dryRun) {
  const view = state.current;
  const body = { tenant: view.tenant, mode: $("trigger-mode").value, dryRun, requestedBy: "review page" };
  if (view.kind === "order") body.orderId = view.orderId;
  else body.recipeId = view.recipeId;
  if ($("trigger-integration").value) body.integrationId = $("trigger-integration").value;
  return body;
}

function planTable(deliveries, withState) {
  if (!deliveries.length) return el("p", {}, "Nothing would be sent.");
  const head = ["Recipe", "Integration", "Type"].concat(withState ? ["State"] : ["Files"]);
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      deliveries.map((d) =>
        el("tr", {}, el("td", {}, el("code", {}, d.recipeId)), el("td", {}, d.integrationId), el("td", {}, d.integrationType), withState ? el("td", {}, badge(d.state)) : el("td", {}, d.files.length + " file(s)")),
      ),
    ),
  );
}

async function preview() {
  try {
    const { body } = await api("/v1/triggers", { method: "POST", body: triggerBody(true) });
    $("trigger-result").replaceChildren(el("p", {}, "Preview (" + body.mode + "): " + body.deliveries.length + " delivery(ies) would be sent. Nothing has been sent."), planTable(body.deliveries, false));
  } catch (e) {
    say("Preview failed: " + e.message);
  }
}

const FINAL = new Set(["delivered", "failed", "superseded", "skipped"]);

async function runTrigger() {
  $("run-trigger").disabled = true;
  try {
    const { status, body } = await api("/v1/triggers", { method: "POST", body: triggerBody(false) });
    if (status !== 202) {
      $("trigger-result").replaceChildren(el("p", {}, "Not triggered: " + (body.reason || "nothing to send")));
      return;
    }
    $("trigger-result").replaceChildren(el("p", {}, "Trigger " + body.triggerId + " accepted; waiting for its deliveries…"));
    await poll(body.poll, body.triggerId);
  } catch (e) {
    say("Trigger failed: " + e.message);
  } finally {
    $("run-trigger").disabled = false;
  }
}

async function poll(path, triggerId) {
  const deadline = Date.now() + 10 * 60 * 1000;
  while (Date.now() < deadline) {
    const { body } = await api(path);
    if (body.planned) {
      const done = body.deliveries.every((d) => FINAL.has(d.state));
      $("trigger-result").replaceChildren(
        el("p", {}, "Trigger " + triggerId + ": " + (done ? "finished" : "delivering…")),
        planTable(body.deliveries, true),
      );
      if (done) {
        await refreshDetail();
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// ------------------------------------------------------------------ check destination (reconciliation)

// The window read starts an hour before the order's first delivery was made (the service's own clock,
// as the results' times), so every delivery of the order is in it and little else is read.
function checkSince(view) {
  const made = view.integrations
    .flatMap((i) => i.deliveries.map((d) => (d.createdAt ? new Date(d.createdAt).getTime() : NaN)))
    .filter((t) => !isNaN(t));
  return made.length ? new Date(Math.min(...made) - 60 * 60 * 1000).toISOString() : "7d";
}

async function checkDestination() {
  const view = state.current;
  const out = $("check-result");
  $("run-check").disabled = true;
  try {
    let job;
    const body = { tenant: view.tenant, orderId: view.orderId, since: checkSince(view), dryRun: $("check-only").checked };
    try {
      job = (await api("/v1/reconciliations", { method: "POST", body })).body;
      out.replaceChildren(el("p", {}, "Checking the destinations…"));
    } catch (e) {
      // One check per tenant at a time: follow the one running rather than fail.
      if (e.status !== 409 || !e.body || !e.body.poll) throw e;
      job = e.body;
      out.replaceChildren(el("p", {}, "A check of tenant " + view.tenant + " is already running; following it."));
    }
    const ended = await followCheck(job.poll);
    renderCheck(ended);
    if (ended.state === "done" && ended.result.resent) await followResent(ended);
  } catch (e) {
    say("Check destination failed: " + e.message);
  } finally {
    $("run-check").disabled = false;
  }
}

async function followCheck(poll) {
  const deadline = Date.now() + 30 * 60 * 1000;
  while (Date.now() < deadline) {
    const { body } = await api(poll);
    if (body.state !== "running") return body;
    const p = body.progress;
    $("check-result").replaceChildren(
      el("p", {}, "Checking the destinations… " + p.phase + (p.total ? " (" + p.done + " of " + p.total + ")" : "")),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error("the check is still running after 30 minutes; its answer stays at " + poll);
}

const CHECK_WORDS = { ok: "all there", problems: "missing or different", "not checkable": "not checkable", error: "error", "not checked": "not checked" };

function checkOutcome(f, dryRun) {
  if (f.outcome === "problems") return f.resent ? "re-sent" : dryRun ? "missing or different" : "not re-sent";
  return CHECK_WORDS[f.outcome] || f.outcome;
}

function renderCheck(job) {
  const out = $("check-result");
  if (job.state === "failed") {
    out.replaceChildren(el("p", { class: "error-text" }, "The check could not run: " + job.reason));
    return;
  }
  const r = job.result;
  const summary =
    "Checked " + r.deliveries + " delivery(ies), " + r.files + " file(s): missing " + r.missing + ", different " + r.different +
    ", re-sent " + (r.dryRun ? "nothing (check only)" : r.resent) + ", not checkable " + r.notCheckable +
    ", errors " + Object.keys(r.errors).length + ", cleaned " + (r.cleaned.length + (r.cleanedLeftOut || 0)) + ".";
  const rows = r.integrations.map((f) =>
    el(
      "tr",
      {},
      el("td", {}, f.integrationId),
      el("td", {}, f.integrationType),
      ...[f.deliveries, f.files, f.missing, f.different, f.resent].map((n) => el("td", { class: "num" }, n)),
      el("td", {}, badge(checkOutcome(f, r.dryRun)), f.error ? el("div", { class: "error-text" }, f.error) : null),
    ),
  );
  const table = r.integrations.length
    ? el(
        "table",
        { class: "check-figures" },
        el("thead", {}, el("tr", {}, ["Integration", "Type", "Deliveries", "Files checked", "Missing", "Different", "Re-sent", "Result"].map((h, n) => el("th", { scope: "col", class: n >= 2 && n <= 6 ? "num" : "" }, h)))),
        el("tbody", {}, rows),
      )
    : el("p", {}, "No delivered delivery of this order to check.");
  const resentTo = new Set(r.integrations.filter((f) => f.resent).map((f) => f.integrationId));
  const problems = r.problems.map((p) =>
    el(
      "li",
      {},
      badge(p.problem), " ", el("code", {}, p.name), " at " + p.integrationId,
      p.foundBytes !== null ? " (" + size(p.foundBytes) + " there, " + size(p.expectedBytes) + " delivered)" : "",
      resentTo.has(p.integrationId) ? " — re-sent" : r.dryRun ? " — not re-sent (check only)" : "",
    ),
  );
  if (r.problemsLeftOut) problems.push(el("li", {}, "… and " + r.problemsLeftOut + " more"));
  const cleaned = r.cleaned.map((c) => el("li", {}, "cleaned: ", el("code", {}, c.name), " at " + c.integrationId + " (the service's leftover)"));
  out.replaceChildren(
    el("p", {}, "Check " + job.jobId + " finished. " + summary),
    table,
    problems.length ? el("ul", { class: "check-problems" }, problems) : el("p", {}, "Nothing missing or different."),
    cleaned.length ? el("ul", { class: "check-problems" }, cleaned) : "",
  );
}

// The deliveries sent again are new attempts of the order's deliveries: the order is shown again until
// each has one that finished after the check started (for two minutes at most).
async function followResent(job) {
  const resentTo = new Set(job.result.integrations.filter((f) => f.resent).map((f) => f.integrationId));
  const ids = new Set(job.result.problems.filter((p) => resentTo.has(p.integrationId)).map((p) => p.deliveryId));
  const since = new Date(job.startedAt).getTime();
  const deadline = Date.now() + 2 * 60 * 1000;
  while (Date.now() < deadline) {
    await refreshDetail();
    const all = state.current.integrations.flatMap((i) => i.deliveries).filter((d) => ids.has(d.deliveryId));
    const finished = all.every((d) => d.attempts.some((a) => a.finishedAt && new Date(a.finishedAt).getTime() >= since));
    if (finished) return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// ------------------------------------------------------------------ integrations

async function showIntegrations() {
  const t = tenant();
  if (!t) return;
  try {
    const { body } = await api("/v1/integrations?tenant=" + encodeURIComponent(t));
    if (!body.integrations.length) {
      $("integrations").replaceChildren(el("p", {}, "No integration for tenant " + t + "."));
      return;
    }
    const operate = !$("trigger").hidden;
    $("integrations").replaceChildren(
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Integration", "Type", "Events", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, body.integrations.map((i) => integrationRow(i, operate))),
      ),
      el("div", { id: "enable-result", "aria-live": "polite" }),
    );
  } catch (e) {
    say("Could not list the integrations: " + e.message);
  }
}

function integrationRow(i, operate) {
  const off = i.disabled || null;
  const state = i.enabled
    ? badge("enabled")
    : el("span", {}, badge("disabled"), off ? el("span", { class: "error-text" }, " " + (off.by === "service" ? "by the service" : "by an operator") + " at " + when(off.at) + ": " + off.reason) : "");
  const action = !i.enabled && operate ? el("button", { type: "button", onclick: () => enableIntegration(i.id) }, "Enable " + i.id) : "";
  return el("tr", { "data-integration": i.id }, el("td", {}, el("code", {}, i.id)), el("td", {}, i.type), el("td", {}, i.events.join(", ")), el("td", {}, state), el("td", {}, action));
}

async function enableIntegration(id) {
  try {
    const { body } = await api("/v1/integrations/" + encodeURIComponent(id) + "/enable", { method: "POST" });
    await showIntegrations();
    const result = $("enable-result");
    if (!body.redrive) {
      result.replaceChildren(el("p", {}, id + " is enabled."));
      return;
    }
    const { body: count } = await api("/v1/redrives", { method: "POST", body: { ...body.redrive, dryRun: true } });
    result.replaceChildren(
      el("p", {}, id + " is enabled. " + count.matched + " failed delivery(ies) to re-drive, from " + when(body.redrive.since) + " when it began failing."),
      count.matched ? el("button", { type: "button", id: "redrive-kept", onclick: () => redriveKept(body.redrive) }, "Re-drive what failed while it was off") : "",
    );
  } catch (e) {
    say("Could not enable " + id + ": " + e.message);
  }
}

async function redriveKept(filter) {
  $("redrive-kept").disabled = true;
  try {
    const { body } = await api("/v1/redrives", { method: "POST", body: filter });
    $("enable-result").replaceChildren(el("p", {}, "Re-driven: " + body.published + " delivery(ies) sent again."));
  } catch (e) {
    say("Re-drive failed: " + e.message);
    $("redrive-kept").disabled = false;
  }
}

// ------------------------------------------------------------------ wiring

function search(event) {
  event.preventDefault();
  const kind = $("search-kind").value;
  const value = $("search-value").value.trim();
  if (kind === "number") {
    const t = tenant();
    if (t) openPath("/v1/tenants/" + encodeURIComponent(t) + "/order-numbers/" + encodeURIComponent(value));
  } else if (kind === "order") openOrder(value);
  else openRecipe(value);
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("token").value);
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("search-form").addEventListener("submit", search);
  $("recent-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.page = 1;
    showRecent();
  });
  $("prev").addEventListener("click", () => {
    state.page -= 1;
    showRecent();
  });
  $("next").addEventListener("click", () => {
    state.page += 1;
    showRecent();
  });
  $("failures-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showFailures();
  });
  $("integrations-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showIntegrations();
  });
  $("preview").addEventListener("click", preview);
  $("check-form").addEventListener("submit", (e) => {
    e.preventDefault();
    checkDestination();
  });
  $("trigger-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runTrigger();
  });
  if (state.token) signIn(state.token);
});
