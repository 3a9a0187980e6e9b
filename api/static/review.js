/* priorscan identity review page: the review queue by risk, two records side by side with their differences, the
   waterfall of the model's weights, and a decision per item (link / not the same person / skip), keyboard-driven.
   It holds no data of its own: it calls the MPI review API with the session cookie. */
(function () {
  "use strict";

  const REVIEW_SCOPE = "priorscan/mpi-review";
  const FIELDS = [
    ["family", "Family name"], ["given", "Given names"], ["birthDate", "Birth date"], ["sex", "Sex"],
    ["postcode", "Postcode"], ["address", "Address"], ["nhsNumberPresent", "NHS number held"],
    ["nhsVerification", "NHS number verification"], ["trust", "Trust"], ["system", "Identifier system"],
  ];
  const state = { items: [], index: 0, busy: false };
  const $ = (id) => document.getElementById(id);

  function status(text) { $("status").textContent = text; }

  function text(value) {
    if (value === true) return "yes";
    if (value === false) return "no";
    if (value === null || value === undefined || value === "") return "—";
    return String(value);
  }

  function percent(p) {
    if (p === null || p === undefined) return "—";
    return (100 * p).toFixed(p > 0.999 || p < 0.001 ? 3 : 1) + "%";
  }

  async function api(path, options) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    init.headers = Object.assign({ Accept: "application/json" }, init.headers);
    if (init.json !== undefined) {
      init.body = JSON.stringify(init.json);
      init.headers["Content-Type"] = "application/json";
      delete init.json;
    }
    const response = await fetch(path, init);
    let body = null;
    if ((response.headers.get("content-type") || "").includes("json")) {
      try { body = await response.json(); } catch (_) { body = null; }
    }
    if (response.status === 401) {
      showSignIn("Please sign in.");
      throw new Error("signed out");
    }
    if (!response.ok) {
      const detail = body && typeof body.detail === "string" ? body.detail : `The server answered ${response.status}.`;
      throw new Error(detail);
    }
    return body;
  }

  function showSignIn(message) {
    $("workspace").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    if (message) status(message);
    $("username").focus();
  }

  async function start() {
    let me;
    try {
      me = await api("/ui/session");
    } catch (_) {
      return;
    }
    $("signin").hidden = true;
    status("");
    $("who").hidden = false;
    $("who-name").textContent = me.username;
    $("who-role").textContent = me.role || me.kind;
    if (!(me.scopes || []).some((s) => s === REVIEW_SCOPE || s === "*")) {
      $("forbidden").hidden = false;
      return;
    }
    $("workspace").hidden = false;
    await loadQueue();
  }

  async function loadQueue() {
    const body = await api("/api/v1/mpi/review?limit=200&order=risk");
    state.items = body.items;
    state.index = Math.min(state.index, Math.max(0, state.items.length - 1));
    $("queue-count").textContent = String(body.total);
    renderQueue();
    renderItem();
  }

  function renderQueue() {
    const list = $("queue");
    list.replaceChildren();
    state.items.forEach((item, i) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-current", i === state.index ? "true" : "false");
      const risk = document.createElement("span");
      risk.className = "risk";
      risk.textContent = percent(item.probability);
      button.append(risk, ` · item ${item.id} · differs on ${item.differences.length} field(s)`);
      button.addEventListener("click", () => { state.index = i; renderQueue(); renderItem(); });
      li.append(button);
      list.append(li);
    });
    $("queue-empty").hidden = state.items.length > 0;
  }

  function cell(tag, content, className) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (className) el.className = className;
    return el;
  }

  function renderItem() {
    const item = state.items[state.index];
    $("item").hidden = !item;
    if (!item) return;
    $("item-id").textContent = String(item.id);
    $("item-probability").textContent = percent(item.probability);
    $("item-model").textContent = (item.waterfall && item.waterfall.modelVersion) || item.modelVersion || "unknown";
    $("item-guard").textContent = item.guard ? `; held for review by the rule "${item.guard}"` : "";
    const body = $("compare-body");
    body.replaceChildren();
    for (const [key, label] of FIELDS) {
      const differs = item.differences.includes(key);
      const row = document.createElement("tr");
      row.className = differs ? "differs" : "same";
      row.append(cell("th", label), cell("td", text(item.record && item.record[key])),
        cell("td", text(item.candidate && item.candidate[key])),
        cell("td", differs ? "differs" : "", "mark"));
      row.firstChild.setAttribute("scope", "row");
      body.append(row);
    }
    renderWaterfall(item.waterfall);
  }

  function renderWaterfall(waterfall) {
    const body = $("waterfall-body");
    body.replaceChildren();
    if (!waterfall || !waterfall.prior) {
      const row = document.createElement("tr");
      const only = cell("td", "No breakdown was stored with this item.");
      only.colSpan = 5;
      row.append(only);
      body.append(row);
      return;
    }
    const steps = [{ comparison: "prior (any two records)", level: "", weight: waterfall.prior.weight,
      cumulative: waterfall.prior.weight }].concat(waterfall.steps);
    const scale = Math.max(1, ...steps.map((s) => Math.abs(s.weight)));
    for (const step of steps) {
      const row = document.createElement("tr");
      const bar = document.createElement("span");
      bar.className = "bar " + (step.weight >= 0 ? "for" : "against");
      bar.style.width = (8 * Math.abs(step.weight) / scale).toFixed(2) + "rem";
      bar.setAttribute("aria-hidden", "true");
      const barCell = document.createElement("td");
      barCell.append(bar);
      row.append(cell("th", step.comparison), cell("td", step.level || ""),
        cell("td", (step.weight >= 0 ? "+" : "") + step.weight.toFixed(2), "num"),
        cell("td", step.cumulative.toFixed(2), "num"), barCell);
      row.firstChild.setAttribute("scope", "row");
      body.append(row);
    }
    const total = document.createElement("tr");
    total.className = "total";
    total.append(cell("th", "total"), cell("td", "probability " + percent(waterfall.probability)),
      cell("td", waterfall.total.toFixed(2), "num"), cell("td", ""), cell("td", ""));
    total.firstChild.setAttribute("scope", "row");
    body.append(total);
  }

  async function decide(decision) {
    const item = state.items[state.index];
    if (!item || state.busy) return;
    if (decision === "skip") {
      state.index = (state.index + 1) % Math.max(1, state.items.length);
      status(`Item ${item.id} skipped.`);
      renderQueue();
      renderItem();
      return;
    }
    state.busy = true;
    try {
      await api(`/api/v1/mpi/review/${item.id}`, { method: "POST", json: { decision } });
      status(decision === "match" ? `Item ${item.id}: linked as one person.`
        : `Item ${item.id}: kept apart as different people.`);
      await loadQueue();
    } catch (error) {
      if (error.message !== "signed out") status(`Item ${item.id} was not settled: ${error.message}`);
    } finally {
      state.busy = false;
    }
  }

  function move(step) {
    if (!state.items.length) return;
    state.index = (state.index + step + state.items.length) % state.items.length;
    renderQueue();
    renderItem();
  }

  document.addEventListener("keydown", (event) => {
    if ($("workspace").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
    const key = event.key.toLowerCase();
    const actions = { l: () => decide("match"), n: () => decide("no-match"), s: () => decide("skip"),
      j: () => move(1), k: () => move(-1) };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    $("decide-link").addEventListener("click", () => decide("match"));
    $("decide-apart").addEventListener("click", () => decide("no-match"));
    $("decide-skip").addEventListener("click", () => decide("skip"));
    $("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData($("signin-form"));
      const response = await fetch("/ui/login", { method: "POST", body: new URLSearchParams(form),
        credentials: "same-origin", headers: { Accept: "application/json" } });
      $("password").value = "";
      if (!response.ok) {
        const error = $("signin-error");
        error.textContent = response.status === 429 ? "Too many failed sign-ins: wait 15 minutes."
          : "Wrong username or password.";
        error.hidden = false;
        return;
      }
      $("signin-error").hidden = true;
      await start();
    });
    start();
  });
})();
